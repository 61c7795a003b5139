/*
 * test_replay_record.c - records what a dump reads from a live dump_target.py of every
 * installed CPython and replays it through the same readers (tests/support/replay.h).
 *
 * For each interpreter: the live walk must match what the target reports about itself; the
 * recording, saved to a file and loaded back, must replay to the very same text. With
 * MEMSNAP_WRITE_FIXTURES=DIR the recordings are also written to DIR/dump-<version>.txt: that is
 * how tests/fixtures/ is made (docs/python-versions.md), and tests/unit/test_replay.c replays
 * those on machines without the interpreters.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "commands.h"
#include "pycode.h"
#include "pyruntime.h"
#include "pythreads.h"
#include "replay.h"
#include "testproc.h"

static int task_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Starts dump_target.py and collects its EXPECT block; waits until its three parked threads
 * are the only ones left. */
static int start_target(const struct test_python *py, struct test_proc *p, char *expect, size_t n)
{
    char *argv[] = {(char *)py->path, (char *)test_py_script("dump_target.py"), NULL};
    if (test_proc_spawn(p, argv))
        return -1;
    char line[1024];
    if (test_proc_wait_line(p, "EXPECT-BEGIN", line, sizeof line, 20000))
        goto fail;
    size_t used = 0;
    expect[0] = 0;
    for (;;) {
        if (test_proc_wait_line(p, "", line, sizeof line, 10000))
            goto fail;
        if (!strcmp(line, "EXPECT-END"))
            break;
        int k = snprintf(expect + used, n - used, "%s\n", line);
        if (k < 0 || (size_t)k >= n - used)
            goto fail;
        used += (size_t)k;
    }
    for (int i = 0; i < 400 && task_count(p->pid) != 3; i++)
        usleep(5000);
    if (task_count(p->pid) == 3)
        return 0;
fail:
    test_proc_kill(p);
    return -1;
}

/* The live walk, recorded into r; *text gets dump's text. */
static int record_live(pid_t pid, struct replay *r, char **text, ms_error *err)
{
    struct pyruntime *rt = calloc(1, sizeof *rt);
    assert_non_null(rt);
    int rc = -1;
    if (pyruntime_facts(pid, rt, err) == 0) {
        replay_set_facts(r, rt);
        replay_record_start(r);
        struct pycode_cache *cc = NULL;
        struct pythreads ts;
        if (pyruntime_finish(rt, err) == 0 && (cc = pycode_cache_new(rt)) &&
            pythreads_snapshot(rt, cc, &ts, err) == 0) {
            size_t len;
            FILE *f = open_memstream(text, &len);
            assert_non_null(f);
            dump_print_text(f, &ts, NULL, 0);
            fclose(f);
            pythreads_free(&ts);
            rc = 0;
        }
        replay_record_stop();
        pycode_cache_free(cc);
    }
    free(rt);
    return rc;
}

static void test_record_and_replay(void **state)
{
    (void)state;
    struct test_python py[16];
    int n = test_pythons(py, 16);
    const char *dir = getenv("MEMSNAP_WRITE_FIXTURES");
    static char expect[256 * 1024];
    for (int i = 0; i < n; i++) {
        struct test_proc p;
        if (start_target(&py[i], &p, expect, sizeof expect))
            fail_msg("%s: dump_target.py did not park", py[i].label);
        struct replay *r = replay_new();
        replay_set_expect(r, expect);
        char *live = NULL, *again = NULL;
        ms_error err;
        if (record_live(p.pid, r, &live, &err))
            fail_msg("%s: live walk failed: %s", py[i].label, err.msg);
        test_proc_send(&p, "quit\n");
        test_proc_wait_exit(&p, 5000);
        test_proc_kill(&p);

        char *nl = replay_normalize(live), *ne = replay_normalize(expect);
        if (strcmp(nl, ne))
            fail_msg("%s: live dump differs from the target's own view:\n%s\n--- expected:\n%s",
                     py[i].label, live, expect);

        /* Through a file and back, as the unit test will see it. */
        char path[PATH_MAX];
        snprintf(path, sizeof path, "/tmp/memsnap-replay-%d.txt", (int)getpid());
        assert_int_equal(replay_save(r, path), 0);
        struct replay *back = replay_load(path, &err);
        if (!back)
            fail_msg("%s: %s", py[i].label, err.msg);
        if (replay_dump(back, &again, &err))
            fail_msg("%s: replay failed: %s", py[i].label, err.msg);
        char *na = replay_normalize(again);
        if (strcmp(na, nl))
            fail_msg("%s: replay differs from the live dump:\n%s\n--- live:\n%s", py[i].label,
                     again, live);
        printf("%s: live dump recorded (%zu bytes of memory) and replayed identically\n",
               py[i].label, replay_bytes(back));
        if (dir) {
            char out[PATH_MAX];
            snprintf(out, sizeof out, "%s/dump-%s%d.%d.%d.txt", dir, py[i].debian ? "debian-" : "",
                     replay_facts(back)->major, replay_facts(back)->minor,
                     replay_facts(back)->micro);
            assert_int_equal(replay_save(back, out), 0);
            printf("wrote %s\n", out);
        }
        unlink(path);
        free(na);
        free(nl);
        free(ne);
        free(live);
        free(again);
        replay_free(back);
        replay_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_replay),
    };
    return cmocka_run_group_tests_name("replay_record", tests, NULL, NULL);
}
