/*
 * test_messages.c - the sentences memsnap gives in situations real processes produce:
 *   - a CPython 2.7 target (pyenv's 2.7.18, SKIP when absent) is an unsupported version,
 *     named with the supported ones, not "not a CPython process";
 *   - as root with CAP_SYS_PTRACE, a refused process (pid 1 here, when refused) is said to be
 *     protected, without the "run memsnap as root" advice;
 *   - a target exiting while memsnap attaches gets one sentence whichever step notices;
 *   - `stats` of a worker that exited (or freed everything) in the window shows the
 *     allocation view and says why, instead of "(none)" everywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "py_offsets.h"
#include "testproc.h"

#define MAX_PY 16
#define RUN_MS 60000

static struct test_python pythons[MAX_PY];
static int n_pythons;
static char tmpdir[] = "/tmp/memsnap-messages-XXXXXX";
static char out[1 << 16], err[1 << 16];

static int exit_code(int st)
{
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int one_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl && nl[1] == 0;
}

static void test_python2_is_an_unsupported_version(void **state)
{
    (void)state;
    char py2[512];
    const char *home = getenv("HOME");
    FILE *f = popen("pyenv root 2>/dev/null", "r");
    char root[400] = "";
    if (f) {
        if (fgets(root, sizeof root, f))
            root[strcspn(root, "\n")] = 0;
        pclose(f);
    }
    if (!root[0])
        snprintf(root, sizeof root, "%s/.pyenv", home ? home : "/root");
    snprintf(py2, sizeof py2, "%s/versions/2.7.18/bin/python2.7", root);
    if (access(py2, X_OK) != 0) {
        print_message("SKIP: CPython 2.7.18 is not installed under %s\n", root);
        return;
    }
    struct test_proc p;
    char *argv[] = {py2, "-c",
                    "import sys, time; print('ready'); sys.stdout.flush(); "
                    "time.sleep(60)",
                    NULL};
    assert_int_equal(test_proc_spawn(&p, argv), 0);
    char line[64];
    assert_int_equal(test_proc_wait_line(&p, "ready", line, sizeof line, 20000), 0);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)p.pid);
    char *args[] = {"attach", pid, "--duration", "1", NULL};
    int rc = exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
    print_message("    2.7 -> %d: %s", rc, err);
    assert_int_equal(rc, 1);
    assert_true(one_line(err));
    assert_non_null(strstr(err, "CPython 2.7, which is not supported"));
    assert_non_null(strstr(err, py_offsets_supported())); /* "3.8-3.14": the table's range */
    assert_null(strstr(err, "not a CPython process"));
    assert_false(test_pid_is_traced(p.pid));
    test_proc_kill(&p);
}

static void test_refused_as_root(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("SKIP: the refused-as-root sentence needs root\n");
        return;
    }
    char *args[] = {"attach", "1", "--duration", "0.5", NULL};
    int rc = exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
    print_message("    pid 1 -> %d: %s", rc, err);
    if (!strstr(err, "not allowed")) {
        print_message("SKIP: pid 1 is not refused to root here\n");
        return;
    }
    assert_int_equal(rc, 1);
    assert_true(one_line(err));
    assert_null(strstr(err, "run memsnap as root"));
    assert_non_null(strstr(err, "protected"));
}

/* Targets that exit 0-300 ms after saying ready, attached at once: every failure is one of
 * the exit sentences, and a recording is a success. */
static void test_exit_race_one_sentence(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    print_message("    seed %u\n", seed);
    srand(seed);
    int recorded = 0, refused = 0;
    for (int k = 0; k < 16; k++) {
        const struct test_python *py = &pythons[k % n_pythons];
        char code[256];
        snprintf(code, sizeof code,
                 "import sys, time\nx = [str(i) for i in range(20000)]\nprint('ready')\n"
                 "sys.stdout.flush()\ntime.sleep(%.3f)\n",
                 (rand() % 300) / 1000.0);
        char *argv[] = {(char *)py->path, "-c", code, NULL};
        struct test_proc p;
        assert_int_equal(test_proc_spawn(&p, argv), 0);
        char line[64];
        assert_int_equal(test_proc_wait_line(&p, "ready", line, sizeof line, 20000), 0);
        char pid[16], path[300];
        snprintf(pid, sizeof pid, "%d", (int)p.pid);
        snprintf(path, sizeof path, "%s/race.pb", tmpdir);
        char *args[] = {"attach", pid, "--duration", "2", "--quiet", "-o", path, NULL};
        int rc = exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
        print_message("    %s: %d %s", py->label, rc, rc ? err : out);
        if (rc == 0) {
            recorded++;
        } else {
            refused++;
            assert_int_equal(rc, 1);
            if (!one_line(err) || (!(strstr(err, "exited while memsnap was attaching to it") &&
                                     strstr(err, "nothing was recorded")) &&
                                   !strstr(err, "exited before memsnap attached to it") &&
                                   !strstr(err, "no process with pid")))
                fail_msg("%s: not the exit sentence: %s", py->label, err);
        }
        test_proc_kill(&p);
    }
    print_message("    %d recorded, %d refused with the exit sentence\n", recorded, refused);
}

static void test_stats_of_exited_worker(void **state)
{
    (void)state;
    const struct test_python *py = &pythons[0];
    char *argv[] = {(char *)py->path, "-c",
                    "import sys, time\nprint('ready')\nsys.stdout.flush()\nt = time.time()\n"
                    "while time.time() - t < 1.5:\n    x = [str(i) * 50 for i in range(20000)]\n"
                    "    del x\n",
                    NULL};
    struct test_proc p;
    assert_int_equal(test_proc_spawn(&p, argv), 0);
    char line[64];
    assert_int_equal(test_proc_wait_line(&p, "ready", line, sizeof line, 20000), 0);
    char pid[16], path[300];
    snprintf(pid, sizeof pid, "%d", (int)p.pid);
    snprintf(path, sizeof path, "%s/exited.pb", tmpdir);
    char *args[] = {"attach", pid,       "--duration", "10", "--rate",
                    "4096",   "--quiet", "-o",         path, NULL};
    int rc = exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
    if (rc != 0)
        fail_msg("%s: %s", py->label, err);
    assert_non_null(strstr(out, "exited during the recording"));
    test_proc_kill(&p);
    char *stats[] = {"stats", path, NULL};
    rc = exit_code(test_run_memsnap(stats, out, sizeof out, err, sizeof err, RUN_MS));
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "note: nothing recorded was still in use"));
    const char *sites = strstr(out, "Top allocation sites by alloc_space");
    if (!sites)
        fail_msg("no alloc_space table: %s", out);
    const char *next = strchr(sites, '\n');
    assert_non_null(next);
    if (!strncmp(next + 1, "  (none)", 8))
        fail_msg("the allocation view is empty: %s", out);
}

static int setup(void **state)
{
    (void)state;
    n_pythons = test_pythons(pythons, MAX_PY);
    if (!mkdtemp(tmpdir))
        return -1;
    return n_pythons > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python2_is_an_unsupported_version),
        cmocka_unit_test(test_refused_as_root),
        cmocka_unit_test(test_exit_race_one_sentence),
        cmocka_unit_test(test_stats_of_exited_worker),
    };
    return cmocka_run_group_tests_name("messages", tests, setup, teardown);
}
