/*
 * test_linetable.c - the line decoders agree with CPython itself, and survive hostile tables.
 *
 * For every installed Python: tests/py/dump_lines.py prints the line table of every code
 * object of several big stdlib modules with the line PyCode_Addr2Line() (and co_lines() on
 * 3.10+) reports for each code unit; linetable_line() must agree on 100% of them. Then
 * tests/py/dump_frames.py reads the raw f_lasti / prev_instr / instr_ptr of live frames in
 * many states, and linetable_offset() + linetable_line() must reproduce frame.f_lineno.
 * Truncated prefixes of real tables and random bytes are decoded from exact-size heap copies
 * so `make asan` catches any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linetable.h"
#include "py_offsets.h"
#include "testproc.h"

/* A hex word (up to a space or the end of the line) into a heap buffer of exactly its byte
 * length ("-" is empty). */
static uint8_t *hex_to_heap(const char *hex, size_t *len)
{
    size_t digits = strcspn(hex, " \n");
    size_t n = digits == 1 && hex[0] == '-' ? 0 : digits / 2;
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        buf[i] = (uint8_t)v;
    }
    *len = n;
    return buf;
}

static FILE *python_popen(const struct test_python *py, const char *script, const char *args)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s", py->path, test_py_script(script), args);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    return f;
}

/* Truncating a table may lose lines but never invent one: for the 3.10 and location formats a
 * prefix gives either the full table's answer or -1. (co_lnotab has no end marker, so a cut
 * one only has to be read safely.) Each prefix is an exact-size heap copy. The work grows as
 * len^2 * units, so the caller applies this to a sample of function-sized tables. */
static void check_prefixes(int model, const uint8_t *table, size_t len, int first, size_t units)
{
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, table, cut);
        for (size_t u = 0; u < units; u++) {
            int full = linetable_line(model, table, len, first, 2 * (int64_t)u);
            int part = linetable_line(model, cut ? copy : NULL, cut, first, 2 * (int64_t)u);
            if (model != PY_LINES_LNOTAB && part != -1 && part != full)
                fail_msg("prefix of %zu/%zu bytes: offset %zu gives %d, full table %d", cut, len,
                         2 * u, part, full);
        }
        free(copy);
    }
}

/* Compares one "A"/"K" line of per-unit expectations; returns mismatches (prints a few). */
static long compare_units(const char *label, char kindch, char *rest, int model,
                          const uint8_t *table, size_t len, int first, size_t units, long *checked)
{
    long bad = 0;
    size_t u = 0;
    for (char *tok = strtok(rest, " \n"); tok; tok = strtok(NULL, " \n"), u++) {
        if (strcmp(tok, "x") == 0)
            continue;
        int want = atoi(tok);
        int got = linetable_line(model, table, len, first, 2 * (int64_t)u);
        (*checked)++;
        if (got != want && bad++ < 5)
            printf("%s: %c offset %zu: decoded %d, CPython %d (firstlineno %d)\n", label, kindch,
                   2 * u, got, want, first);
    }
    assert_int_equal(u, units);
    return bad;
}

static void test_every_offset_matches_cpython(void **state)
{
    (void)state;
    struct test_python py[16];
    int n = test_pythons(py, 16);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        const struct py_offsets *off = py_offsets_find(py[i].major, py[i].minor);
        assert_non_null(off);
        FILE *f = python_popen(&py[i], "dump_lines.py", "");
        char *line = NULL;
        size_t cap = 0;
        uint8_t *table = NULL;
        size_t len = 0, units = 0;
        int first = 0;
        long codes = 0, addr2line = 0, colines = 0, bad = 0, total_codes = -1, total_units = -1;
        while (getline(&line, &cap, f) > 0) {
            if (line[0] == 'C') {
                size_t nbytes;
                int hex_at = 0;
                free(table);
                table = NULL;
                assert_int_equal(sscanf(line, "C %d %zu %n", &first, &nbytes, &hex_at), 2);
                assert_true(hex_at > 0);
                table = hex_to_heap(line + hex_at, &len);
                units = nbytes / 2;
                assert_int_equal(linetable_line(off->linetable_model, table, len, first, -1),
                                 first);
                if (codes % 8 == 0 && len <= 160)
                    check_prefixes(off->linetable_model, table, len, first, units);
                codes++;
            } else if (line[0] == 'A') {
                bad += compare_units(py[i].label, 'A', line + 1, off->linetable_model, table, len,
                                     first, units, &addr2line);
            } else if (line[0] == 'K') {
                bad += compare_units(py[i].label, 'K', line + 1, off->linetable_model, table, len,
                                     first, units, &colines);
            } else if (line[0] == 'T') {
                assert_int_equal(sscanf(line, "T %ld %ld", &total_codes, &total_units), 2);
            }
        }
        free(table);
        free(line);
        assert_int_equal(pclose(f), 0);
        printf("%s: %ld code objects, %ld offsets checked against PyCode_Addr2Line, %ld against "
               "co_lines, %ld wrong\n",
               py[i].label, codes, addr2line, colines, bad);
        assert_int_equal(total_codes, codes);
        assert_int_equal(total_units, addr2line);
        assert_true(addr2line > 10000);
        assert_int_equal(bad, 0);
    }
}

