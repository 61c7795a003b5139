/*
 * test_run.c - `memsnap run` against real commands: every installed CPython, -m, -c, `#!`
 * scripts, a non-Python command. Asserts that the command behaves exactly as without
 * memsnap (output, stdin, exit status, the signal that killed it, KeyboardInterrupt on
 * SIGINT, not left traced) and what memsnap says about it.
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

#include "profile.h"
#include "testproc.h"

#define RUN_TIMEOUT_MS 30000

static struct test_python pythons[16];
static int n_pythons;

static char out[1 << 16], err[1 << 16];

/* memsnap run [-o FILE] -- cmd...; returns the wait status. */
static int memsnap_run(const char *output, char *const cmd[])
{
    char *args[48];
    int n = 0;
    args[n++] = "run";
    if (output) {
        args[n++] = "-o";
        args[n++] = (char *)output;
    }
    args[n++] = "--";
    for (int i = 0; cmd[i] && n < 47; i++)
        args[n++] = cmd[i];
    args[n] = NULL;
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    if (st < 0)
        fail_msg("memsnap run %s did not finish (%d)", cmd[0], st);
    return st;
}

/* 1 while pid exists and is not a zombie (an orphan is reaped by whoever adopted it). */
static int process_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_exit_status_passes_through(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        const struct test_python *py = &pythons[i];
        char *ok[] = {(char *)py->path, "-c", "print('out', 1 + 1)", NULL};
        int st = memsnap_run(NULL, ok);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_string_equal(out, "out 2\n");
        assert_null(strstr(err, "not a supported"));

        char *three[] = {(char *)py->path, "-c", "import sys; sys.exit(3)", NULL};
        st = memsnap_run(NULL, three);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 3);

        char *term[] = {(char *)py->path, "-c",
                        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)", NULL};
        st = memsnap_run(NULL, term);
        if (!WIFSIGNALED(st))
            fail_msg("%s: expected death by SIGTERM, got status 0x%x; stderr: %s", py->label, st,
                     err);
        assert_int_equal(WTERMSIG(st), SIGTERM);
    }
}

static void test_stdin_stdout_pass_through(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        char *argv[] = {(char *)test_memsnap(),
                        "run",
                        "--",
                        pythons[i].path,
                        "-c",
                        "import sys; sys.stdout.write(sys.stdin.read().upper())",
                        NULL};
        struct test_proc p;
        assert_int_equal(test_proc_spawn(&p, argv), 0);
        test_proc_send(&p, "hello from stdin\nsecond line\n");
        close(p.in_fd);
        p.in_fd = -1;
        char line[256];
        assert_int_equal(test_proc_wait_line(&p, "HELLO", line, sizeof line, 20000), 0);
        assert_string_equal(line, "HELLO FROM STDIN");
        assert_int_equal(test_proc_wait_line(&p, "SECOND", line, sizeof line, 20000), 0);
        assert_string_equal(line, "SECOND LINE");
        int st = test_proc_wait_exit(&p, 20000);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        test_proc_kill(&p);
    }
}

/* Starts run_signals.py under memsnap in its own process group; waits for "ready" and
 * returns the python's pid. */
static pid_t start_signals(struct test_proc *p, const struct test_python *py)
{
    char *argv[] = {(char *)test_memsnap(),
                    "run",
                    "--",
                    (char *)py->path,
                    (char *)test_py_script("run_signals.py"),
                    NULL};
    assert_int_equal(test_proc_spawn(p, argv), 0);
    char line[128];
    if (test_proc_wait_line(p, "ready", line, sizeof line, 20000) < 0)
        fail_msg("%s: run_signals.py never became ready", py->label);
    /* memsnap detached before the program ran: nobody traces it. */
    int tracer = -1, pid = -1;
    assert_int_equal(sscanf(line, "ready tracer=%d pid=%d", &tracer, &pid), 2);
    assert_int_equal(tracer, 0);
    assert_true(pid > 0 && pid != p->pid);
    return (pid_t)pid;
}

/* Ctrl-C in a terminal: SIGINT to the whole foreground process group. */
static void test_sigint_is_keyboard_interrupt(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        struct test_proc p;
        start_signals(&p, &pythons[i]);
        kill(-p.pid, SIGINT);
        char line[128];
        assert_int_equal(test_proc_wait_line(&p, "KeyboardInterrupt", line, sizeof line, 20000), 0);
        int st = test_proc_wait_exit(&p, 20000);
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGINT)
            fail_msg("%s: memsnap should die of SIGINT as python did, status 0x%x",
                     pythons[i].label, st);
        test_proc_kill(&p);
    }
}

