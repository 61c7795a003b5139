/*
 * test_pystring.c - str headers and PEP 393 text, synthetic and from real interpreters.
 *
 * Synthetic headers built from each generated row cover every kind and every rejection.
 * Then, for every installed Python, tests/py/dump_strings.py shows real str objects (ASCII,
 * Latin-1, UCS-2, UCS-4, surrogates, long, non-compact subclass instances, a non-ASCII
 * function name): pystr_parse() must find their characters at the right address with the
 * right kind, and pystr_to_utf8() must produce exactly the text Python has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "py_offsets.h"
#include "pystring.h"
#include "testproc.h"

static int utf8(const void *data, int64_t length, int kind, char *out, size_t outn)
{
    return pystr_to_utf8(data, length, kind, out, outn);
}

static void test_utf8_every_kind(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(utf8("hello", 5, 1, out, sizeof out), 5);
    assert_string_equal(out, "hello");
    const uint8_t cafe[] = {'c', 'a', 'f', 0xe9};
    assert_int_equal(utf8(cafe, 4, 1, out, sizeof out), 5);
    assert_string_equal(out, "caf\xc3\xa9");
    const uint8_t latin_top[] = {0xff, 0x80};
    assert_int_equal(utf8(latin_top, 2, 1, out, sizeof out), 4);
    assert_string_equal(out, "\xc3\xbf\xc2\x80");
    const uint16_t privet[] = {0x41f, 0x440, 0x438, 0x432, 0x435, 0x442};
    assert_int_equal(utf8(privet, 6, 2, out, sizeof out), 12);
    assert_string_equal(out, "Привет");
    const uint16_t nihon[] = {0x65e5, 0x672c};
    assert_int_equal(utf8(nihon, 2, 2, out, sizeof out), 6);
    assert_string_equal(out, "日本");
    const uint32_t snake[] = {'a', 0x1f40d, 'b'};
    assert_int_equal(utf8(snake, 3, 4, out, sizeof out), 6);
    assert_string_equal(out, "a\xf0\x9f\x90\x8d"
                             "b");
    const uint32_t top[] = {0x10ffff, 0x80, 0x7ff, 0x800, 0xffff, 0x10000};
    assert_int_equal(utf8(top, 6, 4, out, sizeof out), 4 + 2 + 2 + 3 + 3 + 4);
    assert_string_equal(out, "\xf4\x8f\xbf\xbf\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"
                             "\xf0\x90\x80\x80");
    assert_int_equal(utf8("", 0, 1, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(utf8(NULL, 0, 4, out, sizeof out), 0);
}

static void test_utf8_replacements(void **state)
{
    (void)state;
    char out[64];
    /* Lone surrogates (UCS-2 strings never pair them) and out-of-range UCS-4 → U+FFFD. */
    const uint16_t lone[] = {'x', 0xd800, 0xdc00, 'y', 0xdfff};
    assert_int_equal(utf8(lone, 5, 2, out, sizeof out), 1 + 3 + 3 + 1 + 3);
    assert_string_equal(out, "x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd");
    const uint32_t bad4[] = {0x110000, 0xd83d, 0xffffffffu, 'z'};
    assert_int_equal(utf8(bad4, 4, 4, out, sizeof out), 3 * 3 + 1);
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
}

static void test_utf8_bounds(void **state)
{
    (void)state;
    char out[16];
    const uint16_t nihon[] = {0x65e5, 0x672c};
    /* Exactly enough (6 bytes + NUL) fits; one less fails and leaves "". */
    memset(out, 'Z', sizeof out);
    assert_int_equal(utf8(nihon, 2, 2, out, 7), 6);
    assert_int_equal(out[6], 0);
    memset(out, 'Z', sizeof out);
    assert_int_equal(utf8(nihon, 2, 2, out, 6), -1);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[6], 'Z'); /* nothing written past outn */
    assert_int_equal(utf8("abc", 3, 1, out, 3), -1);
    assert_int_equal(utf8("abc", 3, 1, out, 4), 3);
    assert_int_equal(utf8("abc", 3, 1, out, 0), -1);
    assert_int_equal(utf8("abc", 3, 1, NULL, 4), -1);
    assert_int_equal(utf8("abc", 3, 3, out, sizeof out), -1);
    assert_int_equal(utf8("abc", 3, 0, out, sizeof out), -1);
    assert_int_equal(utf8("abc", -1, 1, out, sizeof out), -1);
    assert_int_equal(utf8(NULL, 3, 1, out, sizeof out), -1);
    /* Worst case sizes from the contract: 3 per UCS-2, 4 per UCS-4 character, plus NUL. */
    const uint16_t wide[] = {0xffff, 0xffff, 0xffff};
    assert_int_equal(utf8(wide, 3, 2, out, 10), 9);
}

