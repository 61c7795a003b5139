/*
 * stacks.c - resolving raw hook frames to profile locations and interning stacks.
 *
 * Three open-addressing tables (linear probing, power-of-two sizes, grown at 3/4 load):
 *   frames:  (code, lasti) -> location and the identity of the code object it was computed
 *            for, checked against the resolver's current identity on every use;
 *   threads: tstate -> label string index, stamped the same way;
 *   stacks:  hash of (thread, locations) -> stack id, the locations kept in one flat array.
 * No entry is ever deleted, so probing needs no tombstones.
 */
#include "stacks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_CACHE_MAX  (1u << 22) /* past this, pairs are resolved but not cached */
#define THREAD_CACHE_MAX (1u << 16)

struct frame_entry {
    uint64_t code, lasti;
    const void *identity;
    uint32_t loc;
    uint32_t epoch; /* 0 = empty slot */
};

struct thread_entry {
    uint64_t tstate;
    uint32_t label;
    uint32_t epoch; /* 0 = empty slot */
};

/* What a hook slot names; stack == UINT32_MAX until defined. */
struct slot_entry {
    uint64_t tstate;
    uint32_t stack;
    uint32_t label; /* the stack's thread label, as of `epoch` */
    uint32_t epoch;
};

struct stack_rec {
    uint32_t first; /* index into locs */
    uint32_t n;
    uint32_t thread;
    uint32_t hash;
};

struct stacks {
    struct profile *p;
    struct stacks_resolver r;
    uint32_t epoch; /* starts at 1 and only grows; 0 marks empty slots */

    struct frame_entry *frames;
    uint32_t frames_cap, frames_used;
    struct thread_entry *threads;
    uint32_t threads_cap, threads_used;

    struct stack_rec *stacks;
    uint32_t n_stacks, stacks_cap;
    uint32_t *index; /* stack id + 1, 0 = empty */
    uint32_t index_cap;
    uint32_t *locs;
    size_t n_locs, locs_cap;

    /* Locations for frames that have no real code object; UINT32_MAX until first needed. */
    uint32_t loc_unknown, loc_truncated, loc_full, loc_no_frame, loc_invalid;
    uint32_t full_stack; /* the shared stack once STACKS_MAX is reached, UINT32_MAX before */

    struct slot_entry *slots;
    uint32_t n_slots;
    uint32_t loc_no_stack, unknown_stack; /* for slots never defined; UINT32_MAX before */
};

static uint64_t hash_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

struct stacks *stacks_new(struct profile *p, const struct stacks_resolver *r, uint32_t slots)
{
    if (slots > MSHOOK_STACK_SLOTS_MAX)
        return NULL;
    struct stacks *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = p;
    s->r = *r;
    s->epoch = 1;
    s->frames_cap = 1024;
    s->threads_cap = 64;
    s->index_cap = 1024;
    s->frames = calloc(s->frames_cap, sizeof *s->frames);
    s->threads = calloc(s->threads_cap, sizeof *s->threads);
    s->index = calloc(s->index_cap, sizeof *s->index);
    s->n_slots = slots;
    s->slots = slots ? malloc((size_t)slots * sizeof *s->slots) : NULL;
    if (!s->frames || !s->threads || !s->index || (slots && !s->slots)) {
        stacks_free(s);
        return NULL;
    }
    for (uint32_t i = 0; i < slots; i++)
        s->slots[i] = (struct slot_entry){.stack = UINT32_MAX};
    s->loc_unknown = s->loc_truncated = s->loc_full = s->loc_no_frame = s->loc_invalid = UINT32_MAX;
    s->loc_no_stack = s->unknown_stack = UINT32_MAX;
    s->full_stack = UINT32_MAX;
    return s;
}

void stacks_free(struct stacks *s)
{
    if (!s)
        return;
    free(s->frames);
    free(s->threads);
    free(s->stacks);
    free(s->index);
    free(s->locs);
    free(s->slots);
    free(s);
}

void stacks_epoch(struct stacks *s)
{
    s->epoch++;
    if (s->epoch == 0) /* after 2^32 drains: forget everything rather than alias "empty" */
        s->epoch = 1;
}

uint32_t stacks_count(const struct stacks *s)
{
    return s->n_stacks;
}

void stacks_get(const struct stacks *s, uint32_t stack_id, const uint32_t **locs, uint32_t *nlocs,
                uint32_t *thread)
{
    const struct stack_rec *st = &s->stacks[stack_id];
    *locs = s->locs + st->first;
    *nlocs = st->n;
    *thread = st->thread;
}

