/*
 * test_replay.c - every supported CPython layout, tested without the interpreters: replays
 * the recorded dumps in tests/fixtures/ (made by tests/integration/test_replay_record.c from
 * live processes, docs/python-versions.md) through the real readers and dump's printer.
 *
 * Each replay must give exactly the stacks the target reported about itself (function names,
 * files, line numbers, three threads, the main one marked, Latin-1/UCS-2/UCS-4 names, a class
 * method, a generator, a 40-deep recursion). The newest recording is then altered to check
 * the refusals (an unsupported minor version, a free-threaded build, a missing cookie, memory
 * that is not there) and 3.14's frame rules (tagged f_executable, interpreter-owned frames).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "py_offsets.h"
#include "replay.h"
#include "testproc.h"

#define MAX_FIXTURES 32

static char names[MAX_FIXTURES][256];
static int nnames;

static const char *fixture_dir(void)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", test_py_script("../fixtures"));
    return dir;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void list_fixtures(void)
{
    if (nnames)
        return;
    DIR *d = opendir(fixture_dir());
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && nnames < MAX_FIXTURES)
        if (!strncmp(e->d_name, "dump-", 5) && strstr(e->d_name, ".txt"))
            snprintf(names[nnames++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)nnames, sizeof names[0], by_name);
}

static struct replay *load(const char *name)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", fixture_dir(), name);
    ms_error err;
    struct replay *r = replay_load(path, &err);
    if (!r)
        fail_msg("%s", err.msg);
    return r;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Every minor version memsnap supports has a recording (and nothing newer pretends to). */
static void test_fixtures_cover_every_version(void **state)
{
    (void)state;
    list_fixtures();
    for (int i = 0; i < py_offsets_count; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "dump-3.%d.", py_offsets_table[i].minor);
        int found = 0;
        for (int k = 0; k < nnames; k++)
            found |= !strncmp(names[k], prefix, strlen(prefix));
        if (!found)
            fail_msg("no recording %s*.txt in %s", prefix, fixture_dir());
    }
}

static void test_replays_match_the_targets_view(void **state)
{
    (void)state;
    list_fixtures();
    assert_true(nnames >= 7);
    for (int k = 0; k < nnames; k++) {
        struct replay *r = load(names[k]);
        char *text = NULL;
        ms_error err;
        if (replay_dump(r, &text, &err))
            fail_msg("%s: %s", names[k], err.msg);
        char *got = replay_normalize(text), *want = replay_normalize(replay_expect(r));
        if (strcmp(got, want))
            fail_msg("%s: replay differs from the target's view:\n%s\n--- expected:\n%s", names[k],
                     text, replay_expect(r));
        /* What the recording must exercise, asserted on the output itself. */
        int minor = replay_facts(r)->minor;
        assert_int_equal(count(got, "\nThread") + !strncmp(got, "Thread", 6), 3);
        assert_int_equal(count(got, "(main)"), 1);
        assert_int_equal(
            count(got, "    park (") + count(got, "    middle (") + count(got, "    outer ("), 3);
        assert_int_equal(count(got, "    größe_ändern ("), 1); /* Latin-1 */
        assert_int_equal(count(got, "    日本 ("), 1);         /* UCS-2 */
        assert_int_equal(count(got, "    𠀀 ("), 1);           /* UCS-4 */
        assert_int_equal(count(got, "    descend ("), 41);
        assert_int_equal(count(got, minor >= 11 ? "    Walker.start (" : "    start ("), 1);
        assert_int_equal(count(got, minor >= 11 ? "    Walker.steps (" : "    steps ("), 1);
        assert_non_null(strstr(got, "dump_target.py:"));
        printf("%s: CPython %d.%d.%d replayed, %zu bytes of memory\n", names[k],
               replay_facts(r)->major, minor, replay_facts(r)->micro, replay_bytes(r));
        free(got);
        free(want);
        free(text);
        replay_free(r);
    }
}

/* The newest recording (highest minor version). */
static struct replay *newest(void)
{
    list_fixtures();
    struct replay *best = NULL;
    for (int k = 0; k < nnames; k++) {
        struct replay *r = load(names[k]);
        if (!best || replay_facts(r)->minor > replay_facts(best)->minor) {
            replay_free(best);
            best = r;
        } else {
            replay_free(r);
        }
    }
    assert_non_null(best);
    return best;
}

static void expect_refusal(struct replay *r, const char *needle)
{
    char *text = NULL;
    ms_error err;
    if (replay_dump(r, &text, &err) == 0)
        fail_msg("replay succeeded, expected \"%s\":\n%s", needle, text);
    if (!strstr(err.msg, needle))
        fail_msg("expected \"%s\" in: %s", needle, err.msg);
    printf("refused: %s\n", err.msg);
    free(text);
}

static void test_unsupported_version_refused(void **state)
{
    (void)state;
    struct replay *r = newest();
    const struct py_offsets *last = &py_offsets_table[py_offsets_count - 1];
    char want[96];
    snprintf(want, sizeof want, "runs CPython 3.%d, which is not supported; memsnap supports %s",
             last->minor + 1, py_offsets_supported());
    replay_facts(r)->minor = last->minor + 1;
    expect_refusal(r, want);
    replay_facts(r)->minor = 7;
    expect_refusal(r, "runs CPython 3.7, which is not supported");
    replay_free(r);
}

