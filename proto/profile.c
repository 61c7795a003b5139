/*
 * profile.c - building a profile in memory (the collector's side of proto/profile.h), and
 * freeing any profile.
 *
 * The collector adds a function or a location for every distinct frame and a sample for
 * every distinct stack, millions of times over a long recording, so equal strings, functions
 * (name + file + first line) and locations (line lists) are deduplicated through
 * open-addressing hash tables of indexes, and every array grows geometrically. Every
 * allocation a call needs happens before the call changes anything, so a failed call
 * (ENOMEM) leaves the profile exactly as it was and still writable.
 *
 * A profile that was read (intern == NULL) can be extended too: the first builder call
 * adopts its arrays and string block and indexes what is already there.
 */
#include "profile_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STRING_BLOCK_BYTES (64 * 1024)
#define MIN_TABLE_SLOTS    64

/* --- hashing --- */

static uint64_t hash_mix(uint64_t h)
{
    /* splitmix64's finalizer: cheap, and spreads consecutive indexes over the table. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, finished with a mix for the low bits */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return hash_mix(h ^ len);
}

static uint64_t hash_function(uint32_t name, uint32_t filename, int64_t start_line)
{
    return hash_mix(hash_mix(((uint64_t)name << 32) | filename) ^ (uint64_t)start_line);
}

static uint64_t hash_lines(const struct profile_line *lines, uint32_t n)
{
    uint64_t h = n;
    for (uint32_t i = 0; i < n; i++)
        h = hash_mix(h ^ lines[i].function) + (uint64_t)lines[i].line;
    return hash_mix(h);
}

/* --- growth --- */

int profile_array_reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap < 16 ? 16 : *cap;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            goto nomem;
        n *= 2;
    }
    if (n > SIZE_MAX / elem)
        goto nomem;
    void *a = realloc(*arr, n * elem);
    if (!a)
        goto nomem;
    *arr = a;
    *cap = n;
    return 0;
nomem:
    errno = ENOMEM;
    return -1;
}

/* A fresh table of `slots` empty slots (a power of two). */
static uint32_t *table_alloc(size_t slots)
{
    uint32_t *t = malloc(slots * sizeof *t);
    if (t)
        memset(t, 0xff, slots * sizeof *t); /* PROFILE_NO_INDEX everywhere */
    return t;
}

/* Slot counts are powers of two kept at least twice the entry count; this says whether
 * adding one entry to a table of mask+1 slots holding n entries needs a bigger table. */
static int table_full(size_t mask, size_t n)
{
    return (n + 1) * 2 > mask + 1;
}

/* Rebuilds *slots at twice the size; hash_of(p, index) gives each entry's hash. */
static int table_grow(uint32_t **slots, size_t *mask, size_t n,
                      uint64_t (*hash_of)(const struct profile *, uint32_t),
                      const struct profile *p)
{
    size_t size = (*mask + 1) * 2;
    if (size > SIZE_MAX / 2 / sizeof(uint32_t)) {
        errno = ENOMEM;
        return -1;
    }
    uint32_t *t = table_alloc(size);
    if (!t) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t s = hash_of(p, (uint32_t)i) & (size - 1);
        while (t[s] != PROFILE_NO_INDEX)
            s = (s + 1) & (size - 1);
        t[s] = (uint32_t)i;
    }
    free(*slots);
    *slots = t;
    *mask = size - 1;
    return 0;
}

static uint64_t string_hash_of(const struct profile *p, uint32_t i)
{
    return p->intern->str_hash[i];
}

static uint64_t function_hash_of(const struct profile *p, uint32_t i)
{
    const struct profile_function *f = &p->functions[i];
    return hash_function(f->name, f->filename, f->start_line);
}

static uint64_t location_hash_of(const struct profile *p, uint32_t i)
{
    const struct profile_location *l = &p->locations[i];
    return hash_lines(p->lines + l->first_line, l->n_lines);
}

