/*
 * test_hostile.c - the hook survives a corrupted interpreter, memsnap says how a target died,
 * and a target that replaces its allocator mid-window ends the recording honestly
 * (docs/hook-safety.md). Real processes, every installed CPython:
 *
 *   - tests/py/hostile_target.py in each mode (code pointer 0xdead0000, a wrong-type code
 *     object, a frame chain that loops, a line table of 2^40 and of -5 bytes, 3 MB names, a
 *     thread list that loops, none), all modes of one Python recorded at once, at the
 *     default rate (fingerprint mode) and three unreadable ones again at rate 1 (exact mode):
 *     memsnap exits 0, every target keeps running (not stopped, not traced, still allocating,
 *     answers, exits 0), and the hook's invalid_stacks count is non-zero exactly in the modes
 *     that make a frame unreadable, with the note on stderr.
 *   - a target killed by SIGSEGV mid-window: "process N was killed by SIGSEGV during the
 *     recording", exit status 1, the profile still written.
 *   - tests/py/tracemalloc_target.py: tracemalloc.stop() (wrappers removed) and
 *     tracemalloc.start()+stop() (wrappers covered) mid-window: the recording ends early with
 *     the note and a duration short of --duration; the target keeps its allocator (tracemalloc's
 *     saved originals where our wrappers were removed) and stays healthy.
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
#include <unistd.h>

#include "testproc.h"

#define MAX_PY   16
#define READY_MS 30000
#define RUN_MS   90000

static struct test_python pythons[MAX_PY];
static int n_pythons;
static char tmpdir[] = "/tmp/memsnap-hostile-XXXXXX";
static char out[1 << 16], err[1 << 16];

static const struct {
    const char *mode;
    int unreadable; /* the mode makes a frame unprovable: invalid_stacks must be > 0 */
} modes[] = {
    {"none", 0},       {"code_garbage", 1},   {"wrong_type", 1}, {"frame_cycle", 1},
    {"table_huge", 1}, {"table_negative", 1}, {"huge_names", 0}, {"thread_cycle", 0},
};
#define N_MODES (int)(sizeof modes / sizeof modes[0])

