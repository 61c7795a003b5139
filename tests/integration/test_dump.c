/*
 * test_dump.c - `memsnap dump` against real Python processes of every installed version.
 *
 * tests/py/dump_target.py parks three threads in known call chains (one with Latin-1, UCS-2
 * and UCS-4 function names, one in a class method, a generator and a 40-deep recursion) and prints
 * what its own interpreter sees (sys._current_frames, native thread ids) in dump's text format.
 * memsnap's text and JSON output must match it exactly, and afterwards the target must be neither
 * stopped nor traced and must still answer. Also: a process stopped with SIGSTOP is dumped and left
 * stopped, a process traced by someone else is refused (3.8-3.10, where dump stops threads), and
 * bad inputs give one sentence + exit 1 (exit 2 for usage errors).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "testproc.h"

#define OUT_MAX (256 * 1024)

static char out[OUT_MAX], err[8192];

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

/* Starts dump_target.py with py and copies its expected dump into expect. */
static int start_target(const struct test_python *py, struct test_proc *p, char *expect, size_t n)
{
    char *argv[] = {(char *)py->path, (char *)test_py_script("dump_target.py"), NULL};
    if (test_proc_spawn(p, argv))
        return -1;
    char line[1024];
    if (test_proc_wait_line(p, "EXPECT-BEGIN", line, sizeof line, 20000)) {
        print_error("%s: dump_target.py never reported\n", py->label);
        test_proc_kill(p);
        return -1;
    }
    size_t used = 0;
    expect[0] = 0;
    for (;;) { /* every line up to EXPECT-END */
        if (test_proc_wait_line(p, "", line, sizeof line, 10000)) {
            test_proc_kill(p);
            return -1;
        }
        if (!strcmp(line, "EXPECT-END"))
            break;
        int k = snprintf(expect + used, n - used, "%s\n", line);
        if (k < 0 || (size_t)k >= n - used) {
            test_proc_kill(p);
            return -1;
        }
        used += (size_t)k;
    }
    /* The reporter thread exits right after printing: wait until only three threads remain. */
    for (int i = 0; i < 400 && task_count(p->pid) != 3; i++)
        usleep(5000);
    return task_count(p->pid) == 3 ? 0 : -1;
}

static void strip_gil_marks(char *s)
{
    const char *mark = " (holds the GIL)";
    char *m;
    while ((m = strstr(s, mark)))
        memmove(m, m + strlen(mark), strlen(m + strlen(mark)) + 1);
}

static int run_dump(pid_t pid, const char *flag)
{
    char pids[32];
    snprintf(pids, sizeof pids, "%d", (int)pid);
    char *args[] = {"dump", pids, (char *)flag, NULL};
    return test_run_memsnap(args, out, sizeof out, err, sizeof err, 20000);
}

/* Every expected frame "    NAME (FILE:LINE)" appears as a JSON frame object. */
static void check_json(const char *label, const char *expect)
{
    int threads = 0;
    for (const char *p = out; (p = strstr(p, "\"tid\": ")); p++)
        threads++;
    if (threads != 3)
        fail_msg("%s: JSON has %d threads, expected 3:\n%s", label, threads, out);
    const char *line = expect;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 4 && !strncmp(line, "    ", 4)) {
            char buf[1024], want[1200];
            snprintf(buf, sizeof buf, "%.*s", (int)(len - 4), line + 4);
            char *open = strstr(buf, " ("), *colon = strrchr(buf, ':');
            assert_non_null(open);
            assert_non_null(colon);
            *open = 0;
            buf[strlen(open + 2) + (size_t)(open + 2 - buf) - 1] = 0; /* drop ")" */
            *colon = 0;
            snprintf(want, sizeof want, "{\"function\":\"%s\",\"file\":\"%s\",\"line\":%s}", buf,
                     open + 2, colon + 1);
            if (!strstr(out, want))
                fail_msg("%s: JSON lacks %s:\n%s", label, want, out);
        } else if (!strncmp(line, "Thread ", 7)) {
            char want[64], named[128];
            snprintf(want, sizeof want, "\"tid\": %d,", atoi(line + 7));
            if (!strstr(out, want))
                fail_msg("%s: JSON lacks %s:\n%s", label, want, out);
            /* Its kernel name and state: Thread N "name"...: idle. */
            const char *q = strchr(line, '"'), *q2 = q ? strchr(q + 1, '"') : NULL;
            assert_non_null(q2);
            snprintf(named, sizeof named, "\"name\": \"%.*s\", \"state\": \"idle\"",
                     (int)(q2 - q - 1), q + 1);
            if (!strstr(out, named))
                fail_msg("%s: JSON lacks %s:\n%s", label, named, out);
        }
        line += len + (nl != NULL);
    }
}

