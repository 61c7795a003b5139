/*
 * flametree.c - merging stacks into the pruned tree (see flametree.h).
 *
 * Construction is top-down partitioning rather than inserting stack after stack: all samples
 * start in the root's group; a group is split by the frame each sample has at the next depth
 * (a radix sort of (frame, sample) pairs), each split becomes a child, and only children wide
 * enough to survive pruning are split further. The work is therefore proportional to the
 * samples times the depth at which their group becomes too narrow to draw, and a profile of
 * a million distinct 40-frame stacks never materialises forty million nodes.
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

#define VALUE_CLAMP ((int64_t)1 << 62)
/* Deeper stacks (only possible with inlined multi-line locations) are cut at the leaf end:
 * the tree is walked recursively, and no real Python stack is this deep. */
#define FLAME_MAX_DEPTH PROFILE_MAX_STACK_DEPTH

/* One input stack and its values, together: splitting touches one cache line per sample. */
struct sample {
    const uint32_t *ids; /* direct: location indexes leaf first; else frame indexes root first */
    uint32_t len;
    uint32_t direct;
    int64_t value, count, base;
};

struct build {
    struct flame_tree *t;
    const uint32_t *loc_frame; /* the main profile's location -> frame, for direct paths */
    struct sample *samp;
    size_t n;
    uint32_t *order;  /* permutation of samples; each node owns a contiguous range */
    uint64_t *pairs;  /* scratch: frame << 32 | sample */
    uint64_t *sorted; /* scratch for the radix sort */
    uint32_t *node_lo, *node_hi;
    int64_t threshold;
    uint32_t other_frame;
    /* Copied paths, root first, back to back; copy_at[sample] is the start or SIZE_MAX. */
    uint32_t *copies;
    size_t copies_len, copies_cap;
    size_t *copy_at;
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

/* Stable LSD radix sort of pairs by their upper 32 bits, 11 bits per pass, only as many passes
 * as the largest frame index needs. */
static void pairs_sort(uint64_t *a, uint64_t *tmp, size_t n, uint32_t max_key)
{
    if (n < 64) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && (a[j - 1] >> 32) > (a[j] >> 32); j--) {
                uint64_t x = a[j];
                a[j] = a[j - 1];
                a[j - 1] = x;
            }
        return;
    }
    uint64_t *src = a, *dst = tmp;
    for (unsigned shift = 32; shift < 64 && (shift == 32 || (max_key >> (shift - 32)));
         shift += 11) {
        size_t count[2048] = {0};
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & 2047]++;
        size_t sum = 0;
        for (size_t i = 0; i < 2048; i++) {
            size_t c = count[i];
            count[i] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 2047]++] = src[i];
        uint64_t *x = src;
        src = dst;
        dst = x;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

