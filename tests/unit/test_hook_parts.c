/*
 * test_hook_parts.c - the hook's pure parts, compiled in from sampler/hook/: the libm-free
 * logarithm, the exponential byte gaps and the sampling probability they give, and the live
 * table (growth, backward-shift deletion, reset) against a plain reference array; the set of
 * announced code objects the same way, and describing fake code/str/bytes objects in memory
 * laid out like CPython's (caps, kinds, non-str names, a too-long line table). The stack walk
 * and the slot table are in test_hook_stack.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hook/hook_code.c"
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

static void test_code_set(void **state)
{
    (void)state;
    enum { N = 30000 };
    uint64_t *addr = calloc(N, sizeof *addr);
    uint64_t *fp = calloc(N, sizeof *fp); /* the fingerprint each address was announced with */
    char *in = calloc(N, 1);
    assert_non_null(addr);
    assert_non_null(fp);
    assert_non_null(in);
    assert_int_equal(hook_code_set_begin(), 0);
    srand(5);
    for (int i = 0; i < N; i++)
        addr[i] = 0x7f1000000000ull + ((uint64_t)(i % 5) << 30) + (uint64_t)i * 16;
    for (int step = 0; step < 300000; step++) {
        int i = rand() % N;
        if (in[i] && step % 3 == 0) { /* a later code object at the same address */
            assert_int_equal(hook_code_set_contains(addr[i], fp[i] + 1), 0);
            assert_int_equal(hook_code_set_add(addr[i], fp[i] + 1), 0);
            fp[i]++;
            assert_int_equal(hook_code_set_contains(addr[i], fp[i]), 1);
        } else if (in[i]) {
            assert_int_equal(hook_code_set_contains(addr[i], fp[i]), 1);
            assert_int_equal(hook_code_set_remove(addr[i]), 0);
            in[i] = 0;
        } else {
            assert_int_equal(hook_code_set_contains(addr[i], fp[i]), 0);
            assert_int_equal(hook_code_set_remove(addr[i]), -1);
            fp[i] = (uint64_t)rand() << 20;
            assert_int_equal(hook_code_set_add(addr[i], fp[i]), 0);
            in[i] = 1;
        }
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(hook_code_set_contains(addr[i], fp[i]), in[i]);
        assert_int_equal(hook_code_set_contains(addr[i], fp[i] ^ 1), 0);
    }
    assert_true(set.bits > SET_MIN_BITS); /* it grew, and kept every fingerprint */
    hook_code_set_end();
    assert_int_equal(hook_code_set_contains(addr[0], fp[0]), 0); /* no set: nothing announced */
    assert_int_equal(hook_code_set_add(addr[0], fp[0]), -1);
    assert_int_equal(hook_code_set_begin(), 0); /* a new session starts empty */
    for (int i = 0; i < N; i += 101)
        assert_int_equal(hook_code_set_contains(addr[i], fp[i]), 0);
    hook_code_set_end();
    free(addr);
    free(fp);
    free(in);
}

/* Fake objects: ob_type at 8, str length at 16 and state at 32, compact data at 48 (ASCII) or
 * 72; bytes ob_size at 16 and characters at 32; code fields at 64.. */
static void test_code_describe(void **state)
{
    (void)state;
    static char unicode_type, bytes_type;
    struct mshook_config cfg = {
        .code_name = 64,
        .code_filename = 72,
        .code_firstlineno = 80,
        .code_linetable = 88,
        .unicode_length = 16,
        .unicode_state = 32,
        .unicode_ascii_size = 48,
        .unicode_compact_size = 72,
        .unicode_data_ptr = 72,
        .bytes_size = 16,
        .bytes_sval = 32,
        .object_type = 8,
    };
    struct hook_code_layout l;
    hook_code_layout_from(&l, &cfg, &unicode_type, &bytes_type);
    assert_int_equal(hook_code_layout_check(&l), 0);
    static _Alignas(16) unsigned char code[128], name[4096], file[128], table[256];
    *(void **)(name + 8) = &unicode_type; /* compact UCS-2, 600 characters: cut at 512 */
    *(int64_t *)(name + 16) = 600;
    name[32] = (2 << 2) | 0x20;
    *(void **)(file + 8) = &unicode_type; /* compact ASCII "app.py" */
    *(int64_t *)(file + 16) = 6;
    file[32] = (1 << 2) | 0x20 | 0x40;
    memcpy(file + 48, "app.py", 6);
    *(void **)(table + 8) = &bytes_type;
    *(int64_t *)(table + 16) = 200;
    *(void **)(code + 64) = name;
    *(void **)(code + 72) = file;
    *(int32_t *)(code + 80) = 17;
    *(void **)(code + 88) = table;
    struct hook_code_desc d;
    hook_code_describe(&l, code, 1000, &d);
    assert_int_equal(d.firstlineno, 17);
    assert_int_equal(d.name_kind, 2);
    assert_int_equal(d.name_len, MSHOOK_CODE_NAME_MAX / 2);
    assert_ptr_equal(d.name, name + 72);
    assert_int_equal(d.filename_kind, 1);
    assert_int_equal(d.filename_len, 6);
    assert_ptr_equal(d.filename, file + 48);
    assert_int_equal(d.table_len, 200);
    assert_ptr_equal(d.table, table + 32);
    assert_int_equal(d.flags, MSHOOK_CODE_NAME_CUT);
    /* a table over the limit is left out; a name that is not a str, or a str of an invalid
     * kind, is sent empty */
    hook_code_describe(&l, code, 199, &d);
    assert_int_equal(d.flags, MSHOOK_CODE_NAME_CUT | MSHOOK_CODE_NO_TABLE);
    assert_int_equal(d.table_len, 0);
    *(void **)(name + 8) = &bytes_type;
    file[32] = (3 << 2) | 0x20;
    hook_code_describe(&l, code, 1000, &d);
    assert_int_equal(d.name_len, 0);
    assert_int_equal(d.filename_len, 0);
    assert_int_equal(d.flags, 0);
    cfg.bytes_sval = 4096; /* offsets past a page are refused */
    hook_code_layout_from(&l, &cfg, &unicode_type, &bytes_type);
    assert_int_equal(hook_code_layout_check(&l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neg_log),
        cmocka_unit_test(test_gap_mean),
        cmocka_unit_test(test_sampling_probability),
        cmocka_unit_test(test_live_table),
        cmocka_unit_test(test_code_set),
        cmocka_unit_test(test_code_describe),

    };
    return cmocka_run_group_tests_name("hook_parts", tests, NULL, NULL);
}