/* A location of a synthetic function (no file, no line): "<unknown>", "<truncated>"... */
static uint32_t synthetic_location(struct stacks *s, uint32_t *slot, const char *name)
{
    if (*slot != UINT32_MAX)
        return *slot;
    uint32_t fn = profile_add_function(s->p, name, "", 0);
    if (fn == UINT32_MAX)
        return UINT32_MAX;
    struct profile_line line = {fn, 0};
    *slot = profile_add_location(s->p, &line, 1);
    return *slot;
}

static uint32_t location_for_code(struct stacks *s, const struct stacks_code *sc, uint64_t code,
                                  uint64_t lasti)
{
    int line = s->r.line ? s->r.line(s->r.ctx, sc, code, lasti) : -1;
    if (line < 0)
        line = sc->firstlineno;
    uint32_t fn = profile_add_function(s->p, sc->name ? sc->name : "<unknown>",
                                       sc->filename ? sc->filename : "", sc->firstlineno);
    if (fn == UINT32_MAX)
        return UINT32_MAX;
    struct profile_line pl = {fn, line};
    return profile_add_location(s->p, &pl, 1);
}

static int frames_grow(struct stacks *s)
{
    uint32_t cap = s->frames_cap * 2;
    struct frame_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < s->frames_cap; i++) {
        struct frame_entry *e = &s->frames[i];
        if (!e->epoch)
            continue;
        uint32_t h = (uint32_t)hash_mix(e->code ^ (e->lasti * 0x9e3779b97f4a7c15ull));
        for (uint32_t j = h & (cap - 1);; j = (j + 1) & (cap - 1))
            if (!t[j].epoch) {
                t[j] = *e;
                break;
            }
    }
    free(s->frames);
    s->frames = t;
    s->frames_cap = cap;
    return 0;
}

/* The location of one raw frame, through the cache. UINT32_MAX on ENOMEM. */
static uint32_t frame_location(struct stacks *s, uint64_t code, uint64_t lasti)
{
    uint32_t h = (uint32_t)hash_mix(code ^ (lasti * 0x9e3779b97f4a7c15ull));
    uint32_t mask = s->frames_cap - 1;
    struct frame_entry *e = NULL;
    uint32_t j = h & mask;
    for (;; j = (j + 1) & mask) {
        if (!s->frames[j].epoch)
            break;
        if (s->frames[j].code == code && s->frames[j].lasti == lasti) {
            e = &s->frames[j];
            break;
        }
    }
    struct stacks_code sc = {0};
    if (!s->r.code || s->r.code(s->r.ctx, code, &sc) < 0)
        return synthetic_location(s, &s->loc_unknown, "<unknown>");
    if (e && e->identity == sc.identity) {
        e->epoch = s->epoch;
        return e->loc;
    }
    uint32_t loc = location_for_code(s, &sc, code, lasti);
    if (loc == UINT32_MAX)
        return loc;
    if (!e) {
        if (s->frames_used >= FRAME_CACHE_MAX)
            return loc;
        if ((s->frames_used + 1) * 4 > s->frames_cap * 3) {
            if (frames_grow(s) < 0)
                return loc; /* uncached but correct */
            mask = s->frames_cap - 1;
            for (j = h & mask; s->frames[j].epoch; j = (j + 1) & mask)
                ;
        }
        e = &s->frames[j];
        e->code = code;
        e->lasti = lasti;
        s->frames_used++;
    }
    e->identity = sc.identity;
    e->loc = loc;
    e->epoch = s->epoch;
    return loc;
}

static int threads_grow(struct stacks *s)
{
    uint32_t cap = s->threads_cap * 2;
    struct thread_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < s->threads_cap; i++) {
        if (!s->threads[i].epoch)
            continue;
        uint32_t j = (uint32_t)hash_mix(s->threads[i].tstate) & (cap - 1);
        while (t[j].epoch)
            j = (j + 1) & (cap - 1);
        t[j] = s->threads[i];
    }
    free(s->threads);
    s->threads = t;
    s->threads_cap = cap;
    return 0;
}

/* The thread label's string index (0 = none), UINT32_MAX on ENOMEM. Thread states are
 * reused by new threads, so labels are looked up again once per epoch. */