/* --- the intern tables --- */

static void intern_free(struct profile_intern *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->n_blocks; i++)
        free(in->blocks[i]);
    free(in->blocks);
    free(in->str_slots);
    free(in->fn_slots);
    free(in->loc_slots);
    free(in->str_hash);
    free(in->str_len);
    free(in);
}

/* Smallest power-of-two slot count at least twice n. */
static size_t table_size_for(size_t n)
{
    size_t s = MIN_TABLE_SLOTS;
    while (s < n * 2 + 2)
        s *= 2;
    return s;
}

/* Inserts entry i (known hash h) unless an equal entry is already there: equal() decides. */
static void table_insert_first(uint32_t *slots, size_t mask, uint64_t h, uint32_t i,
                               int (*equal)(const struct profile *, uint32_t, uint32_t),
                               const struct profile *p)
{
    size_t s = h & mask;
    while (slots[s] != PROFILE_NO_INDEX) {
        if (equal(p, slots[s], i))
            return;
        s = (s + 1) & mask;
    }
    slots[s] = i;
}

static int string_equal(const struct profile *p, uint32_t a, uint32_t b)
{
    const struct profile_intern *in = p->intern;
    return in->str_hash[a] == in->str_hash[b] && in->str_len[a] == in->str_len[b] &&
           memcmp(p->strings[a], p->strings[b], in->str_len[a]) == 0;
}

static int function_equal(const struct profile *p, uint32_t a, uint32_t b)
{
    const struct profile_function *x = &p->functions[a], *y = &p->functions[b];
    return x->name == y->name && x->filename == y->filename && x->start_line == y->start_line;
}

static int lines_equal(const struct profile *p, uint32_t loc, const struct profile_line *lines,
                       uint32_t n)
{
    const struct profile_location *l = &p->locations[loc];
    if (l->n_lines != n)
        return 0;
    const struct profile_line *m = p->lines + l->first_line;
    for (uint32_t i = 0; i < n; i++)
        if (m[i].function != lines[i].function || m[i].line != lines[i].line)
            return 0;
    return 1;
}

static int location_equal(const struct profile *p, uint32_t a, uint32_t b)
{
    const struct profile_location *y = &p->locations[b];
    return p->locations[a].address == y->address &&
           lines_equal(p, a, p->lines + y->first_line, y->n_lines);
}

/* Gives p its dedup tables, indexing whatever it already holds (a profile that was read, or
 * a new empty one). On failure p is unchanged. */
