/*
 * test_error.c - the error convention: set, errno suffix, outermost-first prefixes, truncation.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"

static void test_set_and_prefix(void **state)
{
    (void)state;
    ms_error e;
    assert_int_equal(ms_error_set(&e, "reading %s", "/proc/1/maps"), -1);
    assert_string_equal(e.msg, "reading /proc/1/maps");
    assert_int_equal(ms_error_prefix(&e, "attach %d", 1234), -1);
    assert_string_equal(e.msg, "attach 1234: reading /proc/1/maps");
}

static void test_errno_suffix(void **state)
{
    (void)state;
    ms_error e;
    ms_error_errno(&e, ESRCH, "reading %s", "x");
    assert_string_equal(e.msg, "reading x: No such process");
}

static void test_truncation_and_null(void **state)
{
    (void)state;
    ms_error e;
    char big[4000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ms_error_set(&e, "%s", big);
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
    ms_error_prefix(&e, "ctx");
    assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
    assert_memory_equal(e.msg, "ctx: ", 5);
    assert_int_equal(ms_error_set(NULL, "x"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_prefix),
        cmocka_unit_test(test_errno_suffix),
        cmocka_unit_test(test_truncation_and_null),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