static void check_alive(const char *label, struct test_proc *p)
{
    assert_int_equal(test_pid_has_stopped_thread(p->pid), 0);
    assert_int_equal(test_pid_is_traced(p->pid), 0);
    char line[64];
    test_proc_send(p, "ping\n");
    if (test_proc_wait_line(p, "pong", line, sizeof line, 10000))
        fail_msg("%s: the target stopped answering after dump", label);
    /* Let the main thread get back into park(): blocked in read(2), syscall number 0. */
    char path[64], sc[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)p->pid);
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(path, "r");
        int got = f && fgets(sc, sizeof sc, f) != NULL;
        if (f)
            fclose(f);
        if (got && !strncmp(sc, "0 ", 2))
            break;
        usleep(2000);
    }
}

static void test_dump_matches_interpreter(void **state)
{
    (void)state;
    struct test_python py[8];
    int n = test_pythons(py, 8);
    static char expect[32768];
    for (int i = 0; i < n; i++) {
        struct test_proc p;
        if (start_target(&py[i], &p, expect, sizeof expect))
            fail_msg("%s: could not start dump_target.py", py[i].label);
        int st = run_dump(p.pid, NULL);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: memsnap dump failed (%d): %s", py[i].label, st, err);
        strip_gil_marks(out);
        if (strcmp(out, expect))
            fail_msg("%s: memsnap dump says:\n%s\nthe interpreter says:\n%s", py[i].label, out,
                     expect);
        check_alive(py[i].label, &p);
        st = run_dump(p.pid, "--json");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: memsnap dump --json failed: %s", py[i].label, err);
        check_json(py[i].label, expect);
        check_alive(py[i].label, &p);
        test_proc_send(&p, "quit\n");
        int ws = test_proc_wait_exit(&p, 10000);
        assert_true(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
        test_proc_kill(&p);
        printf("ok: %s\n", py[i].label);
    }
}

static char state_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    char *rp = strrchr(buf, ')');
    return rp ? rp[2] : 0;
}

/* A Ctrl-Z'd process is dumped from memory alone and stays stopped, untraced. */
static void test_stopped_process(void **state)
{
    (void)state;
    struct test_python py[8];
    int n = test_pythons(py, 8);
    static char expect[32768];
    for (int i = 0; i < n; i++) {
        if (py[i].minor != 10 && py[i].minor != 12)
            continue;
        struct test_proc p;
        if (start_target(&py[i], &p, expect, sizeof expect))
            fail_msg("%s: could not start dump_target.py", py[i].label);
        kill(p.pid, SIGSTOP);
        for (int k = 0; k < 200 && state_of(p.pid) != 'T'; k++)
            usleep(5000);
        assert_int_equal(state_of(p.pid), 'T');
        int st = run_dump(p.pid, NULL);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: dump of a stopped process failed: %s", py[i].label, err);
        assert_non_null(strstr(out, "größe_ändern"));
        assert_non_null(strstr(out, "park ("));
        /* 3.11+ know the threads' tids without stopping them: the kernel says stopped. */
        if (py[i].minor >= 11 && !strstr(out, ": stopped\n"))
            fail_msg("%s: a stopped thread not called stopped:\n%s", py[i].label, out);
        usleep(20000);
        assert_int_equal(state_of(p.pid), 'T'); /* never resumed */
        assert_int_equal(test_pid_is_traced(p.pid), 0);
        kill(p.pid, SIGCONT);
        check_alive(py[i].label, &p);
        test_proc_kill(&p);
    }
}

/* A thread running Python flat out is "running", the main thread waiting on stdin "idle";
 * the kernel name the spinner gave itself is shown (text and JSON). */
