/*
 * collector.c - per-stack totals, the live table and the lazy peak tracker (see collector.h).
 *
 * The live table is open addressing with linear probing keyed by block address (0 never
 * occurs: it marks empty slots and such events are ignored), kept at most half full: at rate 1
 * every allocation probes it for an address that is usually absent, and such a probe runs to
 * the next empty slot (2.5 slots on average at half load, 8.5 at three quarters). Deletion
 * shifts later entries back instead of leaving tombstones, so a long recording with heavy
 * churn keeps probe lengths short.
 */
#include "collector.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unbias.h"

/* Estimated (unbiased) blocks and bytes of a set of sampled blocks: the sums of their
 * weights (unbias.h). At rate 1 every weight is 1 and these are exact integers (doubles hold
 * integers exactly up to 2^53). */
struct est {
    double count, bytes;
};

static inline void est_add(struct est *e, double weight, uint64_t size)
{
    e->count += weight;
    e->bytes += weight * (double)size;
}

static inline void est_sub(struct est *e, double weight, uint64_t size)
{
    e->count -= weight;
    e->bytes -= weight * (double)size;
}

struct stack_totals {
    uint64_t sampled, sampled_bytes; /* sampled allocations (raw): 0 = none */
    struct est alloc, live;
    /* Peak tracker, valid when peak_gen equals the collector's generation. */
    uint64_t peak_gen;
    struct est since_alloc; /* allocated after the peak, still live */
    struct est since_freed; /* allocated before it, freed after */
};

struct live_entry {
    uint64_t addr; /* 0 = empty */
    uint64_t size;
    uint64_t seq;
    uint32_t stack;
};

/* An allocation or free waiting to be applied to the live table (see collector_alloc). */
struct pending_op {
    uint64_t addr;
    uint64_t size;  /* allocations only */
    uint32_t stack; /* allocations only */
    uint32_t is_alloc;
};

/* Allocations and frees are applied this many events late: each event's live-table slot is
 * prefetched when it arrives, so the cache misses of consecutive events (a table as big as
 * the heap's block count, probed at random) overlap instead of following one another. */
#define COLLECTOR_PENDING 16

struct collector {
    struct profile *p;
    struct stacks *stacks;
    struct collector_options opt;

    struct stack_totals *totals;
    uint32_t totals_cap;

    struct live_entry *live;
    uint32_t live_cap; /* power of two */
    uint32_t live_used;

    uint64_t seq;      /* allocations so far */
    uint64_t peak_gen; /* bumped at every new peak */
    double peak_heap;  /* track_peak: estimated live bytes at the latest peak */
    struct collector_stats st;

    struct pending_op pending[COLLECTOR_PENDING]; /* a ring, oldest at pending_first */
    uint32_t pending_first, pending_n;
};

static uint32_t addr_slot(uint64_t addr, uint32_t cap)
{
    addr ^= addr >> 29;
    addr *= 0xbf58476d1ce4e5b9ull;
    addr ^= addr >> 32;
    return (uint32_t)addr & (cap - 1);
}

struct collector *collector_new(struct profile *p, const struct stacks_resolver *r,
                                const struct collector_options *opt)
{
    if (!opt->rate)
        return NULL;
    struct collector *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->p = p;
    c->opt = *opt;
    c->stacks = stacks_new(p, r, opt->stack_slots);
    c->live_cap = 4096;
    c->live = calloc(c->live_cap, sizeof *c->live);
    if (!c->stacks || !c->live) {
        collector_free(c);
        return NULL;
    }
    return c;
}

void collector_free(struct collector *c)
{
    if (!c)
        return;
    stacks_free(c->stacks);
    free(c->totals);
    free(c->live);
    free(c);
}

void collector_epoch(struct collector *c)
{
    stacks_epoch(c->stacks);
}

static void pending_flush(struct collector *c);

void collector_stats(struct collector *c, struct collector_stats *out)
{
    pending_flush(c);
    *out = c->st;
    if (c->opt.rate <= 1)
        out->heap_estimate = (double)c->st.live_bytes;
    else if (out->heap_estimate < 0) /* floating drift after many adds and subtracts */
        out->heap_estimate = 0;
}

/* The stack's totals, its "since the peak" counters reset if a peak happened since it was
 * last touched: at that peak nothing had happened since, by definition. */
static struct stack_totals *totals_touch(struct collector *c, uint32_t stack)
{
    struct stack_totals *t = &c->totals[stack];
    if (t->peak_gen != c->peak_gen) {
        t->peak_gen = c->peak_gen;
        t->since_alloc = t->since_freed = (struct est){0, 0};
    }
    return t;
}

static int totals_reserve(struct collector *c, uint32_t stack)
{
    if (stack < c->totals_cap)
        return 0;
    uint32_t cap = c->totals_cap ? c->totals_cap : 256;
    while (cap <= stack)
        cap *= 2;
    struct stack_totals *t = realloc(c->totals, (size_t)cap * sizeof *t);
    if (!t)
        return -1;
    memset(t + c->totals_cap, 0, (size_t)(cap - c->totals_cap) * sizeof *t);
    c->totals = t;
    c->totals_cap = cap;
    return 0;
}