/* A header for `row` as CPython lays it out: length, state byte, optional data pointer. */
static void header_build(const struct py_offsets *row, uint8_t *hdr, size_t n, int64_t length,
                         uint8_t state, uint64_t data_ptr)
{
    memset(hdr, 0xa5, n);
    memcpy(hdr + row->unicode_length, &length, 8);
    memset(hdr + row->unicode_state, 0, 4);
    hdr[row->unicode_state] = state;
    if ((size_t)row->unicode_data_ptr + 8 <= n)
        memcpy(hdr + row->unicode_data_ptr, &data_ptr, 8);
}

enum { K1 = 1 << 2, K2 = 2 << 2, K4 = 4 << 2, COMPACT = 0x20, ASCII = 0x40 };

static void test_parse_synthetic(void **state)
{
    (void)state;
    for (int r = 0; r < py_offsets_count; r++) {
        const struct py_offsets *row = &py_offsets_table[r];
        uint8_t hdr[256];
        size_t full = row->unicode_data_ptr + 8, compact = row->unicode_compact_size;
        struct pystr_info info;
        ms_error err;
        const uint64_t obj = 0x7f1234560000ull;

        /* Compact ASCII, interned bits set: data right after PyASCIIObject. */
        header_build(row, hdr, full, 5, K1 | COMPACT | ASCII | 1, 0);
        assert_int_equal(pystr_parse(row, obj, hdr, compact, &info, &err), 0);
        assert_int_equal(info.length, 5);
        assert_int_equal(info.kind, 1);
        assert_int_equal(info.ascii, 1);
        assert_int_equal(info.data_addr, obj + row->unicode_ascii_size);
        /* Compact non-ASCII of each kind: data after PyCompactUnicodeObject. */
        const uint8_t kinds[] = {K1, K2, K4};
        for (int k = 0; k < 3; k++) {
            header_build(row, hdr, full, 7, kinds[k] | COMPACT | 0x80, 0);
            assert_int_equal(pystr_parse(row, obj, hdr, compact, &info, &err), 0);
            assert_int_equal(info.kind, 1 << k);
            assert_int_equal(info.ascii, 0);
            assert_int_equal(info.data_addr, obj + row->unicode_compact_size);
        }
        /* Non-compact: the characters are wherever the data pointer says. */
        header_build(row, hdr, full, 3, K2, 0x5555aaaa0000ull);
        assert_int_equal(pystr_parse(row, obj, hdr, full, &info, &err), 0);
        assert_int_equal(info.data_addr, 0x5555aaaa0000ull);
        assert_int_equal(info.kind, 2);
        assert_int_equal(pystr_parse(row, obj, hdr, compact, &info, &err), -1);
        assert_non_null(strstr(err.msg, "non-compact"));
        header_build(row, hdr, full, 3, K1 | ASCII, 0);
        assert_int_equal(pystr_parse(row, obj, hdr, full, &info, &err), -1);

        /* Rejections: kind 0 (a not-ready legacy str), 3, 5-7; ASCII with wide kind; lengths. */
        const uint8_t bad_states[] = {0 | COMPACT, 3 << 2 | COMPACT, 5 << 2 | COMPACT,
                                      7 << 2 | COMPACT, K2 | COMPACT | ASCII};
        for (size_t b = 0; b < sizeof bad_states; b++) {
            header_build(row, hdr, full, 4, bad_states[b], 0);
            assert_int_equal(pystr_parse(row, obj, hdr, full, &info, &err), -1);
            assert_true(strlen(err.msg) > 0);
        }
        const int64_t bad_lengths[] = {-1, PYSTR_MAX_LENGTH, INT64_MAX, INT64_MIN};
        for (size_t b = 0; b < sizeof bad_lengths / sizeof bad_lengths[0]; b++) {
            header_build(row, hdr, full, bad_lengths[b], K1 | COMPACT | ASCII, 0);
            assert_int_equal(pystr_parse(row, obj, hdr, full, &info, &err), -1);
        }
        header_build(row, hdr, full, PYSTR_MAX_LENGTH - 1, K4 | COMPACT, 0);
        assert_int_equal(pystr_parse(row, obj, hdr, full, &info, &err), 0);
        /* Too short a header, an address that would wrap. */
        header_build(row, hdr, full, 2, K1 | COMPACT | ASCII, 0);
        assert_int_equal(pystr_parse(row, obj, hdr, row->unicode_state, &info, &err), -1);
        assert_int_equal(pystr_parse(row, obj, hdr, 0, &info, &err), -1);
        assert_int_equal(pystr_parse(row, UINT64_MAX - 8, hdr, full, &info, &err), -1);
        header_build(row, hdr, full, 1000, K4, UINT64_MAX - 100);
        assert_int_equal(pystr_parse(row, obj, hdr, full, &info, &err), -1);
        assert_int_equal(pystr_parse(row, obj, NULL, full, &info, &err), -1);
        assert_int_equal(pystr_parse(NULL, obj, hdr, full, &info, NULL), -1);
    }
}