static void test_live_frames_match_f_lineno(void **state)
{
    (void)state;
    struct test_python py[16];
    int n = test_pythons(py, 16);
    for (int i = 0; i < n; i++) {
        const struct py_offsets *off = py_offsets_find(py[i].major, py[i].minor);
        assert_non_null(off);
        char args[64];
        if (off->frame_model == PY_FRAME_OBJECT)
            snprintf(args, sizeof args, "lasti %d", off->frame_lasti);
        else
            snprintf(args, sizeof args, "instr %d", off->iframe_instr);
        FILE *f = python_popen(&py[i], "dump_frames.py", args);
        char *line = NULL;
        size_t cap = 0;
        long frames = 0, bad = 0, total = -1;
        while (getline(&line, &cap, f) > 0) {
            if (line[0] == 'T') {
                assert_int_equal(sscanf(line, "T %ld", &total), 1);
                continue;
            }
            unsigned long long raw, code;
            int want, first;
            int hex_at = 0;
            assert_int_equal(
                sscanf(line, "F %llu %llu %d %d %n", &raw, &code, &want, &first, &hex_at), 4);
            assert_true(hex_at > 0);
            const char *what = strchr(line + hex_at, ' ');
            assert_non_null(what);
            size_t len;
            uint8_t *table = hex_to_heap(line + hex_at, &len);
            int64_t at = linetable_offset(off->lasti_model, raw, code, off->code_code_adaptive);
            int got = linetable_line(off->linetable_model, table, len, first, at);
            if (got != want) {
                printf("%s: frame %.*s: offset %lld decodes to line %d, f_lineno is %d\n",
                       py[i].label, (int)strcspn(what + 1, "\n"), what + 1, (long long)at, got,
                       want);
                bad++;
            }
            free(table);
            frames++;
        }
        free(line);
        assert_int_equal(pclose(f), 0);
        printf("%s: %ld live frames, %ld with a line other than f_lineno\n", py[i].label, frames,
               bad);
        assert_int_equal(total, frames);
        assert_true(frames > 30);
        assert_int_equal(bad, 0);
    }
}

static void test_offset_models(void **state)
{
    (void)state;
    /* f_lasti: an int, -1 before the first instruction, zero- or sign-extended by callers. */
    assert_int_equal(linetable_offset(PY_LASTI_BYTES, 10, 0, -1), 10);
    assert_int_equal(linetable_offset(PY_LASTI_BYTES, 0xffffffffu, 0, -1), -1);
    assert_int_equal(linetable_offset(PY_LASTI_BYTES, UINT64_MAX, 0, -1), -1);
    assert_int_equal(linetable_offset(PY_LASTI_BYTES, 0x80000000u, 0, -1), -1);
    assert_int_equal(linetable_offset(PY_LASTI_WORDS, 5, 0, -1), 10);
    assert_int_equal(linetable_offset(PY_LASTI_WORDS, 0, 0, -1), 0);
    assert_int_equal(linetable_offset(PY_LASTI_WORDS, 0xffffffffu, 0, -1), -1);
    assert_int_equal(linetable_offset(PY_LASTI_WORDS, 0x7fffffff, 0, -1), 0xfffffffeLL);
    /* Pointers into co_code_adaptive: one unit before it means "not started". */
    const uint64_t code = 0x7f0000001000ull;
    for (int model = PY_LASTI_PREV_INSTR; model <= PY_LASTI_INSTR_PTR; model++) {
        assert_int_equal(linetable_offset(model, code + 200, code, 200), 0);
        assert_int_equal(linetable_offset(model, code + 246, code, 200), 46);
        assert_int_equal(linetable_offset(model, code + 198, code, 200), -1);
        assert_int_equal(linetable_offset(model, 0, code, 200), -1);
        assert_int_equal(linetable_offset(model, code + 200 + (1ull << 32), code, 200), -1);
        assert_int_equal(linetable_offset(model, code + 200 + INT32_MAX, code, 200), INT32_MAX);
        assert_int_equal(linetable_offset(model, code + 300, code, -1), -1);
        assert_int_equal(linetable_offset(model, 10, UINT64_MAX - 50, 200), -1);
    }
    assert_int_equal(linetable_offset(0, 10, 0, 0), -1);
    assert_int_equal(linetable_offset(99, 10, 0, 0), -1);
}

/* Hand-built tables whose answers follow from the format definitions, boundaries included:
 * an offset equal to an entry's end belongs to the next entry (py-spy#549 got this wrong). */
