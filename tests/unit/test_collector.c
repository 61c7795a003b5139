/*
 * test_collector.c - the collector and the stack interner, driven with hand-made events and a
 * table resolver standing in for the target's code objects (the real resolver is exercised
 * by tests/integration/test_attach.c against live processes).
 *
 * Checks: exact per-stack totals and the profile built from them (sample types, leaf-first
 * stacks, thread labels, block-size label), frees of unknown blocks, re-used addresses in the
 * live table, code-object address reuse noticed at the next event, synthetic frames, unbiasing at a
 * sampling rate (each block by its own size, in a stack that mixes sizes), the live table against a
 * brute-force model under heavy churn, the lazy peak tracker against a brute-force model that
 * snapshots the live set at every peak, and stack slots (redefinition, undefined and out-of-range
 * slots, thread relabelling).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector.h"
#include "unbias.h"

/* --- a resolver over a small table of fake code objects --- */

struct fake_code {
    uint64_t addr;
    int identity; /* bumped to simulate the address being reused by another code object */
    const char *name;
    const char *file;
    int firstlineno;
};

struct fake_target {
    struct fake_code codes[8];
    int n;
    int code_calls;
    int line_calls;
};

static int fake_code(void *ctx, uint64_t addr, struct stacks_code *out)
{
    struct fake_target *t = ctx;
    t->code_calls++;
    for (int i = 0; i < t->n; i++)
        if (t->codes[i].addr == addr) {
            out->identity = (const char *)&t->codes[i] + t->codes[i].identity;
            out->name = t->codes[i].name;
            out->filename = t->codes[i].file;
            out->firstlineno = t->codes[i].firstlineno;
            return 0;
        }
    return -1;
}

/* line = first line + lasti / 2, so tests can choose lines through lasti. */
static int fake_line(void *ctx, const struct stacks_code *code, uint64_t addr, uint64_t lasti)
{
    (void)addr;
    ((struct fake_target *)ctx)->line_calls++;
    return code->firstlineno + (int)(lasti / 2);
}

static const char *fake_thread(void *ctx, uint64_t tstate)
{
    (void)ctx;
    return tstate == 0x1000 ? "MainThread" : "thread 42";
}

static struct fake_target target;
static struct stacks_resolver resolver = {&target, fake_code, fake_line, fake_thread};

static int setup(void **state)
{
    (void)state;
    memset(&target, 0, sizeof target);
    struct fake_code codes[] = {
        {0xa000, 0, "main", "app.py", 1},
        {0xb000, 0, "Handler.hot", "app.py", 10},
        {0xc000, 0, "cold", "lib/cold.py", 20},
        {0xd000, 0, "leak", "app.py", 30},
    };
    memcpy(target.codes, codes, sizeof codes);
    target.n = 4;
    return 0;
}

/* --- helpers reading the built profile --- */

static const char *str(const struct profile *p, uint32_t i)
{
    return p->strings[i];
}

static const char *loc_name(const struct profile *p, uint32_t loc)
{
    const struct profile_location *l = &p->locations[loc];
    return str(p, p->functions[p->lines[l->first_line].function].name);
}

/* The sample whose leaf function is `leaf` (and thread label `thread`, when not NULL). */
static const struct profile_sample *sample_by_leaf(const struct profile *p, const char *leaf,
                                                   const char *thread)
{
    for (size_t i = 0; i < p->n_samples; i++) {
        const struct profile_sample *s = &p->samples[i];
        if (s->n_locs && !strcmp(loc_name(p, p->stack_locs[s->first_loc]), leaf) &&
            (!thread || !strcmp(str(p, s->thread), thread)))
            return s;
    }
    return NULL;
}

static int64_t value(const struct profile *p, const struct profile_sample *s, const char *type)
{
    int t = profile_find_sample_type(p, type);
    assert_true(t >= 0);
    return p->values[(size_t)(s - p->samples) * p->n_sample_types + (size_t)t];
}