static int live_grow(struct collector *c)
{
    uint32_t cap = c->live_cap * 2;
    struct live_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < c->live_cap; i++) {
        if (!c->live[i].addr)
            continue;
        uint32_t j = addr_slot(c->live[i].addr, cap);
        while (t[j].addr)
            j = (j + 1) & (cap - 1);
        t[j] = c->live[i];
    }
    free(c->live);
    c->live = t;
    c->live_cap = cap;
    return 0;
}

/* Removes slot i, shifting back the entries of its probe run that could live earlier. */
static void live_remove_slot(struct collector *c, uint32_t i)
{
    uint32_t mask = c->live_cap - 1;
    uint32_t j = i;
    for (;;) {
        c->live[i].addr = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!c->live[j].addr)
                return;
            uint32_t home = addr_slot(c->live[j].addr, c->live_cap);
            /* Entry j may move to i when its home is not cyclically within (i, j]. */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        c->live[i] = c->live[j];
        i = j;
    }
}

static void block_retire(struct collector *c, uint32_t slot)
{
    struct live_entry e = c->live[slot];
    live_remove_slot(c, slot);
    c->live_used--;
    struct stack_totals *t = totals_touch(c, e.stack);
    /* The same weight as at the allocation (a pure function of size and rate), so a stack
     * whose blocks are all freed returns to 0 up to floating rounding. */
    double w = unbias_weight(e.size, c->opt.rate);
    est_sub(&t->live, w, e.size);
    if (c->opt.track_peak) {
        if (e.seq > c->st.peak_seq)
            est_sub(&t->since_alloc, w, e.size);
        else
            est_add(&t->since_freed, w, e.size);
    }
    c->st.live_blocks--;
    c->st.live_bytes -= e.size;
    c->st.heap_estimate -= w * (double)e.size;
    c->st.free_events++;
}

/* The first empty slot from j on. */
static uint32_t live_find_empty(const struct collector *c, uint32_t j)
{
    uint32_t mask = c->live_cap - 1;
    while (c->live[j].addr)
        j = (j + 1) & mask;
    return j;
}

static uint32_t live_find(const struct collector *c, uint64_t addr)
{
    uint32_t mask = c->live_cap - 1;
    for (uint32_t j = addr_slot(addr, c->live_cap); c->live[j].addr; j = (j + 1) & mask)
        if (c->live[j].addr == addr)
            return j;
    return UINT32_MAX;
}

static void free_apply(struct collector *c, uint64_t addr)
{
    uint32_t slot = addr ? live_find(c, addr) : UINT32_MAX;
    if (slot == UINT32_MAX) {
        c->st.ignored_frees++;
        return;
    }
    block_retire(c, slot);
}

int collector_stack(struct collector *c, uint32_t slot, uint64_t tstate,
                    const struct mshook_frame *frames, uint32_t nframes, uint32_t flags,
                    ms_error *err)
{
    int cut = ((flags & MSHOOK_STACK_TRUNCATED) ? STACKS_CUT_DEPTH : 0) |
              ((flags & MSHOOK_STACK_INVALID) ? STACKS_CUT_INVALID : 0);
    return stacks_define(c->stacks, slot, tstate, frames, nframes, cut, err);
}

/* Applies one allocation of `stack` (its totals already reserved). */
static void alloc_apply(struct collector *c, uint64_t addr, uint64_t size, uint32_t stack)
{
    c->st.alloc_events++;
    struct stack_totals *t = totals_touch(c, stack);
    double w = unbias_weight(size, c->opt.rate);
    t->sampled++;
    t->sampled_bytes += size;
    est_add(&t->alloc, w, size);

    if (!addr) {
        c->st.untracked++;
        return;
    }
    /* One probe run finds both a stale entry for the address (its FREE was dropped: the block
     * is gone) and, since deletions leave no tombstones, the empty slot a new entry goes in. */
    uint32_t mask = c->live_cap - 1;
    uint32_t j = addr_slot(addr, c->live_cap);
    for (; c->live[j].addr; j = (j + 1) & mask) {
        if (c->live[j].addr == addr) {
            block_retire(c, j);
            j = addr_slot(addr, c->live_cap);
            j = live_find_empty(c, j);
            break;
        }
    }
    if (c->live_used >= COLLECTOR_MAX_LIVE) {
        c->st.untracked++;
        return;
    }
    if ((c->live_used + 1) * 2 > c->live_cap) {
        if (live_grow(c) < 0) {
            c->st.untracked++;
            return;
        }
        j = live_find_empty(c, addr_slot(addr, c->live_cap));
    }
    c->seq++;
    c->live[j] = (struct live_entry){addr, size, c->seq, stack};
    c->live_used++;
    t = totals_touch(c, stack);
    est_add(&t->live, w, size);
    c->st.live_blocks++;
    c->st.live_bytes += size;
    c->st.heap_estimate += w * (double)size;
    if (!c->opt.track_peak)
        return;
    /* The peak of the estimated heap (at rate 1 the exact one): raw sampled bytes would
     * weigh a large block far above the many small ones it samples among. */
    if (c->st.heap_estimate > c->peak_heap) {
        /* A new peak: everything live now is the peak set; counters restart lazily. */
        c->peak_heap = c->st.heap_estimate;
        c->st.peak_live_bytes = c->st.live_bytes;
        c->st.peak_seq = c->seq;
        c->peak_gen++;
    } else {
        est_add(&t->since_alloc, w, size);
    }
}