static void test_debug_table_checked(void **state)
{
    (void)state;
    struct replay *r = newest();
    struct pyruntime *f = replay_facts(r);
    const struct py_debug_table *dt = py_debug_find(f->major, f->minor);
    assert_non_null(dt);
    uint64_t table =
        f->runtime_addr + (uint64_t)py_offsets_find(3, f->minor)->runtime_debug_offsets;
    uint64_t one = 1, zero = 0;
    assert_int_equal(replay_poke(r, table + (uint64_t)dt->layout->free_threaded_pos, &one, 8), 0);
    expect_refusal(r, "free-threaded CPython build");
    assert_int_equal(replay_poke(r, table + (uint64_t)dt->layout->free_threaded_pos, &zero, 8), 0);
    char bad[8] = "xdebugpz";
    char good[8];
    memcpy(good, dt->layout->cookie, 8);
    assert_int_equal(replay_poke(r, table + (uint64_t)dt->layout->cookie_pos, bad, 8), 0);
    expect_refusal(r, "\"xdebugpy\" cookie");
    assert_int_equal(replay_poke(r, table + (uint64_t)dt->layout->cookie_pos, good, 8), 0);
    /* A frame owner offset beyond the frame: the layout is refused, nothing is walked. */
    for (int i = 0; i < dt->count; i++)
        if (dt->checks[i].field == offsetof(struct py_offsets, iframe_owner)) {
            uint64_t v = 4000;
            assert_int_equal(replay_poke(r, table + (uint64_t)dt->checks[i].debug_pos, &v, 8), 0);
        }
    expect_refusal(r, "not consistent");
    replay_free(r);
}

static void test_missing_memory_is_an_error(void **state)
{
    (void)state;
    struct replay *r = newest();
    replay_facts(r)->runtime_addr += 1u << 20; /* nothing was recorded there */
    expect_refusal(r, "not in the recording");
    replay_free(r);
}

static uint64_t peek64(const struct replay *r, uint64_t addr)
{
    uint64_t v = 0;
    if (replay_peek(r, addr, &v, 8))
        fail_msg("0x%llx is not in the recording", (unsigned long long)addr);
    return v;
}

/* 3.14's frame rules on the real 3.14 recording: every recorded frame's f_executable gets the
 * tag bit an immortal code object carries (Py_TAG_REFCNT), and an interpreter-owned entry
 * frame (owner 3) is given a real code object; the output must not change. (The live
 * recording has no tagged references: in the GIL build only immortal objects are tagged.) */
static void test_314_frame_rules(void **state)
{
    (void)state;
    struct replay *r = newest();
    struct pyruntime *f = replay_facts(r);
    if (f->minor < 14) {
        printf("SKIP: no 3.14 recording\n");
        replay_free(r);
        return;
    }
    const struct py_offsets *o = py_offsets_find(3, f->minor);
    assert_int_equal(o->code_tag_mask, 3);
    uint64_t interp = peek64(r, f->runtime_addr + (uint64_t)o->runtime_interpreters_main);
    int tagged = 0, entry = 0;
    uint64_t some_code = 0;
    for (uint64_t ts = peek64(r, interp + (uint64_t)o->interp_threads_head); ts;
         ts = peek64(r, ts + (uint64_t)o->tstate_next)) {
        for (uint64_t fr = peek64(r, ts + (uint64_t)o->tstate_current_frame); fr;
             fr = peek64(r, fr + (uint64_t)o->iframe_previous)) {
            uint8_t owner;
            assert_int_equal(replay_peek(r, fr + (uint64_t)o->iframe_owner, &owner, 1), 0);
            uint64_t ex = peek64(r, fr + (uint64_t)o->iframe_code);
            if (owner < o->owner_skip_from && ex && !(ex & 3)) {
                some_code = ex;
                ex |= 1;
                assert_int_equal(replay_poke(r, fr + (uint64_t)o->iframe_code, &ex, 8), 0);
                tagged++;
            } else if (owner == 3 && some_code) { /* FRAME_OWNED_BY_INTERPRETER */
                assert_int_equal(replay_poke(r, fr + (uint64_t)o->iframe_code, &some_code, 8), 0);
                entry++;
            }
        }
    }
    printf("tagged %d frames, gave code to %d interpreter-owned frames\n", tagged, entry);
    assert_true(tagged >= 50);
    assert_true(entry >= 1);
    char *text = NULL;
    ms_error err;
    if (replay_dump(r, &text, &err))
        fail_msg("%s", err.msg);
    char *got = replay_normalize(text), *want = replay_normalize(replay_expect(r));
    if (strcmp(got, want))
        fail_msg("tagged replay differs:\n%s\n--- expected:\n%s", text, replay_expect(r));
    free(got);
    free(want);
    free(text);
    replay_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_cover_every_version),
        cmocka_unit_test(test_replays_match_the_targets_view),
        cmocka_unit_test(test_unsupported_version_refused),
        cmocka_unit_test(test_debug_table_checked),
        cmocka_unit_test(test_missing_memory_is_an_error),
        cmocka_unit_test(test_314_frame_rules),
    };
    return cmocka_run_group_tests_name("replay", tests, NULL, NULL);
}
