/*
 * test_py_offsets.c - the generated offset table is what the installed headers say, every row
 * is internally consistent, the 3.13+ rows agree with a live process's own _Py_DebugOffsets,
 * and the live overlay (py_offsets_apply_debug) takes a moved field and refuses absurd ones.
 *
 * The regeneration itself is scripts/gen-offsets.py --check (compiles probes against each
 * pyenv version's headers, and Debian's 3.11); versions without headers are reported as SKIP.
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
#include "testproc.h"

static char out_buf[1 << 16], err_buf[1 << 14];

static const char *gen_script(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", test_py_script("../../scripts/gen-offsets.py"));
    return path;
}

static void test_generated_table_matches_headers(void **state)
{
    (void)state;
    char *argv[] = {"/usr/bin/env", "python3", (char *)gen_script(), "--check", NULL};
    int st = test_run_capture(argv, out_buf, sizeof out_buf, err_buf, sizeof err_buf, 120000);
    /* One SKIP line per version the check could not regenerate. */
    for (char *line = strtok(out_buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "not checked:", 12) == 0)
            printf("SKIP: %s\n", line + 13);
        else
            printf("%s\n", line);
    }
    if (err_buf[0])
        printf("%s", err_buf);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static int expected_frame_model(int minor)
{
    return minor <= 10 ? PY_FRAME_OBJECT : minor <= 12 ? PY_FRAME_CFRAME : PY_FRAME_CURRENT;
}

static int expected_lasti_model(int minor)
{
    return minor <= 9    ? PY_LASTI_BYTES
           : minor == 10 ? PY_LASTI_WORDS
           : minor <= 12 ? PY_LASTI_PREV_INSTR
                         : PY_LASTI_INSTR_PTR;
}

static int expected_lines_model(int minor)
{
    return minor <= 9 ? PY_LINES_LNOTAB : minor == 10 ? PY_LINES_310 : PY_LINES_LOCATIONS;
}

/* A field present in a version must lie inside its struct; -1 is the only "absent" value. */
static void assert_inside(int32_t field, int32_t size, int present, const char *what, int minor)
{
    if (present) {
        if (field < 0 || field >= size)
            fail_msg("3.%d: %s = %d outside its struct of %d bytes", minor, what, field, size);
    } else if (field != -1) {
        fail_msg("3.%d: %s = %d but this version has no such field", minor, what, field);
    }
}