/* A STACK record defining `slot`, then an ALLOC naming it, as the hook sends them. */
static void alloc_in_slot(struct collector *c, uint32_t slot, uint64_t addr, uint64_t size,
                          uint64_t tstate, const struct mshook_frame *f, uint32_t n, uint32_t flags)
{
    ms_error err;
    assert_int_equal(collector_stack(c, slot, tstate, f, n, flags, &err), 0);
    assert_int_equal(collector_alloc(c, addr, size, slot, &err), 0);
}

static void alloc(struct collector *c, uint64_t addr, uint64_t size, uint64_t tstate, uint64_t leaf,
                  uint64_t lasti)
{
    struct mshook_frame f[2] = {{leaf, lasti}, {0xa000, 4}};
    alloc_in_slot(c, 0, addr, size, tstate, f, 2, 0);
}

/* --- tests --- */

static void test_exact_totals_and_profile_shape(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    assert_non_null(c);
    for (int i = 0; i < 10; i++)
        alloc(c, 0x10000 + i * 64, 1000, 0x1000, 0xb000, 6); /* hot: 10 x 1000 */
    for (int i = 0; i < 10; i++)
        collector_release(c, 0x10000 + i * 64);
    alloc(c, 0x20000, 100, 0x1000, 0xc000, 0); /* cold: 1 x 100, freed */
    collector_release(c, 0x20000);
    alloc(c, 0x30000, 700, 0x1000, 0xd000, 0); /* leak: kept */
    alloc(c, 0x30100, 300, 0x1000, 0xd000, 0);
    alloc(c, 0x40000, 50, 0x2000, 0xd000, 0); /* leak in another thread */
    collector_release(c, 0x99999);            /* never sampled: ignored */

    struct collector_stats st;
    collector_stats(c, &st);
    assert_int_equal(st.alloc_events, 14);
    assert_int_equal(st.free_events, 11);
    assert_int_equal(st.ignored_frees, 1);
    assert_int_equal(st.live_blocks, 3);
    assert_int_equal(st.live_bytes, 1050);
    assert_true(st.heap_estimate == 1050.0);

    ms_error err;
    assert_int_equal(collector_finish(c, &err), 0);
    assert_int_equal(p->n_sample_types, 4);
    assert_string_equal(str(p, p->sample_types[p->default_sample_type].type), "inuse_space");
    assert_string_equal(str(p, p->period_type.type), "space");
    assert_int_equal(p->period, 1);
    assert_int_equal(p->n_samples, 4);

    const struct profile_sample *hot = sample_by_leaf(p, "Handler.hot", NULL);
    assert_non_null(hot);
    assert_int_equal(hot->n_locs, 2);
    assert_string_equal(loc_name(p, p->stack_locs[hot->first_loc + 1]), "main");
    assert_string_equal(str(p, hot->thread), "MainThread");
    assert_int_equal(hot->block_bytes, 1000);
    assert_int_equal(value(p, hot, "alloc_objects"), 10);
    assert_int_equal(value(p, hot, "alloc_space"), 10000);
    assert_int_equal(value(p, hot, "inuse_space"), 0);
    /* line = firstlineno + lasti / 2 through the resolver */
    const struct profile_location *l = &p->locations[p->stack_locs[hot->first_loc]];
    assert_int_equal(p->lines[l->first_line].line, 13);

    const struct profile_sample *leak = sample_by_leaf(p, "leak", "MainThread");
    assert_non_null(leak);
    assert_int_equal(value(p, leak, "inuse_objects"), 2);
    assert_int_equal(value(p, leak, "inuse_space"), 1000);
    assert_int_equal(leak->block_bytes, 500);
    const struct profile_sample *leak2 = sample_by_leaf(p, "leak", "thread 42");
    assert_non_null(leak2);
    assert_int_equal(value(p, leak2, "inuse_space"), 50);
    const struct profile_sample *cold = sample_by_leaf(p, "cold", NULL);
    assert_int_equal(value(p, cold, "alloc_space"), 100);
    assert_int_equal(value(p, cold, "inuse_space"), 0);
    collector_free(c);
    profile_free(p);
}

