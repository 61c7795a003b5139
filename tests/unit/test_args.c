/*
 * test_args.c - one grammar for sizes and durations in every subcommand: the forms accepted,
 * their values, and everything refused (signs, zero, trailing text, overflow, limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "args.h"

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {{"1", 1},
              {"4096", 4096},
              {"512k", 512 << 10},
              {"512K", 512 << 10},
              {"512KiB", 512 << 10},
              {"4m", 4 << 20},
              {"4MB", 4 << 20},
              {"1g", 1ull << 30},
              {"64b", 64},
              {"1099511627776", 1ull << 40}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        assert_int_equal(args_parse_size(ok[i].in, 1ull << 40, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
    static const char *const bad[] = {
        "",   "0", "-1",   "+4", " 4",    "4 k",           "4kk",
        "4x", "k", "1.5m", "0k", "2048g", "1099511627777", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(args_parse_size(bad[i], 1ull << 40, &v), -1);
        assert_int_equal(v, 7);
    }
    uint64_t v = 0;
    assert_int_equal(args_parse_size(NULL, 1, &v), -1);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double want;
    } ok[] = {{"2", 2},       {"2.5", 2.5}, {".5", 0.5},   {"30s", 30},
              {"500ms", 0.5}, {"5m", 300},  {"5min", 300}, {"1h", 3600}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = 0;
        assert_int_equal(args_parse_duration(ok[i].in, 1e7, &v), 0);
        assert_true(v > ok[i].want - 1e-9 && v < ok[i].want + 1e-9);
    }
    static const char *const bad[] = {"",    "0",   "0s",  "-1", "+1",  "1d",   "5 m",
                                      "1hh", "nan", "inf", "s",  "1e9", "3000h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = 7;
        assert_int_equal(args_parse_duration(bad[i], 1e7, &v), -1);
        assert_true(v == 7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
