/*
 * flametree.c - merging stacks into the pruned tree (see flametree.h).
 *
 * Construction goes a depth at a time over all samples at once: every sample still being
 * placed sits at a node of the current depth and either ends there or continues into the
 * child named by its next frame; the children of the whole depth are gathered in one hash
 * table, those too narrow to draw merge into their parent's "(other)" at once, and their
 * samples stop there. The work is therefore proportional to the samples times the depth at
 * which their group becomes too narrow to draw, a profile of a million distinct 40-frame
 * stacks never materialises forty million nodes, and each depth reads the samples and their
 * stacks in ascending order (what a large profile's cost comes down to: no pass jumps between
 * samples at random). Depths with many live samples are scanned by one thread per CPU, each
 * with its own table, merged before anything is decided. A last pass numbers the nodes in
 * depth-first order.
 *
 * Most stacks are read in place from the profile (leaf-first location indexes, each location
 * mapped to one frame). Stacks that need rewriting (inlined multi-line locations, import
 * machinery to collapse, the base profile of a diff) are copied root-first into one array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flametree.h"
#include "imports.h"
#include "jobs.h"

#define VALUE_CLAMP ((int64_t)1 << 62)
/* Deeper stacks (only possible with inlined multi-line locations) are cut at the leaf end:
 * the tree is walked recursively, and no real Python stack is this deep. */
#define FLAME_MAX_DEPTH PROFILE_MAX_STACK_DEPTH
#define NO_NODE         UINT32_MAX
/* A depth is scanned by several threads when each gets at least this many live samples. */
#define SCAN_MIN_SAMPLES (1 << 16)
/* How many samples ahead depth_place fetches stacks. */
#define PREFETCH_AHEAD 16

/* One input stack and its values, together: splitting touches one cache line per sample. */
struct sample {
    const uint32_t *ids; /* direct: location indexes leaf first; else frame indexes root first */
    uint32_t len;
    uint32_t direct;
    int64_t value, count, base;
};

/* A child-to-be met at the current depth: a parent node and the next frame of some of its
 * samples, with their sums. */
struct cand {
    uint64_t key; /* parent << 32 | frame */
    int64_t total, count, base;
    uint32_t node; /* the node made for it, NO_NODE while none (or pruned) */
    uint32_t slot; /* its slot in the hash table, cleared for the next depth */
};

struct cand_slot {
    uint64_t key;  /* the candidate's key */
    uint32_t cand; /* its index + 1; 0 = empty */
};

/* Sums of the three metrics: a parent's narrow children (its "(other)" child), or the
 * samples that end at a node. */
struct other_sums {
    int64_t total, count, base;
};

/* Candidates and their open-addressing table (at most half full). */
struct cand_table {
    struct cand *cands;
    size_t n, cap;
    struct cand_slot *slots;
    unsigned bits; /* 1 << bits slots; 0 before the first candidate */
};

/* One thread's share of a depth: live samples [lo, hi), the candidates they name (indexes
 * into its own table, until merged), and what ends at each node of the depth. */
struct scan {
    struct build *b;
    struct cand_table own;
    struct cand_table *table; /* &own, or the build's table for the first scan */
    size_t lo, hi;
    uint32_t depth, level_lo;
    size_t n_par;
    struct other_sums *self; /* per node of the depth */
    size_t cap_self;
    uint32_t *to_global; /* merging: own candidate -> the build's */
    size_t cap_to_global;
    int failed;
};

struct build {
    struct flame_tree *t;
    const uint32_t *loc_frame; /* the main profile's location -> frame, for direct paths */
    struct sample *samp;
    size_t n;
    int64_t threshold;
    uint32_t other_frame;
    /* Copied paths, root first, back to back; copy_at[sample] is the start or SIZE_MAX. */
    uint32_t *copies;
    size_t copies_len, copies_cap;
    size_t *copy_at;

    /* The samples still being placed (ascending) and the node each has reached. */
    uint32_t *live, *live_node;
    size_t n_live;
    uint8_t *split; /* per node: some sample continued below it */
    /* The current depth's candidates; with several scans, merged into this table. */
    struct cand_table table;
    struct scan scans[JOBS_MAX];
    size_t n_cpus;
    /* Scratch of depth_place, per parent of the depth and per kept candidate. */
    uint32_t *group;
    size_t cap_group;
    struct other_sums *other;
    size_t cap_other;
    uint64_t *kept;
    size_t cap_kept;
};

int64_t flametree_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return a > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t clamp_value(int64_t v)
{
    return v < 0 ? 0 : v > VALUE_CLAMP ? VALUE_CLAMP : v;
}

static uint64_t frame_hash(uint32_t name, uint32_t file, int64_t line, int kind)
{
    uint64_t h = (uint64_t)name * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)file + ((uint64_t)kind << 40)) * 0xc2b2ae3d27d4eb4full;
    h ^= (uint64_t)line * 0x165667b19e3779f9ull;
    return h ^ (h >> 32);
}

