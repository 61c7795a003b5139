/*
 * test_unbias.c - the Go-style unbiasing: exact pass-through at rate 1, the closed form on
 * hand-checkable points, and unbiasedness against a simulation of the hook's Poisson sampler
 * (an exponential byte countdown), which is the property the profile's numbers rely on.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unbias.h"

static void test_exact_mode_passes_through(void **state)
{
    (void)state;
    struct unbias_totals t = unbias_scale(7, 700, 1);
    assert_int_equal(t.count, 7);
    assert_int_equal(t.bytes, 700);
    t = unbias_scale(7, 700, 0);
    assert_int_equal(t.bytes, 700);
    assert_true(unbias_block_bytes(123, 1) == 123.0);
}

static void test_empty_is_zero(void **state)
{
    (void)state;
    struct unbias_totals t = unbias_scale(0, 100, 4096);
    assert_int_equal(t.count, 0);
    assert_int_equal(t.bytes, 0);
    t = unbias_scale(3, 0, 4096);
    assert_int_equal(t.count, 0);
    assert_int_equal(t.bytes, 0);
}

static void test_closed_form(void **state)
{
    (void)state;
    /* A block as large as the rate is sampled with probability 1 - 1/e. */
    struct unbias_totals t = unbias_scale(1000, 1000 * 4096ull, 4096);
    double want = 1000 / (1 - exp(-1.0));
    assert_true(fabs((double)t.count - want) <= 1);
    assert_true(fabs((double)t.bytes - want * 4096) <= 4096);
    /* Blocks far larger than the rate are always sampled: no scaling. */
    t = unbias_scale(5, 5 * (1ull << 30), 4096);
    assert_int_equal(t.count, 5);
    assert_int_equal(t.bytes, 5 * (1ll << 30));
    /* Tiny blocks: scale ~ rate/avg (expm1 keeps this precise). */
    t = unbias_scale(1, 1, 1ull << 40);
    assert_true(fabs((double)t.bytes - (double)(1ull << 40)) / (double)(1ull << 40) < 1e-6);
}

static void test_saturates(void **state)
{
    (void)state;
    struct unbias_totals t = unbias_scale(UINT64_MAX, UINT64_MAX, 1);
    assert_true(t.count == INT64_MAX && t.bytes == INT64_MAX);
    t = unbias_scale(UINT64_MAX / 2, UINT64_MAX / 2, 1ull << 62);
    assert_true(t.count == INT64_MAX && t.bytes == INT64_MAX);
}

/* xorshift64*, for a reproducible stream without libc's rand(). */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double rng_exponential(uint64_t *s, double mean)
{
    double u = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    return -log(u) * mean;
}

/* Allocates a mix of sizes through a simulated byte countdown, as the hook does, and checks
 * that unbiased per-size totals (one "stack" per size) match the truth within 3%. */
static void test_unbiased_against_simulated_sampler(void **state)
{
    (void)state;
    const uint64_t rate = 16 * 1024;
    const uint64_t sizes[] = {32, 200, 4096, 50000, 300000};
    const int n_sizes = 5;
    uint64_t true_bytes[5] = {0}, sampled_count[5] = {0}, sampled_bytes[5] = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    double countdown = rng_exponential(&seed, (double)rate);
    double heap_estimate = 0, heap_true = 0;
    for (int i = 0; i < 4000000; i++) {
        int k = (int)(rng_next(&seed) % n_sizes);
        if (k == 4 && i % 16) /* keep the huge blocks rarer so totals are comparable */
            k = 0;
        uint64_t size = sizes[k];
        true_bytes[k] += size;
        heap_true += (double)size;
        countdown -= (double)size;
        if (countdown > 0)
            continue;
        /* The countdown may cross several means inside one block: still one sample. */
        while (countdown <= 0)
            countdown += rng_exponential(&seed, (double)rate);
        sampled_count[k]++;
        sampled_bytes[k] += size;
        heap_estimate += unbias_block_bytes(size, rate);
    }
    for (int k = 0; k < n_sizes; k++) {
        struct unbias_totals t = unbias_scale(sampled_count[k], sampled_bytes[k], rate);
        double rel = fabs((double)t.bytes - (double)true_bytes[k]) / (double)true_bytes[k];
        print_message("size %6llu: true %llu estimated %lld (%.2f%%)\n",
                      (unsigned long long)sizes[k], (unsigned long long)true_bytes[k],
                      (long long)t.bytes, rel * 100);
        assert_true(rel < 0.03);
    }
    assert_true(fabs(heap_estimate - heap_true) / heap_true < 0.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_mode_passes_through),
        cmocka_unit_test(test_empty_is_zero),
        cmocka_unit_test(test_closed_form),
        cmocka_unit_test(test_saturates),
        cmocka_unit_test(test_unbiased_against_simulated_sampler),
    };
    return cmocka_run_group_tests_name("unbias", tests, NULL, NULL);
}