static int intern_attach(struct profile *p)
{
    if (p->intern)
        return 0;
    struct profile_intern *in = calloc(1, sizeof *in);
    if (!in)
        goto nomem;
    in->str_mask = table_size_for(p->n_strings) - 1;
    in->fn_mask = table_size_for(p->n_functions) - 1;
    in->loc_mask = table_size_for(p->n_locations) - 1;
    in->str_slots = table_alloc(in->str_mask + 1);
    in->fn_slots = table_alloc(in->fn_mask + 1);
    in->loc_slots = table_alloc(in->loc_mask + 1);
    size_t ns = p->n_strings ? p->n_strings : 1;
    in->str_hash = malloc(ns * sizeof *in->str_hash);
    in->str_len = malloc(ns * sizeof *in->str_len);
    in->blocks = malloc(4 * sizeof *in->blocks);
    if (!in->str_slots || !in->fn_slots || !in->loc_slots || !in->str_hash || !in->str_len ||
        !in->blocks)
        goto nomem;
    in->cap_blocks = 4;
    in->cap_strings = p->n_strings; /* the string array itself; str_hash/str_len hold ns */
    in->cap_sample_types = p->n_sample_types;
    in->cap_functions = p->n_functions;
    in->cap_lines = p->n_lines;
    in->cap_locations = p->n_locations;
    in->cap_stack_locs = p->n_stack_locs;
    in->cap_samples = p->n_samples;
    in->cap_timeline = p->n_timeline;
    in->cap_comments = p->n_comments;
    in->cap_processes = p->n_processes;

    /* From here on nothing can fail: adopt the profile's memory and index it. */
    if (p->n_strings)
        in->blocks[in->n_blocks++] = p->strings[0]; /* a read profile's single block */
    p->intern = in;
    for (size_t i = 0; i < p->n_strings; i++) {
        size_t len = strlen(p->strings[i]);
        in->str_len[i] = (uint32_t)len;
        in->str_hash[i] = hash_bytes(p->strings[i], len);
        table_insert_first(in->str_slots, in->str_mask, in->str_hash[i], (uint32_t)i, string_equal,
                           p);
    }
    for (size_t i = 0; i < p->n_functions; i++)
        table_insert_first(in->fn_slots, in->fn_mask, function_hash_of(p, (uint32_t)i), (uint32_t)i,
                           function_equal, p);
    for (size_t i = 0; i < p->n_locations; i++)
        table_insert_first(in->loc_slots, in->loc_mask, location_hash_of(p, (uint32_t)i),
                           (uint32_t)i, location_equal, p);
    return 0;
nomem:
    if (in) {
        free(in->str_slots);
        free(in->fn_slots);
        free(in->loc_slots);
        free(in->str_hash);
        free(in->str_len);
        free(in->blocks);
        free(in);
    }
    errno = ENOMEM;
    return -1;
}

/* Room in the string blocks for len + 1 bytes; returns where they go, or NULL. */
static char *string_space(struct profile_intern *in, size_t len)
{
    if (in->n_blocks && in->block_size - in->block_used > len)
        return in->blocks[in->n_blocks - 1] + in->block_used;
    if (in->n_blocks == in->cap_blocks &&
        profile_array_reserve((void **)&in->blocks, &in->cap_blocks, in->n_blocks + 1,
                              sizeof *in->blocks))
        return NULL;
    size_t size = len + 1 > STRING_BLOCK_BYTES ? len + 1 : STRING_BLOCK_BYTES;
    char *b = malloc(size);
    if (!b)
        return NULL;
    in->blocks[in->n_blocks++] = b;
    in->block_size = size;
    in->block_used = 0;
    return b;
}

/* Interns s[0..len), already valid UTF-8 without NUL. */
static uint32_t intern_clean(struct profile *p, const char *s, size_t len)
{
    struct profile_intern *in = p->intern;
    if (len >= UINT32_MAX)
        return PROFILE_NO_INDEX;
    uint64_t h = hash_bytes(s, len);
    size_t slot = h & in->str_mask;
    for (uint32_t i; (i = in->str_slots[slot]) != PROFILE_NO_INDEX;
         slot = (slot + 1) & in->str_mask)
        if (in->str_hash[i] == h && in->str_len[i] == len && !memcmp(p->strings[i], s, len))
            return i;

    if (p->n_strings >= UINT32_MAX - 1)
        return PROFILE_NO_INDEX;
    size_t cap = in->cap_strings, cap_hash = in->cap_strings, cap_len = in->cap_strings;
    if (profile_array_reserve((void **)&p->strings, &cap, p->n_strings + 1, sizeof *p->strings) ||
        profile_array_reserve((void **)&in->str_hash, &cap_hash, p->n_strings + 1,
                              sizeof *in->str_hash) ||
        profile_array_reserve((void **)&in->str_len, &cap_len, p->n_strings + 1,
                              sizeof *in->str_len))
        return PROFILE_NO_INDEX;
    /* The three arrays may now have different capacities; the smallest is the truth. */
    in->cap_strings = cap < cap_hash ? cap : cap_hash;
    in->cap_strings = in->cap_strings < cap_len ? in->cap_strings : cap_len;
    if (table_full(in->str_mask, p->n_strings)) {
        if (table_grow(&in->str_slots, &in->str_mask, p->n_strings, string_hash_of, p))
            return PROFILE_NO_INDEX;
        slot = h & in->str_mask;
        while (in->str_slots[slot] != PROFILE_NO_INDEX)
            slot = (slot + 1) & in->str_mask;
    }
    char *dst = string_space(in, len);
    if (!dst)
        return PROFILE_NO_INDEX;
    memcpy(dst, s, len);
    dst[len] = 0;
    in->block_used += len + 1;

    uint32_t i = (uint32_t)p->n_strings++;
    p->strings[i] = dst;
    in->str_hash[i] = h;
    in->str_len[i] = (uint32_t)len;
    in->str_slots[slot] = i;
    return i;
}