static int frame_table_grow(struct flame_tree *t)
{
    size_t n_slots = t->n_frame_slots ? t->n_frame_slots * 2 : 1024;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->n_frames; i++) {
        const struct flame_frame *f = &t->frames[i];
        size_t j = frame_hash(f->name, f->file, f->line, f->kind) & (n_slots - 1);
        while (slots[j])
            j = (j + 1) & (n_slots - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(t->frame_slots);
    t->frame_slots = slots;
    t->n_frame_slots = n_slots;
    return 0;
}

uint32_t flametree_frame(struct flame_tree *t, const char *name, const char *file, int64_t line,
                         int kind)
{
    uint32_t name_id = strset_intern(&t->strings, name, strlen(name));
    uint32_t file_id = strset_intern(&t->strings, file, strlen(file));
    if (name_id == UINT32_MAX || file_id == UINT32_MAX)
        return UINT32_MAX;
    if ((t->n_frames + 1) * 2 > t->n_frame_slots && frame_table_grow(t) < 0)
        return UINT32_MAX;
    size_t mask = t->n_frame_slots - 1;
    size_t j = frame_hash(name_id, file_id, line, kind) & mask;
    for (; t->frame_slots[j]; j = (j + 1) & mask) {
        const struct flame_frame *f = &t->frames[t->frame_slots[j] - 1];
        if (f->name == name_id && f->file == file_id && f->line == line && f->kind == kind)
            return t->frame_slots[j] - 1;
    }
    if (t->n_frames == t->frames_cap) {
        size_t cap = t->frames_cap ? t->frames_cap * 2 : 256;
        struct flame_frame *frames = realloc(t->frames, cap * sizeof *frames);
        if (!frames)
            return UINT32_MAX;
        t->frames = frames;
        t->frames_cap = cap;
    }
    struct flame_frame *f = &t->frames[t->n_frames];
    memset(f, 0, sizeof *f);
    f->name = name_id;
    f->file = file_id;
    f->line = line;
    f->kind = (uint8_t)kind;
    if (kind == FLAME_PLAIN) {
        f->machinery = (uint8_t)imports_is_machinery(name, file);
        f->module = !strcmp(name, "<module>");
    }
    t->frame_slots[j] = (uint32_t)t->n_frames + 1;
    return (uint32_t)t->n_frames++;
}

static const char *type_name(const struct profile *p, int idx)
{
    return p->strings[p->sample_types[idx].type];
}

int flametree_metric(const struct profile *p, const char *metric, int *value_idx, int *count_idx,
                     ms_error *err)
{
    if (p->n_sample_types == 0)
        return ms_error_set(err, "the profile has no sample types");
    int v = metric ? profile_find_sample_type(p, metric) : (int)p->default_sample_type;
    if (v < 0) {
        char list[512] = "";
        size_t o = 0;
        for (size_t i = 0; i < p->n_sample_types && o < sizeof list; i++)
            o += snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", type_name(p, (int)i));
        return ms_error_set(err, "the profile has no metric '%s'; available: %s", metric, list);
    }
    *value_idx = v;
    *count_idx = -1;
    const char *name = type_name(p, v);
    size_t len = strlen(name);
    if (len > 6 && !strcmp(name + len - 6, "_space") && len < 200) {
        char want[256];
        snprintf(want, sizeof want, "%.*s_objects", (int)(len - 6), name);
        *count_idx = profile_find_sample_type(p, want);
    }
    return 0;
}

/* Maps every location of `p` to a frame (single-line locations) or UINT32_MAX (the rest),
 * and interns every frame any of its lines needs. */
static int map_locations(struct flame_tree *t, const struct profile *p, uint32_t **out)
{
    uint32_t *loc_frame = malloc((p->n_locations ? p->n_locations : 1) * sizeof *loc_frame);
    if (!loc_frame)
        return -1;
    for (size_t l = 0; l < p->n_locations; l++) {
        const struct profile_location *loc = &p->locations[l];
        loc_frame[l] = UINT32_MAX;
        if (loc->n_lines == 0) {
            char addr[32];
            snprintf(addr, sizeof addr, "0x%llx", (unsigned long long)loc->address);
            loc_frame[l] = flametree_frame(t, addr, "", 0, FLAME_PLAIN);
            if (loc_frame[l] == UINT32_MAX)
                goto fail;
        } else if (loc->n_lines == 1) {
            const struct profile_line *ln = &p->lines[loc->first_line];
            const struct profile_function *fn = &p->functions[ln->function];
            loc_frame[l] = flametree_frame(t, p->strings[fn->name], p->strings[fn->filename],
                                           ln->line, FLAME_PLAIN);
            if (loc_frame[l] == UINT32_MAX)
                goto fail;
        }
    }
    *out = loc_frame;
    return 0;
fail:
    free(loc_frame);
    return -1;
}

/* Appends the root-first frames of one sample of `p` to a growable array. */
static int append_frames(struct flame_tree *t, const struct profile *p, const uint32_t *loc_frame,
                         const struct profile_sample *s, uint32_t **arr, size_t *len, size_t *cap)
{
    size_t start = *len;
    for (uint32_t k = s->n_locs; k-- > 0;) {
        uint32_t l = p->stack_locs[s->first_loc + k];
        const struct profile_location *loc = &p->locations[l];
        uint32_t n_lines = loc_frame[l] != UINT32_MAX ? 1 : loc->n_lines;
        if (*len + n_lines > *cap) {
            size_t ncap = (*cap ? *cap * 2 : 4096) + n_lines;
            uint32_t *a = realloc(*arr, ncap * sizeof *a);
            if (!a)
                return -1;
            *arr = a;
            *cap = ncap;
        }
        if (*len - start + n_lines > FLAME_MAX_DEPTH)
            return 0;
        if (loc_frame[l] != UINT32_MAX) {
            (*arr)[(*len)++] = loc_frame[l];
            continue;
        }
        /* Inlined lines: the last is the caller, so root-first order is reversed. */
        for (uint32_t m = n_lines; m-- > 0;) {
            const struct profile_line *ln = &p->lines[loc->first_line + m];
            const struct profile_function *fn = &p->functions[ln->function];
            uint32_t f = flametree_frame(t, p->strings[fn->name], p->strings[fn->filename],
                                         ln->line, FLAME_PLAIN);
            if (f == UINT32_MAX)
                return -1;
            (*arr)[(*len)++] = f;
        }
    }
    return 0;
}

static int sample_needs_copy(const struct flame_tree *t, const struct profile *p,
                             const uint32_t *loc_frame, const struct profile_sample *s,
                             int raw_imports)
{
    if (t->has_base)
        return 1; /* a diff rewrites every frame (diff_normalize) */
    for (uint32_t k = 0; k < s->n_locs; k++) {
        uint32_t f = loc_frame[p->stack_locs[s->first_loc + k]];
        if (f == UINT32_MAX || (!raw_imports && t->frames[f].machinery))
            return 1;
    }
    return 0;
}

static inline uint32_t path_frame(const struct build *b, uint32_t s, uint32_t d)
{
    const struct sample *pa = &b->samp[s];
    return pa->direct ? b->loc_frame[pa->ids[pa->len - 1 - d]] : pa->ids[d];
}

/* Fibonacci hashing: the top bits of the product depend on every bit of the key. */
static size_t key_slot(uint64_t key, unsigned bits)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

/* Doubles a candidate table (at least 1024 slots) and puts every candidate back. */
static int cands_rehash(struct cand_table *tb)
{
    unsigned bits = tb->bits ? tb->bits + 1 : 10;
    size_t n_slots = (size_t)1 << bits;
    struct cand_slot *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t c = 0; c < tb->n; c++) {
        size_t j = key_slot(tb->cands[c].key, bits);
        while (slots[j].cand)
            j = (j + 1) & (n_slots - 1);
        slots[j] = (struct cand_slot){tb->cands[c].key, (uint32_t)c + 1};
        tb->cands[c].slot = (uint32_t)j;
    }
    free(tb->slots);
    tb->slots = slots;
    tb->bits = bits;
    return 0;
}