static void test_running_and_idle(void **state)
{
    (void)state;
    struct test_python py[8];
    int n = test_pythons(py, 8);
    for (int i = 0; i < n; i++) {
        struct test_proc p;
        char *argv[] = {(char *)py[i].path, (char *)test_py_script("dump_spinner.py"), NULL};
        assert_int_equal(test_proc_spawn(&p, argv), 0);
        char line[256];
        if (test_proc_wait_line(&p, "ready", line, sizeof line, 20000))
            fail_msg("%s: dump_spinner.py never got ready", py[i].label);
        usleep(50000);
        int st = run_dump(p.pid, "--json");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: memsnap dump --json failed: %s", py[i].label, err);
        if (!strstr(out, "\"name\": \"spinner\", \"state\": \"running\", \"main\": false") ||
            !strstr(out, "\"state\": \"idle\", \"main\": true"))
            fail_msg("%s: expected the spinner running and main idle:\n%s", py[i].label, out);
        st = run_dump(p.pid, NULL);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: memsnap dump failed: %s", py[i].label, err);
        const char *spin = strstr(out, " \"spinner\"");
        if (!spin || strncmp(strchr(spin, ':'), ": running\n", 10))
            fail_msg("%s: the text does not call the spinner running:\n%s", py[i].label, out);
        assert_int_equal(test_pid_is_traced(p.pid), 0);
        test_proc_send(&p, "quit\n");
        int ws = test_proc_wait_exit(&p, 10000);
        assert_true(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
        test_proc_kill(&p);
        printf("ok: %s\n", py[i].label);
    }
}

/* On 3.8-3.10 dump stops the threads with ptrace; a debugger already there is named. */
static void test_already_traced(void **state)
{
    (void)state;
    struct test_python py[8];
    int n = test_pythons(py, 8);
    static char expect[32768];
    for (int i = 0; i < n; i++) {
        if (py[i].minor > 10)
            continue;
        struct test_proc p;
        if (start_target(&py[i], &p, expect, sizeof expect))
            fail_msg("%s: could not start dump_target.py", py[i].label);
        assert_int_equal(ptrace(PTRACE_SEIZE, p.pid, 0, 0), 0);
        int st = run_dump(p.pid, NULL);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
        char want[96];
        snprintf(want, sizeof want, "already being traced by pid %d", (int)getpid());
        if (!strstr(err, want))
            fail_msg("%s: expected '%s' in: %s", py[i].label, want, err);
        /* Let go of it: a seized tracee must be stopped to be detached. */
        assert_int_equal(ptrace(PTRACE_INTERRUPT, p.pid, 0, 0), 0);
        int ws;
        assert_int_equal(waitpid(p.pid, &ws, __WALL), p.pid);
        assert_int_equal(ptrace(PTRACE_DETACH, p.pid, 0, 0), 0);
        check_alive(py[i].label, &p);
        test_proc_kill(&p);
        break; /* one stop-mode version is enough */
    }
}

static void expect_failure(char *const args[], int code, const char *needle)
{
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, 20000);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != code || !strstr(err, needle))
        fail_msg("memsnap %s %s: status %d, stderr '%s', expected exit %d and '%s'", args[0],
                 args[1] ? args[1] : "", WIFEXITED(st) ? WEXITSTATUS(st) : -1, err, code, needle);
    /* One sentence, one line. */
    assert_non_null(strchr(err, '\n'));
    if (code == 1)
        assert_true(strchr(err, '\n')[1] == 0);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    char *a1[] = {"dump", "abc", NULL};
    expect_failure(a1, 2, "'abc' is not a process id");
    char *a2[] = {"dump", "0", NULL};
    expect_failure(a2, 2, "not a process id");
    char *a3[] = {"dump", NULL};
    expect_failure(a3, 2, "usage");
    char *a4[] = {"dump", "1", "--bogus", NULL};
    expect_failure(a4, 2, "unknown option");

    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    char pids[32];
    snprintf(pids, sizeof pids, "%d", (int)gone);
    char *a5[] = {"dump", pids, NULL};
    expect_failure(a5, 1, "no process with pid");

    /* Not Python at all. */
    struct test_proc p;
    char *sleep_argv[] = {"/bin/sleep", "30", NULL};
    assert_int_equal(test_proc_spawn(&p, sleep_argv), 0);
    usleep(50000);
    snprintf(pids, sizeof pids, "%d", (int)p.pid);
    char *a6[] = {"dump", pids, NULL};
    expect_failure(a6, 1, "(sleep) is not a CPython process");
    test_proc_kill(&p);

    /* Not allowed: an unprivileged user dumping root's process. */
    if (access("/usr/bin/setpriv", X_OK) == 0 && geteuid() == 0) {
        assert_int_equal(test_proc_spawn(&p, sleep_argv), 0);
        usleep(50000);
        snprintf(pids, sizeof pids, "%d", (int)p.pid);
        char *argv[] = {"/usr/bin/setpriv",
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                        (char *)test_memsnap(),
                        "dump",
                        pids,
                        NULL};
        int st = test_run_capture(argv, out, sizeof out, err, sizeof err, 20000);
        test_proc_kill(&p);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 || !strstr(err, "CAP_SYS_PTRACE"))
            fail_msg("unprivileged dump: status %d, stderr '%s'", st, err);
    } else {
        printf("SKIP: permission case needs root and setpriv\n");
    }

    /* An unsupported CPython: 3.7 (pyenv), when installed. */
    const char *root = getenv("PYENV_ROOT");
    char py37[512];
    snprintf(py37, sizeof py37, "%s/versions/3.7.16/bin/python3", root ? root : "/root/.pyenv");
    if (access(py37, X_OK) == 0) {
        char *argv[] = {py37, "-c", "import sys; print('up', flush=True); sys.stdin.read()", NULL};
        assert_int_equal(test_proc_spawn(&p, argv), 0);
        char line[16];
        assert_int_equal(test_proc_wait_line(&p, "up", line, sizeof line, 10000), 0);
        snprintf(pids, sizeof pids, "%d", (int)p.pid);
        char *a7[] = {"dump", pids, NULL};
        expect_failure(a7, 1, "CPython 3.7, which is not supported; memsnap supports 3.8-3.14");
        assert_int_equal(test_pid_is_traced(p.pid), 0);
        test_proc_kill(&p);
    } else {
        printf("SKIP: pyenv's python 3.7 is not installed\n");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_matches_interpreter),
        cmocka_unit_test(test_stopped_process),
        cmocka_unit_test(test_running_and_idle),
        cmocka_unit_test(test_already_traced),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests_name("dump", tests, NULL, NULL);
}