static int hex_decode(const char *hex, uint8_t *out, size_t max)
{
    if (strcmp(hex, "-") == 0)
        return 0;
    size_t n = strlen(hex) / 2;
    if (n > max)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

static char line_buf[1 << 17];
static uint8_t data_buf[1 << 16], want_buf[1 << 16];
static char text_buf[1 << 17];

static void check_real_strings(const struct test_python *py)
{
    const struct py_offsets *row = py_offsets_find(py->major, py->minor);
    assert_non_null(row);
    size_t hdrlen = row->unicode_data_ptr + 8;
    char nbytes[16];
    snprintf(nbytes, sizeof nbytes, "%zu", hdrlen);
    char *argv[] = {(char *)py->path, (char *)test_py_script("dump_strings.py"), nbytes, NULL};
    struct test_proc *p = calloc(1, sizeof *p);
    assert_non_null(p);
    assert_int_equal(test_proc_spawn(p, argv), 0);
    int count = 0, noncompact = 0, kinds[5] = {0};
    for (;;) {
        if (test_proc_wait_line(p, "", line_buf, sizeof line_buf, 20000) < 0)
            fail_msg("%s: dump_strings.py stopped answering", py->label);
        if (line_buf[0] == 'E')
            break;
        int index;
        unsigned long long obj;
        static char hdr_hex[4096], want_hex[1 << 17];
        assert_int_equal(
            sscanf(line_buf, "S %d %llu %4095s %131071s", &index, &obj, hdr_hex, want_hex), 4);
        uint8_t hdr[512];
        assert_int_equal(hex_decode(hdr_hex, hdr, sizeof hdr), (int)hdrlen);
        int want_len = hex_decode(want_hex, want_buf, sizeof want_buf);
        assert_true(want_len >= 0);

        struct pystr_info info;
        ms_error err = {{0}};
        if (pystr_parse(row, obj, hdr, hdrlen, &info, &err) < 0) {
            test_proc_send(p, "skip\n");
            fail_msg("%s: string %d: %s", py->label, index, err.msg);
        }
        int compact = info.data_addr == obj + row->unicode_ascii_size ||
                      info.data_addr == obj + row->unicode_compact_size;
        noncompact += !compact;
        kinds[info.kind]++;
        char reply[64];
        snprintf(reply, sizeof reply, "%llu %lld\n", (unsigned long long)info.data_addr,
                 (long long)(info.length * info.kind));
        assert_int_equal(test_proc_send(p, reply), 0);
        assert_int_equal(test_proc_wait_line(p, "D ", line_buf, sizeof line_buf, 20000), 0);
        int got = hex_decode(line_buf + 2, data_buf, sizeof data_buf);
        assert_int_equal(got, info.length * info.kind);
        int n = pystr_to_utf8(data_buf, info.length, info.kind, text_buf, sizeof text_buf);
        if (n != want_len || memcmp(text_buf, want_buf, want_len) != 0)
            fail_msg("%s: string %d decodes to %d bytes \"%.40s\", Python has %d bytes", py->label,
                     index, n, text_buf, want_len);
        count++;
    }
    int status = test_proc_wait_exit(p, 10000);
    test_proc_kill(p);
    free(p);
    assert_int_equal(status, 0);
    printf("%s: %d real str objects decoded (%d non-compact; kinds 1/2/4: %d/%d/%d)\n", py->label,
           count, noncompact, kinds[1], kinds[2], kinds[4]);
    assert_true(count >= 20 && noncompact >= 4 && kinds[1] && kinds[2] && kinds[4]);
}

static void test_real_strings_every_python(void **state)
{
    (void)state;
    struct test_python py[16];
    int n = test_pythons(py, 16);
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        check_real_strings(&py[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_every_kind),
        cmocka_unit_test(test_utf8_replacements),
        cmocka_unit_test(test_utf8_bounds),
        cmocka_unit_test(test_parse_synthetic),
        cmocka_unit_test(test_real_strings_every_python),
    };
    return cmocka_run_group_tests_name("pystring", tests, NULL, NULL);
}