static int node_new(struct build *b, uint32_t frame, uint32_t parent, uint32_t depth)
{
    struct flame_tree *t = b->t;
    if (t->n_nodes == t->nodes_cap) {
        size_t cap = t->nodes_cap ? t->nodes_cap * 2 : 1024;
        struct flame_node *nodes = realloc(t->nodes, cap * sizeof *nodes);
        uint32_t *lo = realloc(b->node_lo, cap * sizeof *lo);
        if (lo)
            b->node_lo = lo;
        uint32_t *hi = realloc(b->node_hi, cap * sizeof *hi);
        if (hi)
            b->node_hi = hi;
        if (nodes)
            t->nodes = nodes;
        if (!nodes || !lo || !hi)
            return -1;
        t->nodes_cap = cap;
    }
    struct flame_node *nd = &t->nodes[t->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->frame = frame;
    nd->parent = parent;
    nd->depth = depth;
    if (depth > t->max_depth)
        t->max_depth = depth;
    return (int)t->n_nodes++;
}

/* Splits node `id`'s samples (order[lo..hi), all sharing its first `depth` frames) into its
 * children and recurses into the wide ones. */
static int node_split(struct build *b, uint32_t id)
{
    struct flame_tree *t = b->t;
    uint32_t lo = b->node_lo[id], hi = b->node_hi[id], depth = t->nodes[id].depth;
    /* One pass: samples whose stack ends here are the node's own, the others are keyed by
     * their next frame. Groups are big and samples scattered, so the loads are prefetched a
     * few samples ahead (the sample, then the stack word it points to). */
    int64_t self = 0, cself = 0, bself = 0;
    uint32_t max_key = 0, first_key = UINT32_MAX, end = lo;
    int all_same = 1;
    for (uint32_t i = lo; i < hi; i++) {
        if (i + 16 < hi)
            __builtin_prefetch(&b->samp[b->order[i + 16]]);
        if (i + 8 < hi) {
            const struct sample *q = &b->samp[b->order[i + 8]];
            if (q->len > depth)
                __builtin_prefetch(q->direct ? &q->ids[q->len - 1 - depth] : &q->ids[depth]);
        }
        uint32_t s = b->order[i];
        const struct sample *sp = &b->samp[s];
        if (sp->len == depth) {
            self = flametree_add(self, sp->value);
            cself = flametree_add(cself, sp->count);
            bself = flametree_add(bself, sp->base);
            continue;
        }
        uint32_t f = path_frame(b, s, depth);
        b->pairs[end++] = (uint64_t)f << 32 | s;
        max_key = f > max_key ? f : max_key;
        if (first_key == UINT32_MAX)
            first_key = f;
        all_same &= f == first_key;
    }
    t->nodes[id].self = self;
    t->nodes[id].count_self = cself;
    t->nodes[id].base_self = bself;
    if (end == lo)
        return 0;
    /* The children's samples become order[lo .. end), sorted by frame. */
    if (!all_same)
        pairs_sort(b->pairs + lo, b->sorted + lo, end - lo, max_key);
    for (uint32_t i = lo; i < end; i++)
        b->order[i] = (uint32_t)b->pairs[i];

    /* Create the children (contiguous), then recurse: node_new may move the node array. */
    uint32_t first_child = (uint32_t)t->n_nodes, n_children = 0;
    int64_t other = 0, cother = 0, bother = 0;
    for (uint32_t a = lo; a < end;) {
        uint32_t key = (uint32_t)(b->pairs[a] >> 32), e = a;
        int64_t total = 0, count = 0, base = 0;
        for (; e < end && (uint32_t)(b->pairs[e] >> 32) == key; e++) {
            if (e + 8 < end)
                __builtin_prefetch(&b->samp[b->order[e + 8]]);
            const struct sample *sp = &b->samp[b->order[e]];
            total = flametree_add(total, sp->value);
            count = flametree_add(count, sp->count);
            base = flametree_add(base, sp->base);
        }
        /* In a diff, what shrank to nothing stays as a zero-width node: the text and folded
         * outputs list it, and the SVG's tooltips of its ancestors count it. */
        int64_t wide = total > base ? total : base;
        if (wide == 0 || wide < b->threshold) {
            other = flametree_add(other, total);
            cother = flametree_add(cother, count);
            bother = flametree_add(bother, base);
        } else {
            int c = node_new(b, key, id, depth + 1);
            if (c < 0)
                return -1;
            t->nodes[c].total = total;
            t->nodes[c].count_total = count;
            t->nodes[c].base_total = base;
            b->node_lo[c] = a;
            b->node_hi[c] = e;
            n_children++;
        }
        a = e;
    }
    if (other || bother || cother) {
        int c = node_new(b, b->other_frame, id, depth + 1);
        if (c < 0)
            return -1;
        t->nodes[c].total = t->nodes[c].self = other;
        t->nodes[c].count_total = t->nodes[c].count_self = cother;
        t->nodes[c].base_total = t->nodes[c].base_self = bother;
        b->node_lo[c] = b->node_hi[c] = 0;
        n_children++;
    }
    t->nodes[id].first_child = first_child;
    t->nodes[id].n_children = n_children;
    for (uint32_t c = first_child; c < first_child + n_children; c++)
        if (t->frames[t->nodes[c].frame].kind != FLAME_OTHER && node_split(b, c) < 0)
            return -1;
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
    int any_copy = 0;
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
    free(b->order);
    free(b->pairs);
    free(b->sorted);
    free(b->node_lo);
    free(b->node_hi);
    free((void *)b->loc_frame);
    free(b->copies);
    free(b->copy_at);
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
    struct build b = {.t = t};
    if (!t)
        goto nomem;
    t->metric = metric;
    t->metric_unit = p->strings[p->sample_types[value_idx].unit];
    t->has_counts = count_idx >= 0;
    t->has_base = base != NULL;

    size_t n1 = n ? n : 1;
    b.samp = malloc(n1 * sizeof *b.samp);
    b.order = malloc(n1 * sizeof *b.order);
    b.pairs = malloc(n1 * sizeof *b.pairs);
    b.sorted = malloc(n1 * sizeof *b.sorted);
    b.copy_at = malloc(n1 * sizeof *b.copy_at);
    if (!b.samp || !b.order || !b.pairs || !b.sorted || !b.copy_at)
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
    for (size_t k = 0; k < b.n; k++)
        if (b.copy_at[k] != SIZE_MAX)
            b.samp[k].ids = b.copies + b.copy_at[k];

    int64_t total = 0, count = 0, base_total = 0;
    for (size_t k = 0; k < b.n; k++) {
        b.order[k] = (uint32_t)k;
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
    b.node_lo[0] = 0;
    b.node_hi[0] = (uint32_t)b.n;
    /* A node at depth d holds its samples' frame d - 1; the root holds none. */
    if (node_split(&b, 0) < 0)
        goto nomem;
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
