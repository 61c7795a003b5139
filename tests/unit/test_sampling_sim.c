/*
 * test_sampling_sim.c - sampled estimates against the truth, end to end through the hook's own
 * sampler (sampler/hook/hook_sample.c, compiled in) and the collector, on a simulated
 * workload whose one stack mixes many tiny objects with a few large blocks: a list
 * comprehension's strs (55 bytes) and temporary ints (32 bytes), and its list buffer grown by
 * realloc as CPython's list_resize grows it (up to 16 KB). Some lists are kept, the rest
 * freed, so allocated, in-use and peak totals all differ.
 *
 * This is the case the old per-stack scaling (by the probability of the stack's average
 * block) got 50x wrong; the test only uses the collector's public interface and computes the
 * expected spread itself, from the sampling probability 1 - exp(-size/rate), so it checks
 * the collector's weighing independently of unbias.c.
 *
 * Checks: one large run at the default rate lands within 5 standard deviations (and +-15%) of
 * the truth for every view; over many seeds the mean estimate converges on the truth and the
 * seeds' spread matches the predicted variance.
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
#include "hook/hook_sample.c"

#define RATE (512u * 1024u) /* memsnap's default */
#ifndef SIM_SEEDS
#define SIM_SEEDS 40
#endif

/* --- one fake code object, one stack --- */

static int fake_code(void *ctx, uint64_t addr, struct stacks_code *out)
{
    (void)ctx;
    static const char identity = 0;
    if (addr != 0xa000)
        return -1;
    out->identity = &identity;
    out->name = "<listcomp>";
    out->filename = "work.py";
    out->firstlineno = 1;
    return 0;
}

static int fake_line(void *ctx, const struct stacks_code *code, uint64_t addr, uint64_t lasti)
{
    (void)ctx, (void)addr, (void)lasti;
    return code->firstlineno;
}

static const char *fake_thread(void *ctx, uint64_t tstate)
{
    (void)ctx, (void)tstate;
    return "MainThread";
}

static struct stacks_resolver resolver = {NULL, fake_code, fake_line, fake_thread};

/* --- the simulation --- */

/* A real total, its variance under sampling (sum over its blocks of (1-p)/p for counts,
 * size^2 (1-p)/p for bytes), and what the profile says. */
struct view {
    double count, bytes, count_var, bytes_var;
    double est_count, est_bytes;
};

struct sim {
    struct hook_sampler sampler;
    struct collector *c;
    struct profile *p;
    uint64_t next_addr;
    double live_count, live_bytes, live_count_var, live_bytes_var;
    struct view alloc, inuse, peak;
};

/* 1 - exp(-size/rate), memoized: the simulation makes few distinct sizes, a lot of times. */
static double p_sampled(uint64_t size)
{
    static double memo[1 << 15];
    if (size >= sizeof memo / sizeof memo[0])
        return -expm1(-(double)size / RATE);
    if (!memo[size])
        memo[size] = -expm1(-(double)size / RATE);
    return memo[size];
}

/* One allocation: counted in the truth, sampled as the hook samples it. Returns its address
 * when sampled, else 0. */
static uint64_t sim_alloc(struct sim *s, uint64_t size)
{
    double p = p_sampled(size);
    s->alloc.count += 1;
    s->alloc.bytes += (double)size;
    s->alloc.count_var += (1 - p) / p;
    s->alloc.bytes_var += (double)size * (double)size * (1 - p) / p;
    s->live_count += 1;
    s->live_bytes += (double)size;
    s->live_count_var += (1 - p) / p;
    s->live_bytes_var += (double)size * (double)size * (1 - p) / p;
    if (s->live_bytes > s->peak.bytes) {
        s->peak.count = s->live_count;
        s->peak.bytes = s->live_bytes;
        s->peak.count_var = s->live_count_var;
        s->peak.bytes_var = s->live_bytes_var;
    }
    s->next_addr += 16;
    if (!hook_sampler_take(&s->sampler, size))
        return 0;
    ms_error err;
    assert_int_equal(collector_alloc(s->c, s->next_addr, size, 0, &err), 0);
    return s->next_addr;
}