/* --- the public builder --- */

struct profile *profile_new(void)
{
    struct profile *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (intern_attach(p) || profile_intern(p, "") != 0) {
        profile_free(p);
        return NULL;
    }
    return p;
}

uint32_t profile_intern(struct profile *p, const char *s)
{
    if (!p)
        return PROFILE_NO_INDEX;
    if (intern_attach(p))
        return PROFILE_NO_INDEX;
    if (!s)
        s = "";
    size_t len = strlen(s);
    size_t clean = utf8_repaired_len((const uint8_t *)s, len);
    if (clean == len)
        return intern_clean(p, s, len);
    char *fixed = malloc(clean);
    if (!fixed)
        return PROFILE_NO_INDEX;
    utf8_repair((const uint8_t *)s, len, fixed);
    uint32_t i = intern_clean(p, fixed, clean);
    free(fixed);
    return i;
}

uint32_t profile_add_sample_type(struct profile *p, const char *type, const char *unit)
{
    uint32_t t = profile_intern(p, type), u = profile_intern(p, unit);
    if (t == PROFILE_NO_INDEX || u == PROFILE_NO_INDEX)
        return PROFILE_NO_INDEX;
    for (size_t i = 0; i < p->n_sample_types; i++)
        if (p->sample_types[i].type == t && p->sample_types[i].unit == u)
            return (uint32_t)i;
    /* Samples already hold one value per existing type; a new column would misalign them. */
    if (p->n_samples) {
        errno = EINVAL;
        return PROFILE_NO_INDEX;
    }
    if (profile_array_reserve((void **)&p->sample_types, &p->intern->cap_sample_types,
                              p->n_sample_types + 1, sizeof *p->sample_types))
        return PROFILE_NO_INDEX;
    p->sample_types[p->n_sample_types] = (struct profile_value_type){.type = t, .unit = u};
    return (uint32_t)p->n_sample_types++;
}

uint32_t profile_add_function(struct profile *p, const char *name, const char *filename,
                              int64_t start_line)
{
    uint32_t n = profile_intern(p, name), f = profile_intern(p, filename);
    if (n == PROFILE_NO_INDEX || f == PROFILE_NO_INDEX)
        return PROFILE_NO_INDEX;
    struct profile_intern *in = p->intern;
    uint64_t h = hash_function(n, f, start_line);
    size_t slot = h & in->fn_mask;
    for (uint32_t i; (i = in->fn_slots[slot]) != PROFILE_NO_INDEX;
         slot = (slot + 1) & in->fn_mask) {
        const struct profile_function *fn = &p->functions[i];
        if (fn->name == n && fn->filename == f && fn->start_line == start_line)
            return i;
    }
    if (p->n_functions >= UINT32_MAX - 1 ||
        profile_array_reserve((void **)&p->functions, &in->cap_functions, p->n_functions + 1,
                              sizeof *p->functions))
        return PROFILE_NO_INDEX;
    if (table_full(in->fn_mask, p->n_functions)) {
        if (table_grow(&in->fn_slots, &in->fn_mask, p->n_functions, function_hash_of, p))
            return PROFILE_NO_INDEX;
        slot = h & in->fn_mask;
        while (in->fn_slots[slot] != PROFILE_NO_INDEX)
            slot = (slot + 1) & in->fn_mask;
    }
    uint32_t i = (uint32_t)p->n_functions++;
    p->functions[i] = (struct profile_function){.name = n, .filename = f, .start_line = start_line};
    in->fn_slots[slot] = i;
    return i;
}