static void test_handwritten_tables(void **state)
{
    (void)state;
    const uint8_t lnotab[] = {6, 1, 4, 2, 0, 3, 8, (uint8_t)-5};
    const int lnotab_want[][2] = {{0, 10},  {4, 10},  {6, 11},  {8, 11},
                                  {10, 16}, {17, 16}, {18, 11}, {500, 11}};
    for (size_t i = 0; i < sizeof lnotab_want / sizeof lnotab_want[0]; i++)
        assert_int_equal(
            linetable_line(PY_LINES_LNOTAB, lnotab, sizeof lnotab, 10, lnotab_want[i][0]),
            lnotab_want[i][1]);
    assert_int_equal(linetable_line(PY_LINES_LNOTAB, lnotab, 3, 10, 8), -1); /* odd: malformed */
    assert_int_equal(linetable_line(PY_LINES_LNOTAB, NULL, 0, 7, 100), 7);

    const uint8_t pep626[] = {4, 0, 4, 1, 2, (uint8_t)-128, 0, 5, 4, 2};
    const int pep626_want[][2] = {{0, 10}, {2, 10},  {4, 11},  {6, 11},
                                  {8, -1}, {10, 18}, {12, 18}, {14, -1}};
    for (size_t i = 0; i < sizeof pep626_want / sizeof pep626_want[0]; i++)
        assert_int_equal(linetable_line(PY_LINES_310, pep626, sizeof pep626, 10, pep626_want[i][0]),
                         pep626_want[i][1]);
    assert_int_equal(linetable_line(PY_LINES_310, pep626, 9, 10, 10), -1); /* last half pair */
    assert_int_equal(linetable_line(PY_LINES_310, pep626, 9, 10, 6), 11);

    const uint8_t locations[] = {
        0x80 | 0 << 3 | 1,  0x05,                /* short form, 2 units, +0 → [0,4) line 100 */
        0x80 | 11 << 3 | 0, 0x04, 0x09,          /* one-line form +1, 1 unit → [4,6) line 101 */
        0x80 | 13 << 3 | 2, 0x03,                /* no columns, zigzag 3 = -1 → [6,12) line 100 */
        0x80 | 15 << 3 | 0,                      /* no location → [12,14) none */
        0x80 | 14 << 3 | 0, 0x4c, 0x02, 0, 1, 2, /* long form, zigzag 140 = +70 → [14,16) 170 */
        0x80 | 10 << 3 | 7, 0x00, 0x01, /* one-line form +0, 8 units → [16,32) line 170 */
    };
    const int loc_want[][2] = {{0, 100}, {2, 100},  {4, 101},  {6, 100},  {10, 100},
                               {12, -1}, {14, 170}, {16, 170}, {30, 170}, {32, -1}};
    for (size_t i = 0; i < sizeof loc_want / sizeof loc_want[0]; i++)
        assert_int_equal(
            linetable_line(PY_LINES_LOCATIONS, locations, sizeof locations, 100, loc_want[i][0]),
            loc_want[i][1]);
    /* A varint cut short, a table not starting at an entry, an endless varint. */
    assert_int_equal(linetable_line(PY_LINES_LOCATIONS, locations, 10, 100, 14), -1);
    assert_int_equal(linetable_line(PY_LINES_LOCATIONS, locations, 11, 100, 14), 170);
    const uint8_t not_entry[] = {0x05, 0x80};
    assert_int_equal(linetable_line(PY_LINES_LOCATIONS, not_entry, 2, 1, 0), -1);
    const uint8_t endless[] = {0x80 | 13 << 3, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x01};
    assert_int_equal(linetable_line(PY_LINES_LOCATIONS, endless, sizeof endless, 1, 0), -1);
    assert_int_equal(linetable_line(0, locations, sizeof locations, 100, 0), -1);
    assert_int_equal(linetable_line(PY_LINES_LOCATIONS, NULL, 5, 100, 0), -1);
}

/* Random tables of every model, from exact-size heap buffers: no crash, no read past the
 * end (ASan), no negative line other than -1. Deterministic seed so failures reproduce. */
static void test_random_tables(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 30000; iter++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = x % 48;
        uint8_t *t = malloc(len ? len : 1);
        assert_non_null(t);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            t[i] = (uint8_t)(x >> 24);
            if (iter % 2 && i % 3 == 0)
                t[i] |= 0x80; /* bias toward plausible location-table entry heads */
        }
        int model = PY_LINES_LNOTAB + iter % 3;
        for (int64_t at = -2; at < 2 * (int64_t)len + 8; at += 2) {
            int line = linetable_line(model, t, len, 1000, at);
            assert_true(line >= -1);
        }
        free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_models),
        cmocka_unit_test(test_handwritten_tables),
        cmocka_unit_test(test_random_tables),
        cmocka_unit_test(test_every_offset_matches_cpython),
        cmocka_unit_test(test_live_frames_match_f_lineno),
    };
    return cmocka_run_group_tests_name("linetable", tests, NULL, NULL);
}