static int exit_code(int st)
{
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void spawn(struct test_proc *p, const struct test_python *py, const char *script,
                  const char *mode)
{
    char *argv[] = {(char *)py->path, (char *)test_py_script(script), (char *)mode, NULL};
    char line[256];
    assert_int_equal(test_proc_spawn(p, argv), 0);
    if (test_proc_wait_line(p, "ready ", line, sizeof line, READY_MS) != 0)
        fail_msg("%s %s %s: no ready line", py->label, script, mode);
}

/* The "alive N" count, after checking the target is neither stopped nor traced. */
static long alive(struct test_proc *p, const char *what)
{
    char line[256];
    if (test_pid_has_stopped_thread(p->pid) || test_pid_is_traced(p->pid))
        fail_msg("%s: left stopped or traced", what);
    assert_int_equal(test_proc_send(p, "check\n"), 0);
    if (test_proc_wait_line(p, "alive ", line, sizeof line, 10000) != 0)
        fail_msg("%s: does not answer", what);
    return strtol(line + 6, NULL, 10);
}

static void quit(struct test_proc *p, const char *what)
{
    char line[256];
    assert_int_equal(test_proc_send(p, "quit\n"), 0);
    if (test_proc_wait_line(p, "bye", line, sizeof line, 10000) != 0)
        fail_msg("%s: did not quit", what);
    int st = test_proc_wait_exit(p, 10000);
    if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fail_msg("%s: exited with status %#x", what, st);
}

/* The value of key in the --stats line of pid, -1 when absent. */
static long long stat_of(pid_t pid, const char *key)
{
    char want[64];
    snprintf(want, sizeof want, "memsnap: stats pid=%d ", (int)pid);
    const char *line = strstr(err, want);
    if (!line)
        return -1;
    const char *eol = strchr(line, '\n');
    const char *k = strstr(line, key);
    if (!k || (eol && k > eol))
        return -1;
    return strtoll(k + strlen(key), NULL, 10);
}

/* Runs memsnap with args, stdout and stderr into files under tmpdir named by tag; returns its
 * pid. */
static pid_t memsnap_spawn(char *const args[], const char *tag)
{
    char log[300];
    snprintf(log, sizeof log, "%s/%s.log", tmpdir, tag);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (!f || dup2(fileno(stdout), 2) < 0)
            _exit(127);
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)test_memsnap();
        for (int i = 0; args[i] && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Modes [first, last) (or the unreadable ones among them) of one Python at `rate`, one memsnap
 * per target, all at once (one memsnap attaching several pids in turn lets the first ones'
 * heartbeats go stale on a loaded machine). */
static void hostile_round(const struct test_python *py, const char *rate, int unreadable_only,
                          int first, int last)
{
    struct test_proc t[N_MODES];
    int which[N_MODES], n = 0;
    long before[N_MODES];
    pid_t ms[N_MODES];
    char what[N_MODES][96];
    for (int m = first; m < last; m++) {
        if (unreadable_only && !modes[m].unreadable)
            continue;
        which[n] = m;
        snprintf(what[n], sizeof what[n], "%s %s rate %s", py->label, modes[m].mode, rate);
        spawn(&t[n], py, "hostile_target.py", modes[m].mode);
        before[n] = alive(&t[n], what[n]);
        n++;
    }
    for (int i = 0; i < n; i++) {
        char pid[16], outpath[256];
        snprintf(pid, sizeof pid, "%d", (int)t[i].pid);
        snprintf(outpath, sizeof outpath, "%s/h-%d.pb", tmpdir, (int)t[i].pid);
        char *args[] = {"attach", pid,     "--duration", "1",       "--rate", (char *)rate,
                        "-o",     outpath, "--quiet",    "--stats", NULL};
        ms[i] = memsnap_spawn(args, pid);
    }
    for (int i = 0; i < n; i++) {
        int st = -1;
        assert_int_equal(waitpid(ms[i], &st, 0), ms[i]);
        char log[300];
        snprintf(log, sizeof log, "%s/%d.log", tmpdir, (int)t[i].pid);
        FILE *f = fopen(log, "r");
        assert_non_null(f);
        size_t got = fread(err, 1, sizeof err - 1, f);
        err[got] = 0;
        fclose(f);
        print_message("%s", err);
        if (exit_code(st) != 0)
            fail_msg("%s: memsnap exited with status %#x", what[i], st);
        long long invalid = stat_of(t[i].pid, "invalid_stacks=");
        if (invalid < 0)
            fail_msg("%s: no stats line", what[i]);
        if (modes[which[i]].unreadable && invalid == 0)
            fail_msg("%s: no stack was cut (invalid_stacks=0)", what[i]);
        if (!modes[which[i]].unreadable && invalid != 0)
            fail_msg("%s: %lld stacks cut in a readable interpreter", what[i], invalid);
        char note[128];
        snprintf(note, sizeof note, "memsnap: the hook cut %lld sampled stacks", invalid);
        if (invalid > 0 && !strstr(err, note))
            fail_msg("%s: no note on stderr", what[i]);
        long after = alive(&t[i], what[i]);
        if (after <= before[i])
            fail_msg("%s: stopped allocating (%ld, then %ld)", what[i], before[i], after);
        quit(&t[i], what[i]);
    }
}

static void test_hostile_default_rate(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++)
        hostile_round(&pythons[i], "524288", 0, 0, N_MODES);
}

static void test_hostile_exact(void **state)
{
    (void)state;
    /* The table modes take the same path as the code pointer ones once the code object is
     * proven. */
    for (int i = 0; i < n_pythons; i++)
        hostile_round(&pythons[i], "1", 1, 1, 4); /* code_garbage, wrong_type, frame_cycle */
}

static void test_killed_by_signal(void **state)
{
    (void)state;
    const struct test_python *py = &pythons[n_pythons - 1];
    struct test_proc t;
    spawn(&t, py, "hostile_target.py", "none");
    pid_t killer = fork();
    assert_true(killer >= 0);
    if (killer == 0) {
        usleep(1500 * 1000);
        kill(t.pid, SIGSEGV);
        _exit(0);
    }
    char pid[16], outpath[256];
    snprintf(pid, sizeof pid, "%d", (int)t.pid);
    snprintf(outpath, sizeof outpath, "%s/killed.pb", tmpdir);
    char *args[] = {"attach", pid, "--duration", "8", "-o", outpath, "--quiet", NULL};
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS);
    print_message("%s%s", out, err);
    waitpid(killer, NULL, 0);
    char want[128];
    snprintf(want, sizeof want, "process %d was killed by SIGSEGV during the recording",
             (int)t.pid);
    assert_non_null(strstr(err, want));
    assert_int_equal(exit_code(st), 1);
    assert_non_null(strstr(out, "wrote "));
    int tst = test_proc_wait_exit(&t, 10000);
    assert_true(WIFSIGNALED(tst) && WTERMSIG(tst) == SIGSEGV);
    test_proc_kill(&t);
}