uint32_t profile_add_location(struct profile *p, const struct profile_line *lines, uint32_t n_lines)
{
    if (!p || !lines || n_lines == 0 || n_lines > PROFILE_MAX_STACK_DEPTH) {
        errno = EINVAL;
        return PROFILE_NO_INDEX;
    }
    for (uint32_t i = 0; i < n_lines; i++)
        if (lines[i].function >= p->n_functions) {
            errno = EINVAL;
            return PROFILE_NO_INDEX;
        }
    if (intern_attach(p))
        return PROFILE_NO_INDEX;
    struct profile_intern *in = p->intern;
    uint64_t h = hash_lines(lines, n_lines);
    size_t slot = h & in->loc_mask;
    for (uint32_t i; (i = in->loc_slots[slot]) != PROFILE_NO_INDEX;
         slot = (slot + 1) & in->loc_mask)
        if (p->locations[i].address == 0 && lines_equal(p, i, lines, n_lines))
            return i;
    if (p->n_locations >= UINT32_MAX - 1 || p->n_lines > UINT32_MAX - 1 - n_lines ||
        profile_array_reserve((void **)&p->locations, &in->cap_locations, p->n_locations + 1,
                              sizeof *p->locations) ||
        profile_array_reserve((void **)&p->lines, &in->cap_lines, p->n_lines + n_lines,
                              sizeof *p->lines))
        return PROFILE_NO_INDEX;
    if (table_full(in->loc_mask, p->n_locations)) {
        if (table_grow(&in->loc_slots, &in->loc_mask, p->n_locations, location_hash_of, p))
            return PROFILE_NO_INDEX;
        slot = h & in->loc_mask;
        while (in->loc_slots[slot] != PROFILE_NO_INDEX)
            slot = (slot + 1) & in->loc_mask;
    }
    memcpy(p->lines + p->n_lines, lines, n_lines * sizeof *lines);
    uint32_t i = (uint32_t)p->n_locations++;
    p->locations[i] =
        (struct profile_location){.first_line = (uint32_t)p->n_lines, .n_lines = n_lines};
    p->n_lines += n_lines;
    in->loc_slots[slot] = i;
    return i;
}

int profile_add_sample(struct profile *p, const uint32_t *locs, uint32_t n_locs,
                       const int64_t *values, uint32_t thread, int64_t block_bytes)
{
    if (!p || (n_locs && !locs) || (p->n_sample_types && !values) ||
        n_locs > PROFILE_MAX_STACK_DEPTH || thread >= p->n_strings) {
        errno = EINVAL;
        return -1;
    }
    for (uint32_t i = 0; i < n_locs; i++)
        if (locs[i] >= p->n_locations) {
            errno = EINVAL;
            return -1;
        }
    if (intern_attach(p))
        return -1;
    struct profile_intern *in = p->intern;
    size_t nt = p->n_sample_types;
    if (p->n_stack_locs > UINT32_MAX - 1 - n_locs || p->n_samples >= UINT32_MAX - 1)
        goto nomem;
    if (profile_array_reserve((void **)&p->stack_locs, &in->cap_stack_locs,
                              p->n_stack_locs + n_locs, sizeof *p->stack_locs))
        return -1;
    /* values grows in step with samples: both are sized to cap_samples rows. */
    if (p->n_samples + 1 > in->cap_samples) {
        size_t cap = in->cap_samples;
        if (profile_array_reserve((void **)&p->samples, &cap, p->n_samples + 1, sizeof *p->samples))
            return -1;
        if (nt) {
            if (cap > SIZE_MAX / nt / sizeof *p->values)
                goto nomem;
            int64_t *v = realloc(p->values, cap * nt * sizeof *p->values);
            if (!v)
                goto nomem;
            p->values = v;
        }
        in->cap_samples = cap;
    }
    if (n_locs)
        memcpy(p->stack_locs + p->n_stack_locs, locs, n_locs * sizeof *locs);
    if (nt)
        memcpy(p->values + p->n_samples * nt, values, nt * sizeof *values);
    p->samples[p->n_samples++] = (struct profile_sample){.first_loc = (uint32_t)p->n_stack_locs,
                                                         .n_locs = n_locs,
                                                         .thread = thread,
                                                         .block_bytes = block_bytes};
    p->n_stack_locs += n_locs;
    return 0;
nomem:
    errno = ENOMEM;
    return -1;
}

