/*
 * test_unbias.c - the per-block (Horvitz-Thompson) weights: exact pass-through at rate 1, the
 * closed form on hand-checkable points, rounding and saturation of weighted sums, the
 * variance formulas against a direct simulation of one block's estimate, and unbiasedness of
 * weighted sums over a mix of sizes sampled by the hook's own sampler
 * (sampler/hook/hook_sample.c, compiled in). The end-to-end case through the collector is
 * test_sampling_sim.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hook/hook_sample.c"
#include "unbias.h"

static void test_exact_mode_passes_through(void **state)
{
    (void)state;
    assert_true(unbias_weight(123, 1) == 1.0);
    assert_true(unbias_weight(123, 0) == 1.0);
    assert_true(unbias_block_bytes(123, 1) == 123.0);
    assert_true(unbias_count_variance(123, 1) == 0.0);
    assert_true(unbias_bytes_variance(123, 1) == 0.0);
    assert_true(unbias_weight(0, 4096) == 1.0);
    assert_true(unbias_block_bytes(0, 4096) == 0.0);
}

static void test_closed_form(void **state)
{
    (void)state;
    /* A block as large as the rate is sampled with probability 1 - 1/e. */
    double want = 1 / (1 - exp(-1.0));
    assert_true(fabs(unbias_weight(4096, 4096) - want) < 1e-12);
    assert_true(fabs(unbias_block_bytes(4096, 4096) - 4096 * want) < 1e-8);
    assert_true(fabs(unbias_count_variance(4096, 4096) - (want - 1)) < 1e-12);
    /* Blocks far larger than the rate are always sampled: weight 1, no variance. */
    assert_true(unbias_weight(1ull << 30, 4096) == 1.0);
    assert_true(unbias_count_variance(1ull << 30, 4096) == 0.0);
    /* Tiny blocks: weight ~ rate/size + 1/2 (expm1 keeps this precise). */
    double w = unbias_weight(1, 1ull << 40);
    assert_true(fabs(w - (double)(1ull << 40)) / (double)(1ull << 40) < 1e-9);
    w = unbias_weight(50, 512 * 1024);
    assert_true(fabs(w - (512.0 * 1024 / 50 + 0.5)) < 0.01);
    /* The count variance of a tiny block is ~ rate/size: one 50-byte block at 512 KiB. */
    assert_true(fabs(unbias_count_variance(50, 512 * 1024) - 512.0 * 1024 / 50) < 1);
}

static void test_round(void **state)
{
    (void)state;
    assert_int_equal(unbias_round(0.0), 0);
    assert_int_equal(unbias_round(-1e-9), 0); /* drift after adds and subtracts */
    assert_int_equal(unbias_round(-5.0), 0);
    assert_int_equal(unbias_round(NAN), 0);
    assert_int_equal(unbias_round(2.5), 3);
    assert_int_equal(unbias_round(1e6 + 0.4), 1000000);
    assert_true(unbias_round(1e19) == INT64_MAX);
    assert_true(unbias_round(INFINITY) == INT64_MAX);
    /* Exact mode sums integers in doubles: exact up to 2^53. */
    assert_true(unbias_round(9007199254740992.0) == 9007199254740992ll);
}

/* One block of each size, offered to the hook's sampler many times: the mean of its estimate
 * (weight when sampled, else 0) is 1 block and its variance is unbias_count_variance. */