static void test_rows_are_consistent(void **state)
{
    (void)state;
    assert_true(py_offsets_count >= 1);
    for (int i = 0; i < py_offsets_count; i++) {
        const struct py_offsets *o = &py_offsets_table[i];
        int m = o->minor;
        assert_int_equal(o->major, 3);
        assert_true(m >= 8 && m <= 14);
        if (i > 0)
            assert_true(py_offsets_table[i - 1].minor < m); /* sorted, unique */
        char prefix[16];
        snprintf(prefix, sizeof prefix, "3.%d.", m);
        assert_non_null(o->generated_from);
        assert_memory_equal(o->generated_from, prefix, strlen(prefix));
        assert_int_equal(o->frame_model, expected_frame_model(m));
        assert_int_equal(o->lasti_model, expected_lasti_model(m));
        assert_int_equal(o->linetable_model, expected_lines_model(m));

        assert_true(o->runtime_size > 0 && o->interp_size > 0 && o->tstate_size > 0);
        assert_true(o->code_size > 0);
        assert_inside(o->runtime_interpreters_head, o->runtime_size, 1, "interpreters.head", m);
        assert_inside(o->runtime_interpreters_main, o->runtime_size, 1, "interpreters.main", m);
        assert_inside(o->runtime_main_thread, o->runtime_size, 1, "main_thread", m);
        assert_inside(o->runtime_gilstate_tstate_current, o->runtime_size, m <= 11,
                      "gilstate.tstate_current", m);
        assert_inside(o->runtime_gil_locked, o->runtime_size, m <= 11, "ceval.gil.locked", m);
        assert_inside(o->runtime_debug_offsets, o->runtime_size, m >= 13, "debug_offsets", m);
        assert_inside(o->interp_next, o->interp_size, 1, "interp.next", m);
        assert_inside(o->interp_id, o->interp_size, 1, "interp.id", m);
        assert_inside(o->interp_tstate_head, o->interp_size, m <= 10, "tstate_head", m);
        assert_inside(o->interp_threads_head, o->interp_size, m >= 11, "threads.head", m);
        assert_inside(o->interp_threads_main, o->interp_size, m >= 13, "threads.main", m);
        assert_inside(o->interp_gil_ptr, o->interp_size, m >= 12, "ceval.gil", m);
        assert_true(o->gil_locked >= 0 && o->gil_last_holder >= 0);
        assert_inside(o->tstate_next, o->tstate_size, 1, "tstate.next", m);
        assert_inside(o->tstate_interp, o->tstate_size, 1, "tstate.interp", m);
        assert_inside(o->tstate_frame, o->tstate_size, o->frame_model == PY_FRAME_OBJECT,
                      "tstate.frame", m);
        assert_inside(o->tstate_cframe, o->tstate_size, o->frame_model == PY_FRAME_CFRAME,
                      "tstate.cframe", m);
        assert_inside(o->tstate_current_frame, o->tstate_size, o->frame_model == PY_FRAME_CURRENT,
                      "tstate.current_frame", m);
        assert_inside(o->tstate_thread_id, o->tstate_size, 1, "tstate.thread_id", m);
        assert_inside(o->tstate_native_thread_id, o->tstate_size, m >= 11,
                      "tstate.native_thread_id", m);
        int iframes = o->frame_model != PY_FRAME_OBJECT;
        assert_true(iframes ? o->iframe_size > 0 : o->iframe_size == -1);
        assert_inside(o->iframe_code, o->iframe_size, iframes, "iframe.code", m);
        assert_inside(o->iframe_previous, o->iframe_size, iframes, "iframe.previous", m);
        assert_inside(o->iframe_instr, o->iframe_size, iframes, "iframe.instr", m);
        assert_inside(o->iframe_owner, o->iframe_size, iframes, "iframe.owner", m);
        assert_true(m >= 12 ? o->owner_cstack > 0 : o->owner_cstack == -1);
        assert_true(m >= 12 ? o->owner_skip_from > 0 && o->owner_skip_from <= o->owner_cstack
                            : o->owner_skip_from == -1);
        assert_int_equal(o->code_tag_mask, m >= 14 ? 3 : -1);
        ms_error e;
        if (py_offsets_validate(o, &e))
            fail_msg("3.%d: %s", m, e.msg);
        assert_true(o->frame_model == PY_FRAME_OBJECT
                        ? o->frame_back > 0 && o->frame_code > 0 && o->frame_lasti > 0
                        : o->frame_back == -1 && o->frame_lasti == -1);
        assert_inside(o->code_firstlineno, o->code_size, 1, "co_firstlineno", m);
        assert_inside(o->code_filename, o->code_size, 1, "co_filename", m);
        assert_inside(o->code_name, o->code_size, 1, "co_name", m);
        assert_inside(o->code_qualname, o->code_size, m >= 11, "co_qualname", m);
        assert_inside(o->code_lnotab, o->code_size, o->linetable_model == PY_LINES_LNOTAB,
                      "co_lnotab", m);
        assert_inside(o->code_linetable, o->code_size, o->linetable_model != PY_LINES_LNOTAB,
                      "co_linetable", m);
        assert_inside(o->code_code, o->code_size, m <= 10, "co_code", m);
        /* co_code_adaptive is the variable-length tail: it starts at or just before the end. */
        if (m >= 11)
            assert_true(o->code_code_adaptive > 0 && o->code_code_adaptive <= o->code_size);
        else
            assert_int_equal(o->code_code_adaptive, -1);
        assert_true(o->unicode_length > 0 && o->unicode_state > o->unicode_length);
        assert_true(o->unicode_state < o->unicode_ascii_size);
        assert_true(o->unicode_ascii_size < o->unicode_compact_size);
        assert_true(o->unicode_data_ptr >= o->unicode_compact_size);
        assert_true(o->bytes_sval > o->varobject_size && o->varobject_size > o->object_type);
    }
}