static uint32_t thread_label(struct stacks *s, uint64_t tstate)
{
    if (!s->r.thread)
        return 0;
    uint32_t mask = s->threads_cap - 1;
    uint32_t j = (uint32_t)hash_mix(tstate) & mask;
    while (s->threads[j].epoch && s->threads[j].tstate != tstate)
        j = (j + 1) & mask;
    struct thread_entry *e = s->threads[j].epoch ? &s->threads[j] : NULL;
    if (e && e->epoch == s->epoch)
        return e->label;
    const char *name = s->r.thread(s->r.ctx, tstate);
    uint32_t label = name ? profile_intern(s->p, name) : 0;
    if (label == UINT32_MAX)
        return label;
    if (!e) {
        if (s->threads_used >= THREAD_CACHE_MAX)
            return label;
        if ((s->threads_used + 1) * 4 > s->threads_cap * 3) {
            if (threads_grow(s) < 0)
                return label;
            mask = s->threads_cap - 1;
            for (j = (uint32_t)hash_mix(tstate) & mask; s->threads[j].epoch; j = (j + 1) & mask)
                ;
        }
        e = &s->threads[j];
        e->tstate = tstate;
        s->threads_used++;
    }
    e->label = label;
    e->epoch = s->epoch;
    return label;
}

static uint32_t stack_hash(uint32_t thread, const uint32_t *locs, uint32_t n)
{
    uint64_t h = hash_mix(((uint64_t)thread << 32) | n);
    for (uint32_t i = 0; i < n; i++)
        h = hash_mix(h ^ locs[i]);
    return (uint32_t)h;
}

static int index_grow(struct stacks *s)
{
    uint32_t cap = s->index_cap * 2;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (uint32_t id = 0; id < s->n_stacks; id++) {
        uint32_t j = s->stacks[id].hash & (cap - 1);
        while (t[j])
            j = (j + 1) & (cap - 1);
        t[j] = id + 1;
    }
    free(s->index);
    s->index = t;
    s->index_cap = cap;
    return 0;
}

/* Appends a new stack record; -1 on ENOMEM. */
static int stack_append(struct stacks *s, uint32_t thread, const uint32_t *locs, uint32_t n,
                        uint32_t hash)
{
    if (s->n_stacks == s->stacks_cap) {
        uint32_t cap = s->stacks_cap ? s->stacks_cap * 2 : 256;
        struct stack_rec *t = realloc(s->stacks, cap * sizeof *t);
        if (!t)
            return -1;
        s->stacks = t;
        s->stacks_cap = cap;
    }
    if (s->n_locs + n > s->locs_cap) {
        size_t cap = s->locs_cap ? s->locs_cap : 1024;
        while (cap < s->n_locs + n)
            cap *= 2;
        uint32_t *t = realloc(s->locs, cap * sizeof *t);
        if (!t)
            return -1;
        s->locs = t;
        s->locs_cap = cap;
    }
    if ((s->n_stacks + 1) * 4 > s->index_cap * 3 && index_grow(s) < 0)
        return -1;
    memcpy(s->locs + s->n_locs, locs, n * sizeof *locs);
    s->stacks[s->n_stacks] = (struct stack_rec){(uint32_t)s->n_locs, n, thread, hash};
    s->n_locs += n;
    uint32_t j = hash & (s->index_cap - 1);
    while (s->index[j])
        j = (j + 1) & (s->index_cap - 1);
    s->index[j] = s->n_stacks + 1;
    s->n_stacks++;
    return 0;
}

/* The one stack every new stack maps to once the table is full. */
static int full_stack_id(struct stacks *s, uint32_t *id, ms_error *err)
{
    if (s->full_stack == UINT32_MAX) {
        uint32_t loc = synthetic_location(s, &s->loc_full, "<stack table full>");
        if (loc == UINT32_MAX || stack_append(s, 0, &loc, 1, stack_hash(0, &loc, 1)) < 0)
            return ms_error_errno(err, ENOMEM, "interning a stack");
        s->full_stack = s->n_stacks - 1;
    }
    *id = s->full_stack;
    return 0;
}