static void pending_apply_oldest(struct collector *c)
{
    const struct pending_op *op = &c->pending[c->pending_first];
    if (op->is_alloc)
        alloc_apply(c, op->addr, op->size, op->stack);
    else
        free_apply(c, op->addr);
    c->pending_first = (c->pending_first + 1) % COLLECTOR_PENDING;
    c->pending_n--;
}

static void pending_flush(struct collector *c)
{
    while (c->pending_n)
        pending_apply_oldest(c);
}

static void pending_push(struct collector *c, uint64_t addr, uint64_t size, uint32_t stack,
                         uint32_t is_alloc)
{
    if (c->pending_n == COLLECTOR_PENDING)
        pending_apply_oldest(c);
    __builtin_prefetch(&c->live[addr_slot(addr, c->live_cap)]);
    uint32_t i = (c->pending_first + c->pending_n) % COLLECTOR_PENDING;
    c->pending[i] = (struct pending_op){addr, size, stack, is_alloc};
    c->pending_n++;
}

int collector_alloc(struct collector *c, uint64_t addr, uint64_t size, uint32_t slot, ms_error *err)
{
    uint32_t stack;
    if (stacks_slot(c->stacks, slot, &stack, err) < 0)
        return -1;
    if (totals_reserve(c, stack) < 0)
        return ms_error_errno(err, ENOMEM, "recording an allocation");
    pending_push(c, addr, size, stack, 1);
    return 0;
}

void collector_release(struct collector *c, uint64_t addr)
{
    pending_push(c, addr, 0, 0, 0);
}

/* Live-at-peak (estimated) of one stack; see collector.h for the identity used. */
static struct est totals_at_peak(const struct collector *c, const struct stack_totals *t)
{
    struct est e = t->live;
    if (t->peak_gen != c->peak_gen)
        return e;
    e.count = e.count - t->since_alloc.count + t->since_freed.count;
    e.bytes = e.bytes - t->since_alloc.bytes + t->since_freed.bytes;
    return e;
}

int collector_finish(struct collector *c, ms_error *err)
{
    pending_flush(c);
    static const char *const types[][2] = {
        {"alloc_objects", "count"}, {"alloc_space", "bytes"},  {"inuse_objects", "count"},
        {"inuse_space", "bytes"},   {"peak_objects", "count"}, {"peak_space", "bytes"},
    };
    uint32_t n_types = c->opt.track_peak ? 6 : 4;
    for (uint32_t i = 0; i < n_types; i++)
        if (profile_add_sample_type(c->p, types[i][0], types[i][1]) == UINT32_MAX)
            return ms_error_errno(err, ENOMEM, "building the profile");
    uint32_t space = profile_intern(c->p, "space");
    uint32_t bytes_unit = profile_intern(c->p, "bytes");
    if (space == UINT32_MAX || bytes_unit == UINT32_MAX)
        return ms_error_errno(err, ENOMEM, "building the profile");
    c->p->period_type.type = space;
    c->p->period_type.unit = bytes_unit;
    c->p->period = (int64_t)(c->opt.rate > INT64_MAX ? INT64_MAX : c->opt.rate);
    int def = profile_find_sample_type(c->p, "inuse_space");
    c->p->default_sample_type = def < 0 ? 0 : (size_t)def;

    uint32_t n = stacks_count(c->stacks);
    for (uint32_t id = 0; id < n; id++) {
        const struct stack_totals *t = &c->totals[id];
        if (!t->sampled)
            continue;
        int64_t v[6];
        v[0] = unbias_round(t->alloc.count);
        v[1] = unbias_round(t->alloc.bytes);
        v[2] = unbias_round(t->live.count);
        v[3] = unbias_round(t->live.bytes);
        if (c->opt.track_peak) {
            struct est pk = totals_at_peak(c, t);
            v[4] = unbias_round(pk.count);
            v[5] = unbias_round(pk.bytes);
        }
        const uint32_t *locs;
        uint32_t nlocs, thread;
        stacks_get(c->stacks, id, &locs, &nlocs, &thread);
        /* The "bytes" label: the mean of the sampled blocks (at rate 1 of all of them). In
         * sampled mode that leans to the stack's large blocks, as sampling does, but it stays
         * stable where the estimated mean (alloc_space / alloc_objects) would swing with each
         * rare small sample of a stack seen a few times. */
        int64_t avg = (int64_t)(t->sampled_bytes / t->sampled);
        if (profile_add_sample(c->p, locs, nlocs, v, thread, avg) < 0)
            return ms_error_errno(err, ENOMEM, "building the profile");
    }
    return 0;
}