static void test_find(void **state)
{
    (void)state;
    for (int i = 0; i < py_offsets_count; i++) {
        const struct py_offsets *o = py_offsets_find(3, py_offsets_table[i].minor);
        assert_ptr_equal(o, &py_offsets_table[i]);
    }
    assert_null(py_offsets_find(3, 7));
    assert_null(py_offsets_find(3, 15));
    assert_string_equal(py_offsets_supported(), "3.8-3.14");
    assert_null(py_offsets_find(2, 7));
    assert_null(py_offsets_find(4, 8));
}

static int32_t row_field(const struct py_offsets *o, uint32_t field)
{
    int32_t v;
    memcpy(&v, (const char *)o + field, sizeof v);
    return v;
}

static void test_debug_checks_shape(void **state)
{
    (void)state;
    assert_true(py_debug_tables_count >= 1);
    for (int t = 0; t < py_debug_tables_count; t++) {
        const struct py_debug_table *dt = &py_debug_tables[t];
        const struct py_debug_layout *l = dt->layout;
        assert_ptr_equal(py_debug_find(3, dt->minor), dt);
        assert_string_equal(l->cookie, "xdebugpy");
        assert_int_equal((int)strlen(l->cookie), l->cookie_size);
        assert_true(l->version_pos >= l->cookie_pos + l->cookie_size);
        assert_true(l->size > l->free_threaded_pos);
        const struct py_offsets *o = py_offsets_find(3, dt->minor);
        assert_non_null(o);
        assert_true(o->runtime_debug_offsets >= 0);
        assert_true(dt->count >= 20);
        for (int i = 0; i < dt->count; i++) {
            const struct py_debug_check *c = &dt->checks[i];
            assert_true(c->debug_pos > l->free_threaded_pos && c->debug_pos + 8 <= l->size);
            assert_int_equal(c->debug_pos % 8, 0);
            assert_true(c->field >= offsetof(struct py_offsets, runtime_size));
            assert_true(c->field + sizeof(int32_t) <= sizeof(struct py_offsets));
            assert_true(row_field(o, c->field) >= 0);
            for (int j = 0; j < i; j++)
                assert_int_not_equal(dt->checks[j].debug_pos, c->debug_pos);
        }
    }
    assert_null(py_debug_find(3, 12));
    assert_null(py_debug_find(3, 15));
}

/* The overlay takes what the process states, moves anchored fields along, and refuses an
 * absurd value; validation then catches a field pushed outside its struct. */