static void sim_free(struct sim *s, uint64_t addr, uint64_t size)
{
    double p = p_sampled(size);
    s->live_count -= 1;
    s->live_bytes -= (double)size;
    s->live_count_var -= (1 - p) / p;
    s->live_bytes_var -= (double)size * (double)size * (1 - p) / p;
    if (addr) /* the hook sends FREE records for sampled blocks only */
        collector_release(s->c, addr);
}

#define LIST_LEN 2000
#define STR_SIZE 55
#define INT_SIZE 32
#define LIST_OBJ 56

/* [str(i + 100000) for i in range(2000)], kept or freed. */
static void sim_listcomp(struct sim *s, int keep)
{
    static uint64_t strs[LIST_LEN];
    uint64_t list = sim_alloc(s, LIST_OBJ), buf = 0, buf_size = 0, allocated = 0;
    for (uint64_t i = 1; i <= LIST_LEN; i++) {
        uint64_t tmp = sim_alloc(s, INT_SIZE); /* i + 100000: a fresh int, freed at once */
        strs[i - 1] = sim_alloc(s, STR_SIZE);
        sim_free(s, tmp, INT_SIZE);
        if (i > allocated) { /* list_resize: a realloc is a free and an allocation */
            allocated = (i + (i >> 3) + 6) & ~(uint64_t)3;
            uint64_t new_size = allocated * 8;
            uint64_t nb = sim_alloc(s, new_size);
            if (buf_size)
                sim_free(s, buf, buf_size);
            buf = nb;
            buf_size = new_size;
        }
    }
    if (keep)
        return;
    for (int i = 0; i < LIST_LEN; i++)
        sim_free(s, strs[i], STR_SIZE);
    sim_free(s, buf, buf_size);
    sim_free(s, list, LIST_OBJ);
}

static double profile_total(const struct profile *p, const char *type)
{
    int t = profile_find_sample_type(p, type);
    assert_true(t >= 0);
    double sum = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        sum += (double)p->values[i * p->n_sample_types + (size_t)t];
    return sum;
}

/* Runs `lists` list comprehensions, freeing one in `free_every`, then reads the estimates. */
static void sim_run(struct sim *s, uint64_t seed, int lists, int free_every)
{
    memset(s, 0, sizeof *s);
    hook_sampler_init(&s->sampler, RATE, seed);
    s->p = profile_new();
    struct collector_options opt = {.rate = RATE, .track_peak = 1, .stack_slots = 16};
    s->c = collector_new(s->p, &resolver, &opt);
    assert_non_null(s->p);
    assert_non_null(s->c);
    struct mshook_frame f = {0xa000, 0};
    ms_error err;
    assert_int_equal(collector_stack(s->c, 0, 0x1000, &f, 1, 0, &err), 0);
    s->next_addr = 0x100000;
    for (int i = 0; i < lists; i++)
        sim_listcomp(s, i % free_every != 0);
    s->inuse.count = s->live_count;
    s->inuse.bytes = s->live_bytes;
    s->inuse.count_var = s->live_count_var;
    s->inuse.bytes_var = s->live_bytes_var;
    assert_int_equal(collector_finish(s->c, &err), 0);
    s->alloc.est_count = profile_total(s->p, "alloc_objects");
    s->alloc.est_bytes = profile_total(s->p, "alloc_space");
    s->inuse.est_count = profile_total(s->p, "inuse_objects");
    s->inuse.est_bytes = profile_total(s->p, "inuse_space");
    s->peak.est_count = profile_total(s->p, "peak_objects");
    s->peak.est_bytes = profile_total(s->p, "peak_space");
    collector_free(s->c);
    profile_free(s->p);
}