/* mode "before": tracemalloc.stop() removes our wrappers; "during": start()+stop() covers them. */
static void tracemalloc_round(const struct test_python *py, const char *mode)
{
    char what[96], line[256];
    snprintf(what, sizeof what, "%s tracemalloc %s", py->label, mode);
    struct test_proc t;
    spawn(&t, py, "tracemalloc_target.py", mode);
    pid_t changer = fork();
    assert_true(changer >= 0);
    if (changer == 0) { /* once recording surely began */
        usleep(3000 * 1000);
        _exit(write(t.in_fd, "change\n", 7) == 7 ? 0 : 1);
    }
    char pid[16], outpath[256];
    snprintf(pid, sizeof pid, "%d", (int)t.pid);
    snprintf(outpath, sizeof outpath, "%s/tm.pb", tmpdir);
    char *args[] = {"attach", pid, "--duration", "8", "-o", outpath, "--quiet", "--stats", NULL};
    long long t0 = test_now_ms();
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS);
    long long took = test_now_ms() - t0;
    print_message("%s%s", out, err);
    waitpid(changer, NULL, 0);
    assert_int_equal(exit_code(st), 0);
    if (test_proc_wait_line(&t, "changed", line, sizeof line, 10000) != 0)
        fail_msg("%s: the change did not happen", what);
    char want[160];
    snprintf(want, sizeof want, "memsnap: process %d replaced the allocator during the recording",
             (int)t.pid);
    if (!strstr(err, want))
        fail_msg("%s: no note", what);
    if (stat_of(t.pid, "allocator_replaced=") != 1)
        fail_msg("%s: allocator_replaced not set", what);
    /* the duration written is the true one: short of the 8 s asked, and memsnap ended early */
    const char *s = strstr(out, " in use, ");
    assert_non_null(s);
    double secs = strtod(s + 9, NULL);
    if (!(secs > 0.5 && secs < 6.0) || took > 7500)
        fail_msg("%s: recorded %.1f s in %lld ms", what, secs, took);
    assert_int_equal(test_proc_send(&t, "check\n"), 0);
    if (test_proc_wait_line(&t, "alive ", line, sizeof line, 10000) != 0)
        fail_msg("%s: does not answer", what);
    if (!strstr(line, "tracing=0"))
        fail_msg("%s: %s", what, line);
    /* where tracemalloc removed our wrappers, the allocators it restored stay in place */
    if (!strcmp(mode, "before") && !strstr(line, "default=1"))
        fail_msg("%s: the allocator was changed after tracemalloc.stop(): %s", what, line);
    if (test_pid_has_stopped_thread(t.pid) || test_pid_is_traced(t.pid))
        fail_msg("%s: left stopped or traced", what);
    quit(&t, what);
}

static void test_tracemalloc_mid_window(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        tracemalloc_round(&pythons[i], "before");
        tracemalloc_round(&pythons[i], "during");
    }
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
        cmocka_unit_test(test_hostile_default_rate),
        cmocka_unit_test(test_hostile_exact),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_tracemalloc_mid_window),
    };
    return cmocka_run_group_tests_name("hostile", tests, setup, teardown);
}