/* The candidate child `key` (parent << 32 | frame), made when new; NO_NODE on ENOMEM. The
 * key sits in the slot, so a lookup touches one cache line of the table. */
static uint32_t cand_find(struct cand_table *tb, uint64_t key)
{
    if ((tb->n + 1) * 2 > ((size_t)1 << tb->bits) && cands_rehash(tb) < 0)
        return NO_NODE;
    size_t mask = ((size_t)1 << tb->bits) - 1, j = key_slot(key, tb->bits);
    for (; tb->slots[j].cand; j = (j + 1) & mask)
        if (tb->slots[j].key == key)
            return tb->slots[j].cand - 1;
    if (tb->n == tb->cap) {
        size_t cap = tb->cap ? tb->cap * 2 : 1024;
        struct cand *cands = realloc(tb->cands, cap * sizeof *cands);
        if (!cands)
            return NO_NODE;
        tb->cands = cands;
        tb->cap = cap;
    }
    uint32_t c = (uint32_t)tb->n++;
    tb->cands[c] = (struct cand){.key = key, .node = NO_NODE, .slot = (uint32_t)j};
    tb->slots[j] = (struct cand_slot){key, c + 1};
    return c;
}

/* Empties a table for the next depth, in time proportional to its candidates. */
static void cands_clear(struct cand_table *tb)
{
    for (size_t c = 0; c < tb->n; c++)
        tb->slots[tb->cands[c].slot].cand = 0;
    tb->n = 0;
}

static void cands_free(struct cand_table *tb)
{
    free(tb->cands);
    free(tb->slots);
}

/* Makes sure `need` entries fit in a scratch array of `elem` bytes (capacity *cap). */
static int scratch_reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    void *a = realloc(*arr, n * elem);
    if (!a)
        return -1;
    *arr = a;
    *cap = n;
    return 0;
}