static void check_view(const char *name, const struct view *v, double max_sd)
{
    double sd_c = sqrt(v->count_var), sd_b = sqrt(v->bytes_var);
    print_message("%-6s objects %.0f est %.0f (%+.2f%%, sd %.2f%%)  bytes %.0f est %.0f "
                  "(%+.2f%%, sd %.2f%%)\n",
                  name, v->count, v->est_count, 100 * (v->est_count / v->count - 1),
                  100 * sd_c / v->count, v->bytes, v->est_bytes,
                  100 * (v->est_bytes / v->bytes - 1), 100 * sd_b / v->bytes);
    /* The workload is big enough that 5 sd fit well inside +-15%... */
    assert_true(5 * sd_c < 0.15 * v->count);
    assert_true(5 * sd_b < 0.15 * v->bytes);
    /* ...and the estimates fall within max_sd of them. */
    assert_true(fabs(v->est_count - v->count) <= max_sd * sd_c);
    assert_true(fabs(v->est_bytes - v->bytes) <= max_sd * sd_b);
}

/* ~3 GiB allocated, ~1 GiB kept: every view within 5 sd (5 sd < 15%). The peak is chosen on
 * the estimated heap, so its breakdown is the live set at a nearby moment: 1 sd more. */
static void test_one_large_run(void **state)
{
    (void)state;
    static struct sim s;
    sim_run(&s, 0x5eed, 10000, 4);
    check_view("alloc", &s.alloc, 5);
    check_view("inuse", &s.inuse, 5);
    check_view("peak", &s.peak, 6);
}

/* 40 independent seeds of a smaller run: the mean relative error converges on 0 (within 5 sd
 * of the mean) and the spread between seeds matches the predicted variance. */
static void test_converges_over_seeds(void **state)
{
    (void)state;
    enum { SEEDS = SIM_SEEDS };
    static struct sim s;
    double rel_c[SEEDS], rel_b[SEEDS], var_c = 0, var_b = 0;
    for (int k = 0; k < SEEDS; k++) {
        sim_run(&s, 1000 + (uint64_t)k * 7919, 800, 4);
        rel_c[k] = s.alloc.est_count / s.alloc.count - 1;
        rel_b[k] = s.inuse.est_bytes / s.inuse.bytes - 1;
        var_c = s.alloc.count_var / (s.alloc.count * s.alloc.count); /* same every seed */
        var_b = s.inuse.bytes_var / (s.inuse.bytes * s.inuse.bytes);
    }
    double mean_c = 0, mean_b = 0, ss_c = 0, ss_b = 0;
    for (int k = 0; k < SEEDS; k++) {
        mean_c += rel_c[k] / SEEDS;
        mean_b += rel_b[k] / SEEDS;
    }
    for (int k = 0; k < SEEDS; k++) {
        ss_c += (rel_c[k] - mean_c) * (rel_c[k] - mean_c) / (SEEDS - 1);
        ss_b += (rel_b[k] - mean_b) * (rel_b[k] - mean_b) / (SEEDS - 1);
    }
    print_message("alloc_objects: mean error %+.2f%% (sd of the mean %.2f%%), seeds' sd %.2f%% "
                  "vs predicted %.2f%%\n",
                  100 * mean_c, 100 * sqrt(var_c / SEEDS), 100 * sqrt(ss_c), 100 * sqrt(var_c));
    print_message("inuse_space:   mean error %+.2f%% (sd of the mean %.2f%%), seeds' sd %.2f%% "
                  "vs predicted %.2f%%\n",
                  100 * mean_b, 100 * sqrt(var_b / SEEDS), 100 * sqrt(ss_b), 100 * sqrt(var_b));
    assert_true(fabs(mean_c) <= 5 * sqrt(var_c / SEEDS));
    assert_true(fabs(mean_b) <= 5 * sqrt(var_b / SEEDS));
    /* 39 degrees of freedom: the sample variance lies within [0.35, 2.2] of the true one
     * with probability far above 1 - 1e-6. */
    assert_true(ss_c > 0.35 * var_c && ss_c < 2.2 * var_c);
    assert_true(ss_b > 0.35 * var_b && ss_b < 2.2 * var_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_large_run),
        cmocka_unit_test(test_converges_over_seeds),
    };
    return cmocka_run_group_tests_name("sampling_sim", tests, NULL, NULL);
}