int profile_add_point(struct profile *p, int64_t t_ns, int64_t rss, int64_t heap)
{
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    if (intern_attach(p) || profile_array_reserve((void **)&p->timeline, &p->intern->cap_timeline,
                                                  p->n_timeline + 1, sizeof *p->timeline))
        return -1;
    p->timeline[p->n_timeline++] = (struct profile_point){.t_ns = t_ns, .rss = rss, .heap = heap};
    return 0;
}

int profile_add_comment(struct profile *p, const char *text)
{
    if (!p || !text || strncmp(text, MEMSNAP_COMMENT_PREFIX, strlen(MEMSNAP_COMMENT_PREFIX)) == 0) {
        errno = EINVAL;
        return -1;
    }
    /* Room first, so that a failure leaves the profile as it was. */
    if (intern_attach(p) || profile_array_reserve((void **)&p->comments, &p->intern->cap_comments,
                                                  p->n_comments + 1, sizeof *p->comments))
        return -1;
    uint32_t s = profile_intern(p, text);
    if (s == PROFILE_NO_INDEX)
        return -1;
    p->comments[p->n_comments++] = s;
    return 0;
}

int profile_add_process(struct profile *p, const struct profile_process *proc, const char *command)
{
    if (!p || !proc || proc->pid < 1 || proc->pid > INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (intern_attach(p))
        return -1;
    size_t at = p->n_processes;
    for (size_t i = 0; i < p->n_processes; i++)
        if (p->processes[i].pid == proc->pid)
            at = i;
    if (at == p->n_processes &&
        (p->n_processes >= PROFILE_MAX_PROCESSES ||
         profile_array_reserve((void **)&p->processes, &p->intern->cap_processes,
                               p->n_processes + 1, sizeof *p->processes))) {
        if (p->n_processes >= PROFILE_MAX_PROCESSES)
            errno = ENOSPC;
        return -1;
    }
    uint32_t c = profile_intern(p, command ? command : "");
    if (c == PROFILE_NO_INDEX)
        return -1;
    p->processes[at] = *proc;
    p->processes[at].command = c;
    if (at == p->n_processes)
        p->n_processes++;
    return 0;
}

int profile_find_sample_type(const struct profile *p, const char *type)
{
    if (!p || !type)
        return -1;
    for (size_t i = 0; i < p->n_sample_types; i++) {
        uint32_t t = p->sample_types[i].type;
        if (t < p->n_strings && strcmp(p->strings[t], type) == 0)
            return (int)i;
    }
    return -1;
}

void profile_free(struct profile *p)
{
    if (!p)
        return;
    if (p->intern)
        intern_free(p->intern);
    else if (p->strings && p->n_strings)
        free(p->strings[0]);
    free(p->strings);
    free(p->sample_types);
    free(p->functions);
    free(p->lines);
    free(p->locations);
    free(p->stack_locs);
    free(p->samples);
    free(p->values);
    free(p->timeline);
    free(p->comments);
    free(p->processes);
    free(p);
}