static int node_new(struct build *b, uint32_t frame, uint32_t parent, uint32_t depth)
{
    struct flame_tree *t = b->t;
    if (t->n_nodes >= INT32_MAX)
        return -1; /* node indexes are 32-bit; memory runs out long before */
    if (t->n_nodes == t->nodes_cap) {
        size_t cap = t->nodes_cap ? t->nodes_cap * 2 : 1024;
        struct flame_node *nodes = realloc(t->nodes, cap * sizeof *nodes);
        if (nodes)
            t->nodes = nodes;
        uint8_t *split = realloc(b->split, cap);
        if (split)
            b->split = split;
        if (!nodes || !split)
            return -1;
        t->nodes_cap = cap;
    }
    struct flame_node *nd = &t->nodes[t->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->frame = frame;
    nd->parent = parent;
    nd->depth = depth;
    b->split[t->n_nodes] = 0;
    if (depth > t->max_depth)
        t->max_depth = depth;
    return (int)t->n_nodes++;
}

/* Sorts a parent's kept children (frame << 32 | candidate) by frame: insertion sort for the
 * few children most nodes have, qsort for the rest. */
static int kept_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void kept_sort(uint64_t *a, size_t n)
{
    if (n > 32) {
        qsort(a, n, sizeof *a, kept_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && a[j - 1] > a[j]; j--) {
            uint64_t x = a[j];
            a[j] = a[j - 1];
            a[j - 1] = x;
        }
}

/* Places the live samples one frame deeper. They sit at the nodes [level_lo, level_hi) of
 * depth `depth`: each sample either ends there (the node's self) or continues into the child
 * named by its next frame. Children wide enough become nodes (each parent's children
 * contiguous, sorted by frame, "(other)" last), the rest merge into their parent's "(other)",
 * and only the samples of new nodes stay live. */
/* A scan's share of the live samples: each ends at its node (the node's self) or names the
 * candidate child its next frame leads to. Live samples stay in sample order, so the samples
 * and their stacks are read in ascending addresses; consecutive samples often continue into
 * the same child. */
static void *live_scan(void *arg)
{
    struct scan *sc = arg;
    struct build *b = sc->b;
    uint32_t depth = sc->depth;
    memset(sc->self, 0, sc->n_par * sizeof *sc->self);
    uint64_t last_key = UINT64_MAX;
    uint32_t last = NO_NODE;
    for (size_t i = sc->lo; i < sc->hi; i++) {
        /* The stacks are too far apart for the hardware to guess: fetch the frame a few
         * samples ahead. */
        if (i + PREFETCH_AHEAD < sc->hi) {
            const struct sample *q = &b->samp[b->live[i + PREFETCH_AHEAD]];
            if (q->len > depth)
                __builtin_prefetch(q->direct ? &q->ids[q->len - 1 - depth] : &q->ids[depth]);
        }
        uint32_t s = b->live[i], node = b->live_node[i];
        const struct sample *sp = &b->samp[s];
        if (sp->len == depth) {
            struct other_sums *o = &sc->self[node - sc->level_lo];
            o->total = flametree_add(o->total, sp->value);
            o->count = flametree_add(o->count, sp->count);
            o->base = flametree_add(o->base, sp->base);
            b->live_node[i] = NO_NODE;
            continue;
        }
        uint64_t key = (uint64_t)node << 32 | path_frame(b, s, depth);
        uint32_t c = key == last_key ? last : cand_find(sc->table, key);
        if (c == NO_NODE) {
            sc->failed = 1;
            return NULL;
        }
        last_key = key;
        last = c;
        struct cand *cd = &sc->table->cands[c];
        cd->total = flametree_add(cd->total, sp->value);
        cd->count = flametree_add(cd->count, sp->count);
        cd->base = flametree_add(cd->base, sp->base);
        b->live_node[i] = c;
    }
    return NULL;
}

/* Folds the other scans' candidates into the build's table (renumbering their samples') and
 * every scan's self sums into the nodes; marks the parents that have children-to-be. */
static int scans_merge(struct build *b, size_t n_scans, uint32_t level_lo)
{
    struct flame_tree *t = b->t;
    for (size_t k = 1; k < n_scans; k++) {
        struct scan *sc = &b->scans[k];
        if (scratch_reserve((void **)&sc->to_global, &sc->cap_to_global, sc->own.n,
                            sizeof *sc->to_global) < 0)
            return -1;
        for (size_t c = 0; c < sc->own.n; c++) {
            const struct cand *from = &sc->own.cands[c];
            uint32_t g = cand_find(&b->table, from->key);
            if (g == NO_NODE)
                return -1;
            struct cand *to = &b->table.cands[g];
            to->total = flametree_add(to->total, from->total);
            to->count = flametree_add(to->count, from->count);
            to->base = flametree_add(to->base, from->base);
            sc->to_global[c] = g;
        }
        for (size_t i = sc->lo; i < sc->hi; i++)
            if (b->live_node[i] != NO_NODE)
                b->live_node[i] = sc->to_global[b->live_node[i]];
        cands_clear(&sc->own);
    }
    for (size_t k = 0; k < n_scans; k++)
        for (size_t i = 0; i < b->scans[k].n_par; i++) {
            const struct other_sums *o = &b->scans[k].self[i];
            struct flame_node *nd = &t->nodes[level_lo + i];
            nd->self = flametree_add(nd->self, o->total);
            nd->count_self = flametree_add(nd->count_self, o->count);
            nd->base_self = flametree_add(nd->base_self, o->base);
        }
    for (size_t c = 0; c < b->table.n; c++)
        b->split[b->table.cands[c].key >> 32] = 1;
    return 0;
}

/* Places the live samples one frame deeper. They sit at the nodes [level_lo, level_hi) of
 * depth `depth`: each sample either ends there (the node's self) or continues into the child
 * named by its next frame. Children wide enough become nodes (each parent's children
 * contiguous, sorted by frame, "(other)" last), the rest merge into their parent's "(other)",
 * and only the samples of new nodes stay live. Big depths are scanned by several threads,
 * each with its own table, merged before anything is decided: the tree does not depend on
 * how many there were. */
static int depth_place(struct build *b, uint32_t depth, uint32_t level_lo, uint32_t level_hi)
{
    struct flame_tree *t = b->t;
    size_t n_par = level_hi - level_lo;
    size_t n_scans = b->n_live / SCAN_MIN_SAMPLES;
    if (n_scans > b->n_cpus)
        n_scans = b->n_cpus;
    if (n_scans < 1)
        n_scans = 1;
    for (size_t k = 0; k < n_scans; k++) {
        struct scan *sc = &b->scans[k];
        sc->b = b;
        sc->table = k == 0 ? &b->table : &sc->own;
        sc->lo = b->n_live / n_scans * k;
        sc->hi = k + 1 == n_scans ? b->n_live : b->n_live / n_scans * (k + 1);
        sc->depth = depth;
        sc->level_lo = level_lo;
        sc->n_par = n_par;
        sc->failed = 0;
        if (scratch_reserve((void **)&sc->self, &sc->cap_self, n_par, sizeof *sc->self) < 0)
            return -1;
    }
    for (size_t k = n_scans; k < b->n_cpus; k++)
        b->scans[k].n_par = 0;
    jobs_run(live_scan, b->scans, sizeof *b->scans, n_scans);
    for (size_t k = 0; k < n_scans; k++)
        if (b->scans[k].failed)
            return -1;
    if (scans_merge(b, n_scans, level_lo) < 0)
        return -1;

    /* Keep the wide candidates, grouped by parent (a counting sort over this depth's nodes);
     * the narrow ones' sums go to their parent's "(other)". In a diff, what shrank to nothing
     * stays as a zero-width node: the text and folded outputs list it, and the SVG's tooltips
     * of its ancestors count it. */
    if (scratch_reserve((void **)&b->group, &b->cap_group, n_par + 1, sizeof *b->group) < 0 ||
        scratch_reserve((void **)&b->other, &b->cap_other, n_par, sizeof *b->other) < 0 ||
        scratch_reserve((void **)&b->kept, &b->cap_kept, b->table.n, sizeof *b->kept) < 0)
        return -1;
    memset(b->group, 0, (n_par + 1) * sizeof *b->group);
    memset(b->other, 0, n_par * sizeof *b->other);
    for (size_t c = 0; c < b->table.n; c++) {
        const struct cand *cd = &b->table.cands[c];
        uint32_t par = (uint32_t)(cd->key >> 32) - level_lo;
        int64_t wide = cd->total > cd->base ? cd->total : cd->base;
        if (wide == 0 || wide < b->threshold) {
            struct other_sums *o = &b->other[par];
            o->total = flametree_add(o->total, cd->total);
            o->count = flametree_add(o->count, cd->count);
            o->base = flametree_add(o->base, cd->base);
        } else {
            b->group[par + 1]++;
        }
    }
    for (size_t i = 0; i < n_par; i++)
        b->group[i + 1] += b->group[i];
    for (size_t c = 0; c < b->table.n; c++) {
        const struct cand *cd = &b->table.cands[c];
        int64_t wide = cd->total > cd->base ? cd->total : cd->base;
        if (wide != 0 && wide >= b->threshold)
            b->kept[b->group[(cd->key >> 32) - level_lo]++] = (cd->key << 32) | c;
    }
    /* group[i] is now the end of parent i's run (and the start of parent i + 1's). */

    for (size_t i = 0, at = 0; i < n_par; i++) {
        uint32_t par = level_lo + (uint32_t)i, first_child = (uint32_t)t->n_nodes;
        size_t end = b->group[i];
        kept_sort(b->kept + at, end - at);
        for (; at < end; at++) {
            struct cand *cd = &b->table.cands[(uint32_t)b->kept[at]];
            int c = node_new(b, (uint32_t)(b->kept[at] >> 32), par, depth + 1);
            if (c < 0)
                return -1;
            t->nodes[c].total = cd->total;
            t->nodes[c].count_total = cd->count;
            t->nodes[c].base_total = cd->base;
            cd->node = (uint32_t)c;
        }
        const struct other_sums *o = &b->other[i];
        if (o->total || o->count || o->base) {
            int c = node_new(b, b->other_frame, par, depth + 1);
            if (c < 0)
                return -1;
            t->nodes[c].total = t->nodes[c].self = o->total;
            t->nodes[c].count_total = t->nodes[c].count_self = o->count;
            t->nodes[c].base_total = t->nodes[c].base_self = o->base;
        }
        t->nodes[par].first_child = first_child;
        t->nodes[par].n_children = (uint32_t)t->n_nodes - first_child;
    }

    /* The samples of new nodes go on, still in sample order. */
    size_t kept = 0;
    for (size_t i = 0; i < b->n_live; i++) {
        uint32_t c = b->live_node[i];
        if (c == NO_NODE || b->table.cands[c].node == NO_NODE)
            continue;
        b->live[kept] = b->live[i];
        b->live_node[kept++] = b->table.cands[c].node;
    }
    b->n_live = kept;
    cands_clear(&b->table);
    return 0;
}

/* The tree was made a depth at a time; this renumbers it into the layout a depth-first
 * construction has (and earlier versions had): a node's children are numbered when it is
 * reached in preorder, one block after the blocks of the nodes reached before it. A node
 * that no sample continued below has first_child 0; one whose continuing samples were all
 * pruned away to nothing has the number of the next block and no children. Outputs that
 * walk nodes in index order therefore see exactly what they always saw. */
static int layout_depth_first(struct build *b)
{
    struct flame_tree *t = b->t;
    size_t n = t->n_nodes;
    struct walk {
        uint32_t node, first, n, next;
    } *stack = malloc(((size_t)t->max_depth + 2) * sizeof *stack);
    uint32_t *perm = malloc(n * sizeof *perm);
    if (!stack || !perm) {
        free(stack);
        free(perm);
        return -1;
    }
    perm[0] = 0;
    uint32_t next = 1;
    size_t top = 0;
    stack[0] = (struct walk){0, t->nodes[0].first_child, t->nodes[0].n_children, 0};
    for (;;) {
        struct walk *w = &stack[top];
        if (w->next == 0) { /* just reached: number its children */
            struct flame_node *nd = &t->nodes[w->node];
            nd->first_child = b->split[w->node] ? next : 0;
            for (uint32_t k = 0; k < w->n; k++)
                perm[w->first + k] = next++;
        }
        if (w->next == w->n) {
            if (top == 0)
                break;
            top--;
            continue;
        }
        uint32_t child = w->first + w->next++;
        const struct flame_node *cn = &t->nodes[child];
        if (t->frames[cn->frame].kind != FLAME_OTHER) {
            stack[++top] = (struct walk){child, cn->first_child, cn->n_children, 0};
        }
    }
    free(stack);
    for (size_t i = 0; i < n; i++) {
        struct flame_node *nd = &t->nodes[i];
        if (nd->parent != UINT32_MAX)
            nd->parent = perm[nd->parent];
        if (!b->split[i]) /* "(other)" nodes too: never split */
            nd->first_child = 0;
    }
    /* Apply the permutation in place: each swap puts one node where it belongs. */
    for (size_t i = 0; i < n; i++)
        while (perm[i] != i) {
            uint32_t j = perm[i];
            struct flame_node x = t->nodes[j];
            t->nodes[j] = t->nodes[i];
            t->nodes[i] = x;
            perm[i] = perm[j];
            perm[j] = j;
        }
    free(perm);
    return 0;
}

/* Adds the samples of one profile to the build: values, counts, paths. */
static int add_profile(struct build *b, const struct profile *p, int is_base, int value_idx,
                       int count_idx, int raw_imports)
{
    struct flame_tree *t = b->t;
    uint32_t *loc_frame;
    if (map_locations(t, p, &loc_frame) < 0)
        return -1;
    if (!is_base)
        b->loc_frame = loc_frame;
    /* Most profiles have no location that needs a copy: then skip looking at every stack. */
    int any_copy = t->has_base;
    for (size_t l = 0; l < p->n_locations && !any_copy; l++)
        any_copy =
            loc_frame[l] == UINT32_MAX || (!raw_imports && t->frames[loc_frame[l]].machinery);
    int rc = -1;
    for (size_t i = 0; i < p->n_samples; i++) {
        const struct profile_sample *s = &p->samples[i];
        size_t k = b->n++;
        int64_t v = clamp_value(p->values[i * p->n_sample_types + (size_t)value_idx]);
        b->samp[k].value = is_base ? 0 : v;
        b->samp[k].base = is_base ? v : 0;
        b->samp[k].count = !is_base && count_idx >= 0
                               ? clamp_value(p->values[i * p->n_sample_types + (size_t)count_idx])
                               : 0;
        if (!is_base && (!any_copy || !sample_needs_copy(t, p, loc_frame, s, raw_imports))) {
            b->samp[k].ids = p->stack_locs + s->first_loc;
            b->samp[k].len = s->n_locs;
            b->samp[k].direct = 1;
            b->copy_at[k] = SIZE_MAX;
            continue;
        }
        b->copy_at[k] = b->copies_len;
        if (append_frames(t, p, loc_frame, s, &b->copies, &b->copies_len, &b->copies_cap) < 0)
            goto out;
        b->samp[k].ids = NULL;
        b->samp[k].len = (uint32_t)(b->copies_len - b->copy_at[k]);
        b->samp[k].direct = 0;
    }
    rc = 0;
out:
    if (is_base)
        free(loc_frame);
    return rc;
}

static void build_release(struct build *b)
{
    free(b->samp);
    free((void *)b->loc_frame);
    free(b->copies);
    free(b->copy_at);
    free(b->live);
    free(b->live_node);
    free(b->split);
    cands_free(&b->table);
    for (size_t k = 0; k < JOBS_MAX; k++) {
        cands_free(&b->scans[k].own);
        free(b->scans[k].self);
        free(b->scans[k].to_global);
    }
    free(b->group);
    free(b->other);
    free(b->kept);
}

/* Collapses the import machinery of the copied paths, learning from every stack first. */
static int collapse_imports(struct build *b)
{
    struct imports *im = imports_new();
    if (!im)
        return -1;
    for (size_t k = 0; k < b->n; k++)
        if (b->copy_at[k] != SIZE_MAX &&
            imports_learn(im, b->t, b->copies + b->copy_at[k], b->samp[k].len) < 0)
            goto fail;
    for (size_t k = 0; k < b->n; k++) {
        if (b->copy_at[k] == SIZE_MAX)
            continue;
        size_t len = b->samp[k].len;
        if (imports_collapse(im, b->t, b->copies + b->copy_at[k], &len) < 0)
            goto fail;
        b->samp[k].len = (uint32_t)len;
    }
    imports_free(im);
    return 0;
fail:
    imports_free(im);
    return -1;
}

/* The program's directory in one profile (samples [lo, hi) of the build): that of the first
 * absolute, non-library root frame (e.g. manage.py's); when the root frames are relative (the
 * script run as "python3 app.py" before 3.9), the longest directory holding every absolute
 * non-library file of its stacks. */
static void profile_script_dir(const struct build *b, size_t lo, size_t hi, char *out, size_t len)
{
    const struct flame_tree *t = b->t;
    out[0] = '\0';
    for (size_t k = lo; k < hi; k++) {
        if (b->copy_at[k] == SIZE_MAX || !b->samp[k].len)
            continue;
        const char *file = t->strings.strs[t->frames[b->copies[b->copy_at[k]]].file];
        const char *slash = strrchr(file, '/');
        if (file[0] != '/' || !slash || imports_relative_path(file, NULL) != file ||
            (size_t)(slash - file) >= len)
            continue;
        snprintf(out, len, "%.*s", (int)(slash - file), file);
        return;
    }
    size_t have = 0; /* 0: nothing yet; else strlen(out) + 1 */
    for (size_t k = lo; k < hi; k++) {
        if (b->copy_at[k] == SIZE_MAX)
            continue;
        for (uint32_t d = 0; d < b->samp[k].len; d++) {
            const struct flame_frame *fr = &t->frames[b->copies[b->copy_at[k] + d]];
            if (fr->kind != FLAME_PLAIN && fr->kind != FLAME_IMPORT)
                continue;
            const char *file = t->strings.strs[fr->file];
            const char *slash = strrchr(file, '/');
            if (file[0] != '/' || !slash || imports_relative_path(file, NULL) != file)
                continue;
            size_t dl = (size_t)(slash - file);
            if (!have) {
                if (dl >= len)
                    continue;
                memcpy(out, file, dl);
                out[dl] = '\0';
                have = dl + 1;
                continue;
            }
            /* Shorten out to the common directory of out and this file's directory. */
            size_t i = 0, cut = 0;
            while (i < have - 1 && i < dl && out[i] == file[i]) {
                i++;
                if (out[i] == '/' || out[i] == '\0')
                    cut = i;
            }
            if (i == have - 1 && (i == dl || file[i] == '/'))
                continue; /* out already holds this file's directory */
            out[cut] = '\0';
            have = cut + 1;
        }
    }
}

/* A diff matches frames by function and import-root-relative file, lines only with
 * diff_lines: rewrites the copied paths of samples [lo, hi) (one profile) to such frames. */
static int diff_normalize(struct build *b, size_t lo, size_t hi, int keep_lines)
{
    struct flame_tree *t = b->t;
    char dir[1024];
    profile_script_dir(b, lo, hi, dir, sizeof dir);
    size_t n0 = t->n_frames;
    uint32_t *map = malloc((n0 ? n0 : 1) * sizeof *map);
    if (!map)
        return -1;
    memset(map, 0xff, (n0 ? n0 : 1) * sizeof *map);
    for (size_t k = lo; k < hi; k++) {
        if (b->copy_at[k] == SIZE_MAX)
            continue;
        uint32_t *path = b->copies + b->copy_at[k];
        for (uint32_t d = 0; d < b->samp[k].len; d++) {
            uint32_t f = path[d];
            if (f >= n0)
                continue;
            if (map[f] == UINT32_MAX) {
                const struct flame_frame *fr = &t->frames[f];
                if (fr->kind != FLAME_PLAIN && fr->kind != FLAME_IMPORT) {
                    map[f] = f;
                } else {
                    /* Copies: interning may move the strings and the frames. */
                    char name[1024], file[1024];
                    snprintf(name, sizeof name, "%s", t->strings.strs[fr->name]);
                    snprintf(file, sizeof file, "%s",
                             imports_relative_path(t->strings.strs[fr->file], dir[0] ? dir : NULL));
                    int64_t line = keep_lines || fr->kind != FLAME_PLAIN ? fr->line : 0;
                    map[f] = flametree_frame(t, name, file, line, fr->kind);
                    if (map[f] == UINT32_MAX) {
                        free(map);
                        return -1;
                    }
                }
            }
            path[d] = map[f];
        }
    }
    free(map);
    return 0;
}

int flametree_build(const struct profile *p, const struct profile *base,
                    const struct flame_options *opt, struct flame_tree **out, ms_error *err)
{
    int value_idx, count_idx, base_idx = -1, base_count;
    if (flametree_metric(p, opt->metric, &value_idx, &count_idx, err) < 0)
        return -1;
    const char *metric = type_name(p, value_idx);
    if (base && flametree_metric(base, metric, &base_idx, &base_count, err) < 0)
        return ms_error_prefix(err, "base profile");
    size_t n = p->n_samples + (base ? base->n_samples : 0);
    if (n >= UINT32_MAX)
        return ms_error_set(err, "too many samples to draw (%zu)", n);

    struct flame_tree *t = calloc(1, sizeof *t);
    struct build b = {.t = t, .n_cpus = (size_t)jobs_cpus()};
    if (opt->threads > 0)
        b.n_cpus = opt->threads < JOBS_MAX ? (size_t)opt->threads : JOBS_MAX;
    if (!t)
        goto nomem;
    t->metric = metric;
    t->metric_unit = p->strings[p->sample_types[value_idx].unit];
    t->has_counts = count_idx >= 0;
    t->has_base = base != NULL;

    size_t n1 = n ? n : 1;
    b.samp = malloc(n1 * sizeof *b.samp);
    b.live = malloc(n1 * sizeof *b.live);
    b.live_node = malloc(n1 * sizeof *b.live_node);
    b.copy_at = malloc(n1 * sizeof *b.copy_at);
    if (!b.samp || !b.live || !b.live_node || !b.copy_at)
        goto nomem;

    uint32_t root_frame = flametree_frame(t, "all", "", 0, FLAME_ROOT);
    b.other_frame = flametree_frame(t, "(other)", "", 0, FLAME_OTHER);
    if (root_frame == UINT32_MAX || b.other_frame == UINT32_MAX)
        goto nomem;
    if (add_profile(&b, p, 0, value_idx, count_idx, opt->raw_imports) < 0)
        goto nomem;
    if (base && add_profile(&b, base, 1, base_idx, -1, opt->raw_imports) < 0)
        goto nomem;
    if (!opt->raw_imports && collapse_imports(&b) < 0)
        goto nomem;
    if (base && (diff_normalize(&b, 0, p->n_samples, opt->diff_lines) < 0 ||
                 diff_normalize(&b, p->n_samples, b.n, opt->diff_lines) < 0))
        goto nomem;
    for (size_t k = 0; k < b.n; k++)
        if (b.copy_at[k] != SIZE_MAX)
            b.samp[k].ids = b.copies + b.copy_at[k];

    int64_t total = 0, count = 0, base_total = 0;
    for (size_t k = 0; k < b.n; k++) {
        b.live[k] = (uint32_t)k;
        b.live_node[k] = 0;
        total = flametree_add(total, b.samp[k].value);
        count = flametree_add(count, b.samp[k].count);
        base_total = flametree_add(base_total, b.samp[k].base);
    }
    double thr = opt->min_fraction > 0 ? opt->min_fraction * (double)total : 0;
    b.threshold = thr >= 9.2e18 ? INT64_MAX : (int64_t)thr;
    if (node_new(&b, root_frame, UINT32_MAX, 0) < 0)
        goto nomem;
    t->nodes[0].total = total;
    t->nodes[0].count_total = count;
    t->nodes[0].base_total = base_total;
    /* A node at depth d holds its samples' frame d - 1; the root holds none. */
    b.n_live = b.n;
    for (uint32_t depth = 0, lo = 0, hi = 1; b.n_live; depth++) {
        if (depth_place(&b, depth, lo, hi) < 0)
            goto nomem;
        lo = hi;
        hi = (uint32_t)t->n_nodes;
    }
    if (layout_depth_first(&b) < 0)
        goto nomem;
    /* Children are numbered after their parent: a reverse pass sums the widths up. */
    for (size_t i = t->n_nodes; i-- > 0;) {
        struct flame_node *nd = &t->nodes[i];
        if (!base)
            nd->width = nd->total;
        else
            nd->width =
                flametree_add(nd->width, nd->self > nd->base_self ? nd->self : nd->base_self);
        if (base && nd->parent != UINT32_MAX)
            t->nodes[nd->parent].width = flametree_add(t->nodes[nd->parent].width, nd->width);
    }
    build_release(&b);
    *out = t;
    return 0;
nomem:
    build_release(&b);
    flametree_free(t);
    return ms_error_set(err, "out of memory building the flame graph");
}

const char *flametree_name(const struct flame_tree *t, uint32_t node)
{
    return t->strings.strs[t->frames[t->nodes[node].frame].name];
}

const char *flametree_file(const struct flame_tree *t, uint32_t node)
{
    return t->strings.strs[t->frames[t->nodes[node].frame].file];
}

void flametree_free(struct flame_tree *t)
{
    if (!t)
        return;
    strset_free(&t->strings);
    free(t->frames);
    free(t->nodes);
    free(t->frame_slots);
    free(t);
}