/* Interns (thread, locs): the id of an equal stack, or a new one. */
static int locs_intern(struct stacks *s, uint32_t thread, const uint32_t *locs, uint32_t n,
                       uint32_t *stack_id, ms_error *err)
{
    uint32_t h = stack_hash(thread, locs, n);
    uint32_t mask = s->index_cap - 1;
    for (uint32_t j = h & mask; s->index[j]; j = (j + 1) & mask) {
        const struct stack_rec *st = &s->stacks[s->index[j] - 1];
        if (st->hash == h && st->n == n && st->thread == thread &&
            !memcmp(s->locs + st->first, locs, n * sizeof *locs)) {
            *stack_id = s->index[j] - 1;
            return 0;
        }
    }
    if (s->n_stacks >= STACKS_MAX)
        return full_stack_id(s, stack_id, err);
    if (stack_append(s, thread, locs, n, h) < 0)
        return ms_error_errno(err, ENOMEM, "interning a stack");
    *stack_id = s->n_stacks - 1;
    return 0;
}

int stacks_intern(struct stacks *s, uint64_t tstate, const struct mshook_frame *frames,
                  uint32_t nframes, int truncated, uint32_t *stack_id, ms_error *err)
{
    uint32_t locs[MSHOOK_MAX_FRAMES + 1];
    uint32_t n = 0;
    if (nframes > MSHOOK_MAX_FRAMES)
        nframes = MSHOOK_MAX_FRAMES;
    for (uint32_t i = 0; i < nframes; i++) {
        uint32_t loc = frame_location(s, frames[i].code, frames[i].lasti);
        if (loc == UINT32_MAX)
            return ms_error_errno(err, ENOMEM, "resolving a frame");
        locs[n++] = loc;
    }
    if (truncated || nframes == 0) {
        uint32_t loc = (truncated & STACKS_CUT_INVALID)
                           ? synthetic_location(s, &s->loc_invalid, "<unreadable frame: stack cut>")
                       : truncated ? synthetic_location(s, &s->loc_truncated, "<truncated>")
                                   : synthetic_location(s, &s->loc_no_frame, "<no Python frame>");
        if (loc == UINT32_MAX)
            return ms_error_errno(err, ENOMEM, "resolving a frame");
        locs[n++] = loc;
    }
    uint32_t thread = thread_label(s, tstate);
    if (thread == UINT32_MAX)
        return ms_error_errno(err, ENOMEM, "labelling a thread");
    return locs_intern(s, thread, locs, n, stack_id, err);
}

int stacks_define(struct stacks *s, uint32_t slot, uint64_t tstate,
                  const struct mshook_frame *frames, uint32_t nframes, int truncated, ms_error *err)
{
    if (slot >= s->n_slots)
        return ms_error_set(err, "stack slot %u is out of range (%u slots)", slot, s->n_slots);
    uint32_t id;
    if (stacks_intern(s, tstate, frames, nframes, truncated, &id, err) < 0)
        return -1;
    s->slots[slot] = (struct slot_entry){tstate, id, s->stacks[id].thread, s->epoch};
    return 0;
}

int stacks_slot(struct stacks *s, uint32_t slot, uint32_t *stack_id, ms_error *err)
{
    if (slot >= s->n_slots)
        return ms_error_set(err, "stack slot %u is out of range (%u slots)", slot, s->n_slots);
    struct slot_entry *e = &s->slots[slot];
    if (e->stack == UINT32_MAX) {
        if (s->unknown_stack == UINT32_MAX) {
            uint32_t loc = synthetic_location(s, &s->loc_no_stack, "<unknown stack>");
            if (loc == UINT32_MAX || locs_intern(s, 0, &loc, 1, &s->unknown_stack, err) < 0)
                return ms_error_errno(err, ENOMEM, "interning a stack");
        }
        *stack_id = s->unknown_stack;
        return 0;
    }
    if (e->epoch != s->epoch) {
        /* The thread state may now be another thread's: label the stack again. */
        uint32_t label = thread_label(s, e->tstate);
        if (label == UINT32_MAX)
            return ms_error_errno(err, ENOMEM, "labelling a thread");
        if (label != e->label) {
            const struct stack_rec *st = &s->stacks[e->stack];
            uint32_t locs[MSHOOK_MAX_FRAMES + 1];
            uint32_t n = st->n <= MSHOOK_MAX_FRAMES + 1 ? st->n : MSHOOK_MAX_FRAMES + 1;
            memcpy(locs, s->locs + st->first, n * sizeof *locs); /* interning may move them */
            uint32_t id;
            if (locs_intern(s, label, locs, n, &id, err) < 0)
                return -1;
            e->stack = id;
            e->label = label;
        }
        e->epoch = s->epoch;
    }
    *stack_id = e->stack;
    return 0;
}