static void test_reused_block_address_retires_old_block(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    alloc(c, 0x5000, 100, 0x1000, 0xb000, 0);
    alloc(c, 0x5000, 40, 0x1000, 0xc000, 0); /* the FREE of the first was dropped */
    struct collector_stats st;
    collector_stats(c, &st);
    assert_int_equal(st.live_blocks, 1);
    assert_int_equal(st.live_bytes, 40);
    collector_release(c, 0x5000);
    collector_release(c, 0x5000);
    collector_stats(c, &st);
    assert_int_equal(st.live_blocks, 0);
    assert_int_equal(st.ignored_frees, 1);
    collector_free(c);
    profile_free(p);
}

static void test_code_address_reuse_is_seen_at_once(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    alloc(c, 0x1, 8, 0x1000, 0xc000, 0);
    int lines = target.line_calls;
    alloc(c, 0x2, 8, 0x1000, 0xc000, 0); /* same identity: the location comes from the cache */
    assert_int_equal(target.line_calls, lines);

    /* The code object at 0xc000 dies and another one takes its address: the very next
     * allocation (no epoch in between, as within one drain) is named after the new one. */
    target.codes[2].identity = 1;
    target.codes[2].name = "reborn";
    alloc(c, 0x3, 8, 0x1000, 0xc000, 0);
    assert_int_equal(target.line_calls, lines + 1);
    collector_epoch(c);
    alloc(c, 0x4, 8, 0x1000, 0xc000, 0); /* unchanged: same stack */

    ms_error err;
    assert_int_equal(collector_finish(c, &err), 0);
    const struct profile_sample *old = sample_by_leaf(p, "cold", NULL);
    const struct profile_sample *neu = sample_by_leaf(p, "reborn", NULL);
    assert_non_null(old);
    assert_non_null(neu);
    assert_int_equal(value(p, old, "alloc_objects"), 2);
    assert_int_equal(value(p, neu, "alloc_objects"), 2);
    collector_free(c);
    profile_free(p);
}

static void test_synthetic_frames(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    ms_error err;
    struct mshook_frame bad[2] = {{0xdead, 0}, {0xa000, 0}};
    alloc_in_slot(c, 1, 0x1, 8, 0x1000, bad, 2, MSHOOK_STACK_TRUNCATED);
    alloc_in_slot(c, 2, 0x2, 8, 0x1000, NULL, 0, 0);
    /* A hostile frame count is clamped, not trusted. */
    struct mshook_frame many[MSHOOK_MAX_FRAMES];
    for (int i = 0; i < MSHOOK_MAX_FRAMES; i++)
        many[i] = (struct mshook_frame){0xa000, (uint64_t)i};
    alloc_in_slot(c, 3, 0x3, 8, 0x1000, many, 1u << 30, 0);
    assert_int_equal(collector_finish(c, &err), 0);

    const struct profile_sample *u = sample_by_leaf(p, "<unknown>", NULL);
    assert_non_null(u);
    assert_int_equal(u->n_locs, 3);
    assert_string_equal(loc_name(p, p->stack_locs[u->first_loc + 2]), "<truncated>");
    assert_non_null(sample_by_leaf(p, "<no Python frame>", NULL));
    const struct profile_sample *deep = sample_by_leaf(p, "main", NULL);
    assert_non_null(deep);
    assert_int_equal(deep->n_locs, MSHOOK_MAX_FRAMES);
    collector_free(c);
    profile_free(p);
}