static void test_apply_debug(void **state)
{
    (void)state;
    for (int t = 0; t < py_debug_tables_count; t++) {
        const struct py_debug_table *dt = &py_debug_tables[t];
        struct py_offsets o = *py_offsets_find(3, dt->minor);
        uint8_t *raw = calloc(1, (size_t)dt->layout->size);
        assert_non_null(raw);
        for (int i = 0; i < dt->count; i++) { /* the row itself, as a process would state it */
            uint64_t v = (uint64_t)row_field(&o, dt->checks[i].field);
            memcpy(raw + dt->checks[i].debug_pos, &v, 8);
        }
        ms_error e;
        struct py_offsets live = o;
        assert_int_equal(py_offsets_apply_debug(&live, dt, raw, &e), 0);
        assert_memory_equal(&live, &o, sizeof o);
        /* A patch release that moved interpreters.head by 24 bytes and grew the runtime. */
        int moved = 0;
        for (int i = 0; i < dt->count; i++) {
            uint64_t v;
            memcpy(&v, raw + dt->checks[i].debug_pos, 8);
            if (dt->checks[i].field == offsetof(struct py_offsets, runtime_interpreters_head) ||
                dt->checks[i].field == offsetof(struct py_offsets, runtime_size)) {
                v += 24;
                moved++;
            }
            memcpy(raw + dt->checks[i].debug_pos, &v, 8);
        }
        assert_int_equal(moved, 2);
        live = o;
        assert_int_equal(py_offsets_apply_debug(&live, dt, raw, &e), 0);
        assert_int_equal(live.runtime_interpreters_head, o.runtime_interpreters_head + 24);
        assert_int_equal(live.runtime_interpreters_main, o.runtime_interpreters_main + 24);
        assert_int_equal(live.runtime_main_thread, o.runtime_main_thread + 24);
        assert_int_equal(live.runtime_size, o.runtime_size + 24);
        assert_int_equal(py_offsets_validate(&live, &e), 0);
        /* A frame field past the frame's end is refused by validation. */
        for (int i = 0; i < dt->count; i++)
            if (dt->checks[i].field == offsetof(struct py_offsets, iframe_owner)) {
                uint64_t v = 4000;
                memcpy(raw + dt->checks[i].debug_pos, &v, 8);
            }
        live = o;
        assert_int_equal(py_offsets_apply_debug(&live, dt, raw, &e), 0);
        assert_int_equal(py_offsets_validate(&live, &e), -1);
        assert_non_null(strstr(e.msg, "frame.owner"));
        /* An absurd value is refused by the overlay itself. */
        uint64_t huge = 1ull << 40;
        memcpy(raw + dt->checks[0].debug_pos, &huge, 8);
        live = o;
        assert_int_equal(py_offsets_apply_debug(&live, dt, raw, &e), -1);
        assert_non_null(strstr(e.msg, "absurd"));
        free(raw);
    }
}

static int hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* A real 3.13+ process states its own layout: it must match the generated row (the rows are
 * generated from the installed builds' headers). */
static void test_live_debug_offsets(void **state)
{
    (void)state;
    struct test_python py[16];
    int n = test_pythons(py, 16), checked = 0;
    for (int i = 0; i < n; i++) {
        const struct py_debug_table *dt = py_debug_find(py[i].major, py[i].minor);
        if (!dt)
            continue;
        const struct py_debug_layout *l = dt->layout;
        char size[16];
        snprintf(size, sizeof size, "%d", l->size);
        char *argv[] = {py[i].path, (char *)test_py_script("dump_debug_offsets.py"), size, NULL};
        int st = test_run_capture(argv, out_buf, sizeof out_buf, err_buf, sizeof err_buf, 30000);
        assert_true(st == 0);
        assert_memory_equal(out_buf, "debug ", 6);
        uint8_t *raw = malloc(l->size);
        assert_non_null(raw);
        assert_int_equal(hex_decode(out_buf + 6, raw, l->size), 0);
        assert_memory_equal(raw + l->cookie_pos, l->cookie, l->cookie_size);
        uint64_t version, free_threaded;
        memcpy(&version, raw + l->version_pos, 8);
        memcpy(&free_threaded, raw + l->free_threaded_pos, 8);
        assert_int_equal(version >> 16, (uint64_t)(0x0300 | dt->minor));
        assert_int_equal(free_threaded, 0);
        const struct py_offsets *o = py_offsets_find(3, dt->minor);
        for (int c = 0; c < dt->count; c++) {
            uint64_t live;
            memcpy(&live, raw + dt->checks[c].debug_pos, 8);
            if (live != (uint64_t)row_field(o, dt->checks[c].field))
                fail_msg("%s: live %s says %llu, table %d", py[i].label, dt->checks[c].name,
                         (unsigned long long)live, row_field(o, dt->checks[c].field));
        }
        free(raw);
        printf("%s: %d _Py_DebugOffsets fields agree with the table\n", py[i].label, dt->count);
        checked++;
    }
    if (!checked)
        printf("SKIP: no 3.13+ interpreter to compare _Py_DebugOffsets with\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_table_matches_headers),
        cmocka_unit_test(test_rows_are_consistent),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_debug_checks_shape),
        cmocka_unit_test(test_apply_debug),
        cmocka_unit_test(test_live_debug_offsets),
    };
    return cmocka_run_group_tests_name("py_offsets", tests, NULL, NULL);
}
