/*
 * test_hook_parts.c - the hook's pure parts, compiled in from sampler/hook/: the libm-free
 * logarithm, the exponential byte gaps and the sampling probability they give, and the live
 * table (growth, backward-shift deletion, reset) against a plain reference array.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hook/hook_live.c"
#include "hook/hook_sample.c"

static void test_neg_log(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = 1; i <= 200000; i++) {
        double u = (double)i / 200000.0;
        u = u * u * u; /* dense near 0 as well */
        double want = -log(u);
        double got = hook_neg_log(u);
        double rel = want > 0 ? fabs(got - want) / want : fabs(got);
        if (rel > worst)
            worst = rel;
    }
    assert_true(worst < 1e-10);
    assert_true(hook_neg_log(1.0) == 0.0);
    assert_true(fabs(hook_neg_log(0x1p-53) - 53 * log(2.0)) < 1e-9);
}

static void test_gap_mean(void **state)
{
    (void)state;
    struct hook_sampler s;
    hook_sampler_init(&s, 512 * 1024, 42);
    const int n = 200000;
    double sum = 0, sumsq = 0;
    for (int i = 0; i < n; i++) {
        double g = (double)hook_sampler_gap(&s);
        sum += g;
        sumsq += g * g;
    }
    double mean = sum / n, sd = sqrt(sumsq / n - mean * mean);
    /* exponential: mean == sd == rate; 200k draws put the mean within 1% (4.5 sigma) */
    assert_true(fabs(mean / (512 * 1024) - 1) < 0.01);
    assert_true(fabs(sd / (512 * 1024) - 1) < 0.02);
    hook_sampler_init(&s, 1, 42);
    for (int i = 0; i < 100; i++)
        assert_int_equal(hook_sampler_take(&s, i % 3), 1); /* rate 1: everything, size 0 too */
}

/* A block of n bytes is sampled with probability 1 - exp(-n / rate). */
static void test_sampling_probability(void **state)
{
    (void)state;
    const uint64_t rate = 4096;
    const size_t sizes[] = {64, 1024, 4096, 16384};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct hook_sampler s;
        hook_sampler_init(&s, rate, 1000 + k);
        const int n = 100000;
        int hits = 0;
        for (int i = 0; i < n; i++)
            hits += hook_sampler_take(&s, sizes[k]);
        double p = 1 - exp(-(double)sizes[k] / (double)rate);
        double sd = sqrt(p * (1 - p) / n);
        double got = (double)hits / n;
        if (fabs(got - p) > 5 * sd + 1e-9)
            fail_msg("size %zu: sampled %.4f, expected %.4f", sizes[k], got, p);
    }
    /* different seeds, different streams */
    struct hook_sampler a, b;
    hook_sampler_init(&a, rate, 1);
    hook_sampler_init(&b, rate, 2);
    assert_true(hook_sampler_random(&a) != hook_sampler_random(&b));
}

static void test_live_table(void **state)
{
    (void)state;
    enum { N = 50000 };
    uint64_t *addr = calloc(N, sizeof *addr);
    char *in = calloc(N, 1);
    assert_non_null(addr);
    assert_non_null(in);
    assert_int_equal(hook_live_begin(), 0);
    srand(3);
    for (int i = 0; i < N; i++)
        addr[i] = 0x7f0000000000ull + ((uint64_t)(i % 7) << 32) + (uint64_t)i * 16;
    uint64_t live = 0;
    for (int step = 0; step < 400000; step++) {
        int i = rand() % N;
        uint64_t size;
        if (in[i]) {
            assert_int_equal(hook_live_remove(addr[i], &size), 0);
            assert_int_equal(size, (uint64_t)i);
            in[i] = 0;
            live--;
        } else {
            assert_int_equal(hook_live_remove(addr[i], &size), -1);
            assert_int_equal(hook_live_insert(addr[i], (uint64_t)i, &size), 0);
            in[i] = 1;
            live++;
        }
        if (step % 1000 == 0) {
            int j = rand() % N;
            assert_int_equal(hook_live_contains(addr[j]), in[j]);
        }
    }
    assert_int_equal(hook_live_count(), live);
    for (int i = 0; i < N; i++)
        assert_int_equal(hook_live_contains(addr[i]), in[i]);
    assert_true(live_current->bits > LIVE_MIN_BITS); /* it grew */
    hook_live_reset();
    assert_int_equal(hook_live_count(), 0);
    for (int i = 0; i < N; i += 97)
        assert_int_equal(hook_live_contains(addr[i]), 0);
    /* a second session starts empty and small again */
    assert_int_equal(hook_live_begin(), 0);
    assert_int_equal(live_current->bits, LIVE_MIN_BITS);
    uint64_t old = 0;
    assert_int_equal(hook_live_insert(addr[5], 5, &old), 0);
    assert_int_equal(hook_live_contains(addr[5]), 1);
    /* a block whose free went unseen: replaced in place, the old size reported */
    assert_int_equal(hook_live_insert(addr[5], 7, &old), 1);
    assert_int_equal(old, 5);
    assert_int_equal(hook_live_count(), 1);
    uint64_t size = 0;
    assert_int_equal(hook_live_remove(addr[5], &size), 0);
    assert_int_equal(size, 7);
    assert_int_equal(hook_live_insert(0, 1, &old), -1);
    hook_live_reset();
    free(addr);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neg_log),
        cmocka_unit_test(test_gap_mean),
        cmocka_unit_test(test_sampling_probability),
        cmocka_unit_test(test_live_table),
    };
    return cmocka_run_group_tests_name("hook_parts", tests, NULL, NULL);
}