static void test_sampled_values_are_unbiased(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    const uint64_t rate = 4096;
    struct collector_options opt = {.rate = rate, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    for (int i = 0; i < 30; i++)
        alloc(c, 0x100 + i * 16, 512, 0x1000, 0xb000, 0);
    for (int i = 0; i < 10; i++)
        collector_release(c, 0x100 + i * 16);
    struct collector_stats st;
    collector_stats(c, &st);
    assert_true(st.heap_estimate > 20 * 512 * 8.0 && st.heap_estimate < 20 * 512 * 9.0);
    ms_error err;
    assert_int_equal(collector_finish(c, &err), 0);
    assert_int_equal(p->period, (int64_t)rate);
    const struct profile_sample *hot = sample_by_leaf(p, "Handler.hot", NULL);
    double w = unbias_weight(512, rate); /* each sampled block counts 1/p(512) blocks */
    assert_int_equal(value(p, hot, "alloc_objects"), llround(30 * w));
    assert_int_equal(value(p, hot, "alloc_space"), llround(30 * 512 * w));
    assert_int_equal(value(p, hot, "inuse_objects"), llround(20 * w));
    assert_int_equal(value(p, hot, "inuse_space"), llround(20 * 512 * w));
    assert_true(w > 8.5 && w < 8.6); /* 512-byte blocks at 4 KiB: 1 / (1 - e^-1/8) */
    collector_free(c);
    profile_free(p);
}

/* One stack that makes many small blocks and a few large ones (a list comprehension: its
 * objects and its list buffer): every block counts by the probability of its own size, not
 * of the stack's average (Go's per-record scaling gave a few blocks here, not ~4000). */
static void test_mixed_sizes_weigh_each_block(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    const uint64_t rate = 512 * 1024;
    struct collector_options opt = {.rate = rate, .stack_slots = 64, .track_peak = 1};
    struct collector *c = collector_new(p, &resolver, &opt);
    for (int i = 0; i < 4; i++)
        alloc(c, 0x1000 + i * 64, 50, 0x1000, 0xb000, 0);
    alloc(c, 0x9000, 400000, 0x1000, 0xb000, 0);
    collector_release(c, 0x1000);
    ms_error err;
    assert_int_equal(collector_finish(c, &err), 0);
    const struct profile_sample *hot = sample_by_leaf(p, "Handler.hot", NULL);
    double small = unbias_weight(50, rate), big = unbias_weight(400000, rate);
    assert_true(small > 10000 && big < 2);
    assert_int_equal(value(p, hot, "alloc_objects"), llround(4 * small + big));
    assert_int_equal(value(p, hot, "alloc_space"), llround(4 * 50 * small + 400000 * big));
    assert_int_equal(value(p, hot, "inuse_objects"), llround(3 * small + big));
    assert_int_equal(value(p, hot, "inuse_space"), llround(3 * 50 * small + 400000 * big));
    /* The peak: all five live, on the estimated heap. */
    assert_int_equal(value(p, hot, "peak_objects"), llround(4 * small + big));
    /* The block-size label stays the mean of the sampled blocks. */
    assert_int_equal(hot->block_bytes, (4 * 50 + 400000) / 5);
    collector_free(c);
    profile_free(p);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define MODEL_ADDRS  3000
#define MODEL_STACKS 4

/* Random allocs and frees over a small address space (forcing probe collisions and
 * backward-shift deletions), checked against a plain array model; with track_peak the model
 * copies its per-stack live totals at every new peak. */
static void run_model(uint64_t seed, int steps)
{
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .track_peak = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    static uint64_t size_of[MODEL_ADDRS];
    static int stack_of[MODEL_ADDRS];
    memset(size_of, 0, sizeof size_of);
    uint64_t live[MODEL_STACKS] = {0}, live_n[MODEL_STACKS] = {0};
    uint64_t peak[MODEL_STACKS] = {0}, peak_n[MODEL_STACKS] = {0};
    uint64_t total = 0, peak_total = 0;
    const uint64_t leaves[MODEL_STACKS] = {0xa000, 0xb000, 0xc000, 0xd000};

    for (int i = 0; i < steps; i++) {
        int a = (int)(rng_next(&seed) % MODEL_ADDRS);
        uint64_t addr = 0x7f0000000000ull + (uint64_t)a * 4096;
        /* Drift the balance so the live set grows, shrinks and grows again. */
        int alloc_bias = (i / (steps / 6)) % 2 == 0 ? 60 : 40;
        if (size_of[a] && (int)(rng_next(&seed) % 100) >= alloc_bias) {
            collector_release(c, addr);
            live[stack_of[a]] -= size_of[a];
            live_n[stack_of[a]]--;
            total -= size_of[a];
            size_of[a] = 0;
        } else if (!size_of[a]) {
            int s = (int)(rng_next(&seed) % MODEL_STACKS);
            uint64_t size = 1 + rng_next(&seed) % 2000;
            struct mshook_frame f = {leaves[s], 0};
            alloc_in_slot(c, (uint32_t)s, addr, size, 0x1000, &f, 1, 0);
            size_of[a] = size;
            stack_of[a] = s;
            live[s] += size;
            live_n[s]++;
            total += size;
            if (total > peak_total) {
                peak_total = total;
                memcpy(peak, live, sizeof peak);
                memcpy(peak_n, live_n, sizeof peak_n);
            }
        }
    }
    struct collector_stats st;
    collector_stats(c, &st);
    assert_int_equal(st.live_bytes, total);
    assert_int_equal(st.peak_live_bytes, peak_total);
    ms_error err;
    assert_int_equal(collector_finish(c, &err), 0);
    assert_int_equal(p->n_sample_types, 6);
    const char *names[MODEL_STACKS] = {"main", "Handler.hot", "cold", "leak"};
    for (int s = 0; s < MODEL_STACKS; s++) {
        const struct profile_sample *smp = sample_by_leaf(p, names[s], NULL);
        assert_non_null(smp);
        assert_int_equal(value(p, smp, "inuse_space"), live[s]);
        assert_int_equal(value(p, smp, "inuse_objects"), live_n[s]);
        assert_int_equal(value(p, smp, "peak_space"), peak[s]);
        assert_int_equal(value(p, smp, "peak_objects"), peak_n[s]);
    }
    collector_free(c);
    profile_free(p);
}

static void test_live_table_and_peak_against_model(void **state)
{
    (void)state;
    run_model(0x1234567, 200000);
    run_model(0xfeedbeef, 50000);
    run_model(42, 1000);
}

/* Slots: an ALLOC means the stack its slot was last defined with; redefining a slot does not
 * touch what earlier allocations were charged to. */
static void test_slots_name_the_latest_definition(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    ms_error err;
    struct mshook_frame hot[1] = {{0xb000, 0}}, cold[1] = {{0xc000, 0}};
    assert_int_equal(collector_stack(c, 7, 0x1000, hot, 1, 0, &err), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(collector_alloc(c, 0x100 + i * 16, 100, 7, &err), 0);
    assert_int_equal(collector_stack(c, 7, 0x1000, cold, 1, 0, &err), 0);
    assert_int_equal(collector_alloc(c, 0x900, 30, 7, &err), 0);
    /* The same stack defined in two slots is one stack. */
    assert_int_equal(collector_stack(c, 9, 0x1000, hot, 1, 0, &err), 0);
    assert_int_equal(collector_alloc(c, 0xa00, 100, 9, &err), 0);
    assert_int_equal(collector_finish(c, &err), 0);
    assert_int_equal(p->n_samples, 2);
    assert_int_equal(value(p, sample_by_leaf(p, "Handler.hot", NULL), "alloc_space"), 600);
    assert_int_equal(value(p, sample_by_leaf(p, "cold", NULL), "alloc_space"), 30);
    collector_free(c);
    profile_free(p);
}

/* What a broken or hostile hook may send: a slot never defined is an unknown stack; a slot out
 * of range is an error with a sentence, not a crash. */
static void test_slots_undefined_and_out_of_range(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &resolver, &opt);
    ms_error err;
    assert_int_equal(collector_alloc(c, 0x100, 10, 5, &err), 0);
    assert_int_equal(collector_alloc(c, 0x200, 10, 63, &err), 0);
    assert_int_equal(collector_alloc(c, 0x300, 10, 64, &err), -1);
    assert_non_null(strstr(err.msg, "slot 64"));
    struct mshook_frame f[1] = {{0xb000, 0}};
    assert_int_equal(collector_stack(c, 1u << 31, 0x1000, f, 1, 0, &err), -1);
    assert_int_equal(collector_finish(c, &err), 0);
    const struct profile_sample *u = sample_by_leaf(p, "<unknown stack>", NULL);
    assert_non_null(u);
    assert_int_equal(value(p, u, "alloc_objects"), 2);
    collector_free(c);
    profile_free(p);
    /* More slots than the hook may have: refused. */
    p = profile_new();
    opt.stack_slots = MSHOOK_STACK_SLOTS_MAX + 1;
    assert_null(collector_new(p, &resolver, &opt));
    profile_free(p);
}

static const char *thread_label_now = "MainThread";

static const char *changing_thread(void *ctx, uint64_t tstate)
{
    (void)ctx;
    (void)tstate;
    return thread_label_now;
}

/* A thread state reused by a new thread: the slot's stack is labelled again at the next epoch
 * (the hook does not know threads die; memsnap re-reads labels once per drain). */
static void test_slots_relabel_threads_per_epoch(void **state)
{
    (void)state;
    struct stacks_resolver r = resolver;
    r.thread = changing_thread;
    thread_label_now = "MainThread";
    struct profile *p = profile_new();
    struct collector_options opt = {.rate = 1, .stack_slots = 64};
    struct collector *c = collector_new(p, &r, &opt);
    ms_error err;
    struct mshook_frame f[1] = {{0xb000, 0}};
    assert_int_equal(collector_stack(c, 3, 0x7000, f, 1, 0, &err), 0);
    assert_int_equal(collector_alloc(c, 0x100, 10, 3, &err), 0);
    thread_label_now = "thread 77";
    assert_int_equal(collector_alloc(c, 0x200, 20, 3, &err), 0); /* same epoch: old label */
    collector_epoch(c);
    assert_int_equal(collector_alloc(c, 0x300, 40, 3, &err), 0);
    assert_int_equal(collector_alloc(c, 0x400, 80, 3, &err), 0);
    assert_int_equal(collector_finish(c, &err), 0);
    assert_int_equal(value(p, sample_by_leaf(p, "Handler.hot", "MainThread"), "alloc_space"), 30);
    assert_int_equal(value(p, sample_by_leaf(p, "Handler.hot", "thread 77"), "alloc_space"), 120);
    collector_free(c);
    profile_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_exact_totals_and_profile_shape, setup),
        cmocka_unit_test_setup(test_reused_block_address_retires_old_block, setup),
        cmocka_unit_test_setup(test_code_address_reuse_is_seen_at_once, setup),
        cmocka_unit_test_setup(test_synthetic_frames, setup),
        cmocka_unit_test_setup(test_sampled_values_are_unbiased, setup),
        cmocka_unit_test_setup(test_mixed_sizes_weigh_each_block, setup),
        cmocka_unit_test_setup(test_live_table_and_peak_against_model, setup),
        cmocka_unit_test_setup(test_slots_name_the_latest_definition, setup),
        cmocka_unit_test_setup(test_slots_undefined_and_out_of_range, setup),
        cmocka_unit_test_setup(test_slots_relabel_threads_per_epoch, setup),
    };
    return cmocka_run_group_tests_name("collector", tests, NULL, NULL);
}