static void test_one_block_mean_and_variance(void **state)
{
    (void)state;
    const uint64_t rate = 512 * 1024, sizes[] = {32, 4096, 100000, 600000};
    for (int k = 0; k < 4; k++) {
        struct hook_sampler s;
        hook_sampler_init(&s, rate, 42 + (uint64_t)k);
        const int trials = 2000000;
        double w = unbias_weight(sizes[k], rate), sum = 0, sum2 = 0;
        for (int i = 0; i < trials; i++) {
            /* Unsampled bytes in between, as a program allocates between two blocks. */
            hook_sampler_take(&s, 1000);
            if (hook_sampler_take(&s, sizes[k])) {
                sum += w;
                sum2 += w * w;
            }
        }
        double mean = sum / trials, var = sum2 / trials - mean * mean;
        double want_var = unbias_count_variance(sizes[k], rate);
        double sd_of_mean = sqrt(want_var / trials);
        print_message("size %6llu: mean %.4f (sd %.4f) variance %.2f (predicted %.2f)\n",
                      (unsigned long long)sizes[k], mean, sd_of_mean, var, want_var);
        assert_true(fabs(mean - 1) <= 5 * sd_of_mean + 1e-9);
        /* The sample variance of a rare event's indicator is known to about 1/sqrt(samples)
         * of itself. */
        double samples = trials * (1 - exp(-(double)sizes[k] / (double)rate));
        assert_true(fabs(var - want_var) <= 5 / sqrt(samples) * want_var + 1e-9);
    }
}

/* A stream mixing tiny objects and a few large blocks, sampled by the hook's sampler, weighed
 * per block: estimated counts and bytes, per size class and in total, land within 5
 * predicted standard deviations of the truth (and the prediction is tight: a few percent). */
static void test_mixed_stream(void **state)
{
    (void)state;
    const uint64_t rate = 512 * 1024;
    const uint64_t sizes[] = {28, 55, 232, 16104, 1 << 20};
    enum { N_SIZES = 5 };
    double true_n[N_SIZES] = {0}, true_b[N_SIZES] = {0}, est_n[N_SIZES] = {0}, est_b[N_SIZES] = {0},
           var_n[N_SIZES] = {0}, var_b[N_SIZES] = {0};
    struct hook_sampler s;
    hook_sampler_init(&s, rate, 7);
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 40000000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int k = (int)(r % 100);
        k = k < 50 ? 0 : k < 90 ? 1 : k < 99 ? 2 : (r >> 32) % 64 ? 3 : 4; /* mostly tiny */
        true_n[k] += 1;
        true_b[k] += (double)sizes[k];
        var_n[k] += unbias_count_variance(sizes[k], rate);
        var_b[k] += unbias_bytes_variance(sizes[k], rate);
        if (hook_sampler_take(&s, sizes[k])) {
            est_n[k] += unbias_weight(sizes[k], rate);
            est_b[k] += unbias_block_bytes(sizes[k], rate);
        }
    }
    double tn = 0, tb = 0, en = 0, eb = 0, vn = 0, vb = 0;
    for (int k = 0; k < N_SIZES; k++) {
        print_message("size %7llu: blocks %.0f est %.0f (%+.2f%%, sd %.2f%%)\n",
                      (unsigned long long)sizes[k], true_n[k], est_n[k],
                      100 * (est_n[k] / true_n[k] - 1), 100 * sqrt(var_n[k]) / true_n[k]);
        assert_true(fabs(est_n[k] - true_n[k]) <= 5 * sqrt(var_n[k]) + 1e-9);
        assert_true(fabs(est_b[k] - true_b[k]) <= 5 * sqrt(var_b[k]) + 1e-9);
        tn += true_n[k], tb += true_b[k], en += est_n[k], eb += est_b[k];
        vn += var_n[k], vb += var_b[k];
    }
    print_message("total: blocks %+.2f%% (sd %.2f%%), bytes %+.2f%% (sd %.2f%%)\n",
                  100 * (en / tn - 1), 100 * sqrt(vn) / tn, 100 * (eb / tb - 1),
                  100 * sqrt(vb) / tb);
    assert_true(sqrt(vn) / tn < 0.03 && sqrt(vb) / tb < 0.03);
    assert_true(fabs(en - tn) <= 5 * sqrt(vn));
    assert_true(fabs(eb - tb) <= 5 * sqrt(vb));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_mode_passes_through),
        cmocka_unit_test(test_closed_form),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_one_block_mean_and_variance),
        cmocka_unit_test(test_mixed_stream),
    };
    return cmocka_run_group_tests_name("unbias", tests, NULL, NULL);
}