/* `kill <memsnap>`: SIGTERM to memsnap alone reaches the command. */
static void test_sigterm_to_memsnap_is_forwarded(void **state)
{
    (void)state;
    struct test_proc p;
    start_signals(&p, &pythons[0]);
    kill(p.pid, SIGTERM);
    int st = test_proc_wait_exit(&p, 20000);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    assert_null(strstr(p.buf, "not interrupted"));
    test_proc_kill(&p);
}

/* memsnap SIGKILLed while the command runs: the command carries on, not stopped, not
 * traced, and still answers signals. */
static void test_memsnap_killed_command_survives(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        struct test_proc p;
        pid_t py = start_signals(&p, &pythons[i]);
        kill(p.pid, SIGKILL);
        int st = test_proc_wait_exit(&p, 20000);
        assert_true(WIFSIGNALED(st));
        usleep(100 * 1000);
        assert_int_equal(kill(py, 0), 0);
        assert_int_equal(test_pid_has_stopped_thread(py), 0);
        assert_int_equal(test_pid_is_traced(py), 0);
        kill(py, SIGINT);
        char line[128];
        assert_int_equal(test_proc_wait_line(&p, "KeyboardInterrupt", line, sizeof line, 20000), 0);
        long long deadline = test_now_ms() + 20000;
        while (process_alive(py) && test_now_ms() < deadline)
            usleep(10 * 1000);
        assert_false(process_alive(py));
        test_proc_kill(&p);
    }
}

static void test_module_and_shebang_forms(void **state)
{
    (void)state;
    char pythonpath[4200];
    snprintf(pythonpath, sizeof pythonpath, "PYTHONPATH=%s", test_py_script(""));
    for (int i = 0; i < n_pythons; i++) {
        /* env is followed to the python it execs. */
        char *mod[] = {"/usr/bin/env", pythonpath,   (char *)pythons[i].path,
                       "-m",           "run_module", "a b",
                       "--rate",       NULL};
        int st = memsnap_run(NULL, mod);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_string_equal(out, "module args=a b,--rate\n");
        assert_null(strstr(err, "not a supported"));
    }
    char *shebang[] = {(char *)test_py_script("run_shebang.py"), NULL};
    int st = memsnap_run(NULL, shebang);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 5);
    assert_string_equal(out, "shebang ok 2000\n");
    assert_null(strstr(err, "not a supported"));

    char *env_shebang[] = {(char *)test_py_script("run_env_shebang.py"), NULL};
    st = memsnap_run(NULL, env_shebang);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "env shebang ok\n");
    assert_null(strstr(err, "not a supported"));
}

static void test_not_python_runs_unprofiled(void **state)
{
    (void)state;
    char *echo[] = {"/bin/echo", "hi", NULL};
    int st = memsnap_run(NULL, echo);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(out, "hi\n");
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "not a supported CPython"));

    char *sh[] = {"/bin/sh", "-c", "echo from sh; exit 4", NULL};
    st = memsnap_run(NULL, sh);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 4);
    assert_string_equal(out, "from sh\n");
    assert_int_equal(count_lines(err), 1);

    char *missing[] = {"memsnap-no-such-command", NULL};
    st = memsnap_run(NULL, missing);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 127);
    assert_non_null(strstr(err, "memsnap-no-such-command"));
}

static void test_usage_errors(void **state)
{
    (void)state;
    char *none[] = {"run", NULL};
    int st = test_run_memsnap(none, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    char *badrate[] = {"run", "--rate", "0", "--", "/bin/true", NULL};
    st = test_run_memsnap(badrate, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_int_equal(count_lines(err), 1);
}

int main(void)
{
    n_pythons = test_pythons(pythons, 16);
    if (n_pythons == 0) {
        printf("SKIP: no CPython installed\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_status_passes_through),
        cmocka_unit_test(test_stdin_stdout_pass_through),
        cmocka_unit_test(test_sigint_is_keyboard_interrupt),
        cmocka_unit_test(test_sigterm_to_memsnap_is_forwarded),
        cmocka_unit_test(test_memsnap_killed_command_survives),
        cmocka_unit_test(test_module_and_shebang_forms),
        cmocka_unit_test(test_not_python_runs_unprofiled),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests_name("run", tests, NULL, NULL);
}
