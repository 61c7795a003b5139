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

/* Where profiles go that a test does not look at; removed when the tests end. */
static const char *scratch_pb(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/memsnap-test-run-%d-scratch.pb", (int)getpid());
    return path;
}

/* memsnap run -o FILE -- cmd...; returns the wait status. Without output, the profile goes
 * to a scratch file that is removed afterwards (tests of the pass-through). */
static int memsnap_run(const char *output, char *const cmd[])
{
    const char *scratch = scratch_pb();
    char *args[48];
    int n = 0;
    args[n++] = "run";
    args[n++] = "-o";
    args[n++] = (char *)(output ? output : scratch);
    args[n++] = "--";
    for (int i = 0; cmd[i] && n < 47; i++)
        args[n++] = cmd[i];
    args[n] = NULL;
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    if (!output)
        unlink(scratch);
    if (st < 0)
        fail_msg("memsnap run %s did not finish (%d)", cmd[0], st);
    return st;
}

/* ---- reading what memsnap wrote ---- */

static struct profile *read_profile(const char *path)
{
    struct profile *p = NULL;
    ms_error e;
    if (profile_read(path, &p, &e) < 0)
        fail_msg("reading %s: %s", path, e.msg);
    return p;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* 1 if the sample's stack passes through file_suffix:line (line 0: any line) or, when
 * func is not NULL, through a function of that name. */
static int sample_passes(const struct profile *p, const struct profile_sample *s,
                         const char *file_suffix, int64_t line, const char *func)
{
    for (uint32_t k = 0; k < s->n_locs; k++) {
        const struct profile_location *loc = &p->locations[p->stack_locs[s->first_loc + k]];
        for (uint32_t j = 0; j < loc->n_lines; j++) {
            const struct profile_line *ln = &p->lines[loc->first_line + j];
            const struct profile_function *f = &p->functions[ln->function];
            if (func && !strcmp(p->strings[f->name], func))
                return 1;
            if (file_suffix && ends_with(p->strings[f->filename], file_suffix) &&
                (!line || ln->line == line))
                return 1;
        }
    }
    return 0;
}

/* Sum of one sample type over the samples that pass through the given place (all samples
 * when file_suffix and func are both NULL). */
static int64_t profile_sum(const struct profile *p, const char *type, const char *file_suffix,
                           int64_t line, const char *func)
{
    int t = profile_find_sample_type(p, type);
    if (t < 0)
        fail_msg("the profile has no %s sample type", type);
    int64_t sum = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        if ((!file_suffix && !func) || sample_passes(p, &p->samples[i], file_suffix, line, func))
            sum += p->values[i * p->n_sample_types + (size_t)t];
    return sum;
}

static const char *profile_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/memsnap-test-run-%d-%s.pb", (int)getpid(), name);
    return path;
}

static void assert_within(const char *what, double got, double want, double tolerance)
{
    double lo = want * (1 - tolerance), hi = want * (1 + tolerance);
    if (got < lo || got > hi)
        fail_msg("%s: %.0f is not within %.0f%% of %.0f", what, got, tolerance * 100, want);
    printf("  %s: %.0f vs %.0f (%+.1f%%)\n", what, got, want, (got / want - 1) * 100);
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
                        "-o",
                        (char *)scratch_pb(),
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
                    "-o",
                    (char *)scratch_pb(),
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

/* Every version: a known 10,000,000 bytes live at the peak from one known line. */
static void test_profile_is_exact(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        const char *pb = profile_path("exact");
        char *cmd[] = {(char *)pythons[i].path, (char *)test_py_script("run_alloc.py"), NULL};
        int st = memsnap_run(pb, cmd);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: status 0x%x, stderr: %s", pythons[i].label, st, err);
        assert_string_equal(out, "kept 10000000\n");
        assert_non_null(strstr(err, "memsnap: wrote"));
        struct profile *p = read_profile(pb);
        assert_int_equal(p->default_sample_type, profile_find_sample_type(p, "peak_space"));
        assert_int_equal(p->period, 1);
        assert_string_equal(p->strings[p->meta.mode], "run");
        int64_t kept = profile_sum(p, "peak_space", "run_alloc.py", 5, NULL);
        int64_t objs = profile_sum(p, "alloc_objects", "run_alloc.py", 5, NULL);
        /* Each bytearray is its buffer (100,000 bytes + 1) plus a small object header. */
        if (kept < 10000000 || kept > 10000000 + 100 * 200)
            fail_msg("%s: peak_space through run_alloc.py:5 is %lld", pythons[i].label,
                     (long long)kept);
        assert_true(objs >= 200);
        assert_true(p->meta.peak_heap >= kept);
        assert_true(p->meta.peak_rss > 10000000);
        assert_true(p->n_timeline > 0);
        profile_free(p);
        unlink(pb);
    }
}

/* Every version: the peak of a stdlib-only start-up (tests/py/run_startup.py) within 5% of
 * tracemalloc's, counted from the same point (the main module's first line: the script clears
 * tracemalloc's traces there when run with -X tracemalloc=1). A run whose ring
 * overflowed (dropped events) is repeated, up to three times. */
static void test_startup_peak_vs_tracemalloc(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        char *tm[] = {(char *)pythons[i].path, "-X", "tracemalloc=1",
                      (char *)test_py_script("run_startup.py"), NULL};
        int st = test_run_capture(tm, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: run_tracemalloc.py: status 0x%x, stderr: %s", pythons[i].label, st, err);
        const char *pk = strstr(out, "peak ");
        assert_non_null(pk);
        long long want = atoll(pk + 5);
        const char *pb = profile_path("startup");
        char *cmd[] = {(char *)pythons[i].path, (char *)test_py_script("run_startup.py"), NULL};
        struct profile *p = NULL;
        for (int attempt = 1; attempt <= 3; attempt++) {
            st = memsnap_run(pb, cmd);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("%s: status 0x%x, stderr: %s", pythons[i].label, st, err);
            assert_string_equal(out, "started 2300\n");
            p = read_profile(pb);
            if (p->meta.dropped_events <= 100)
                break;
            profile_free(p);
            p = NULL;
        }
        if (!p)
            fail_msg("%s: memsnap dropped events in three runs in a row", pythons[i].label);
        printf("  %s:\n", pythons[i].label);
        assert_within("start-up peak vs tracemalloc", (double)p->meta.peak_heap, (double)want,
                      0.05);
        profile_free(p);
        unlink(pb);
    }
}

/* The children of a forking program run normally and none of their allocations reach the
 * parent's profile. */
static void test_fork_children_stay_out(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        const char *pb = profile_path("fork");
        char *cmd[] = {(char *)pythons[i].path, (char *)test_py_script("run_fork.py"), NULL};
        int st = memsnap_run(pb, cmd);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: status 0x%x, stderr: %s", pythons[i].label, st, err);
        assert_string_equal(out, "fork child status 0\npool results [5000, 5000, 5000]\n"
                                 "parent kept 1000\n");
        struct profile *p = read_profile(pb);
        assert_int_equal(profile_sum(p, "alloc_space", NULL, 0, "child_work"), 0);
        assert_int_equal(profile_sum(p, "alloc_space", NULL, 0, "pool_child_work"), 0);
        assert_true(profile_sum(p, "alloc_space", NULL, 0, "parent_work") >= 500 * 1000);
        profile_free(p);
        unlink(pb);
    }
}

/* ---- the Django project ---- */

/* tracemalloc's peak for the Django check with settings importing the `rng` variant,
 * traced from the main module's first line as memsnap's hook is. One frame per trace: the
 * peak does not depend on it, and deep import stacks make 256 frames ~10x slower (32 s
 * here), too slow for make test. */
static long long tracemalloc_peak(const char *rng)
{
    char envvar[64];
    snprintf(envvar, sizeof envvar, "DJPROJECT_RNG=%s", rng);
    char *cmd[] = {"/usr/bin/env",
                   envvar,
                   "/usr/bin/python3",
                   (char *)test_py_script("run_tracemalloc.py"),
                   "--frames",
                   "1",
                   "-:0",
                   (char *)test_py_script("djproject/manage.py"),
                   "check",
                   NULL};
    int st = test_run_capture(cmd, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("run_tracemalloc.py (%s): status 0x%x, stderr: %s", rng, st, err);
    const char *p = strstr(out, "peak ");
    assert_non_null(p);
    return atoll(p + 5);
}

/* memsnap's profile of the Django check. Exact numbers need a run in which the hook's ring
 * never overflowed: on a loaded machine memsnap may fall behind and the hook then drops
 * events (the profile counts them), so a run with more than a handful of drops is repeated,
 * up to three times. */
static struct profile *django_profile(const char *rng, const char *name)
{
    char envvar[64];
    snprintf(envvar, sizeof envvar, "DJPROJECT_RNG=%s", rng);
    char *plain[] = {
        "/usr/bin/env", envvar, "/usr/bin/python3", (char *)test_py_script("djproject/manage.py"),
        "check",        NULL};
    char expected[4096];
    int st = test_run_capture(plain, expected, sizeof expected, err, sizeof err, RUN_TIMEOUT_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    const char *pb = profile_path(name);
    struct profile *p = NULL;
    for (int attempt = 1; attempt <= 3; attempt++) {
        st = memsnap_run(pb, plain);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("manage.py check under memsnap: status 0x%x, stderr: %s", st, err);
        assert_string_equal(out, expected);
        p = read_profile(pb);
        if (p->meta.dropped_events <= 100)
            return p; /* the caller removes pb */
        unlink(pb);
        printf("  %s: %lld events dropped (attempt %d), again\n", rng,
               (long long)p->meta.dropped_events, attempt);
        profile_free(p);
    }
    fail_msg("%s: memsnap dropped events in three runs in a row", rng);
    return NULL;
}

/* Sums, over `memsnap render --format folded` of pb, the values of the stacks that hold a frame
 * named exactly `frame` (NULL: every stack). */
static long long folded_sum(const char *pb, const char *frame)
{
    char txt[300];
    snprintf(txt, sizeof txt, "%s.folded", pb);
    char *sh[] = {"/bin/sh",
                  "-c",
                  "\"$0\" render --format folded \"$1\" > \"$2\"",
                  (char *)test_memsnap(),
                  (char *)pb,
                  txt,
                  NULL};
    int st = test_run_capture(sh, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("memsnap render --format folded %s: status 0x%x, stderr: %s", pb, st, err);
    FILE *f = fopen(txt, "r");
    assert_non_null(f);
    static char line[1 << 16];
    long long sum = 0;
    size_t flen = frame ? strlen(frame) : 0;
    while (fgets(line, sizeof line, f)) {
        char *space = strrchr(line, ' ');
        if (!space)
            continue;
        *space = 0;
        int hit = !frame;
        for (char *s = line; !hit && s; s = strchr(s, ';')) {
            if (*s == ';')
                s++;
            hit = !strncmp(s, frame, flen) && (s[flen] == ';' || s[flen] == 0);
        }
        if (hit)
            sum += atoll(space + 1);
    }
    fclose(f);
    unlink(txt);
    return sum;
}

/* The DESIGN's story: one `from numpy.random import ...` line in a Django project's
 * settings costs ~7 MB at startup; memsnap must show that line and the peak as tracemalloc
 * measures them (tracemalloc started at the same point, the main module's first line). */
static void test_django_numpy_import(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP: Debian's /usr/bin/python3 (with python3-django) is not installed\n");
        return;
    }
    long long tm_numpy = tracemalloc_peak("numpy");
    long long tm_random = tracemalloc_peak("random");
    struct profile *pn = django_profile("numpy", "django-numpy");
    struct profile *pr = django_profile("random", "django-random");
    unlink(profile_path("django-random"));

    /* Every frame is named, short-lived code objects included (a module's top-level code
     * dies when its import ends, long before memsnap drains the ring): the hook announces
     * each code object in the ring while it lives. Then the numpy import is seen as itself:
     * render collapses the import machinery into "import numpy.random"-style frames. */
    const char *pb = profile_path("django-numpy");
    long long total = folded_sum(pb, NULL), unknown = folded_sum(pb, "<unknown>");
    long long numpy = folded_sum(pb, "import numpy");
    long long numpy_random = folded_sum(pb, "import numpy.random");
    unlink(pb);
    printf("  peak bytes under <unknown> frames: %lld of %lld (%.3f%%)\n", unknown, total,
           100.0 * (double)unknown / (double)total);
    if (total <= 0 || unknown * 100 >= total)
        fail_msg("%lld of %lld peak bytes are under <unknown> frames", unknown, total);
    printf("  peak bytes under `import numpy` frames: %lld, `import numpy.random`: %lld\n", numpy,
           numpy_random);
    assert_true(numpy_random > 0);
    /* The program's own peak RSS: the hook's 128 MiB exact-mode ring is not counted. */
    printf("  peak RSS %lld B\n", (long long)pn->meta.peak_rss);
    assert_true(pn->meta.peak_rss > pn->meta.peak_heap);
    assert_true(pn->meta.peak_rss < (100ll << 20));

    /* Tolerances: memsnap and tracemalloc trace the same allocator calls from the same
     * point, but the runs differ (hash seeds, dict resizes, gc timing): a few percent apart
     * run to run. 10% on the peak, 15% on differences and on one line's share. */
    assert_within("peak heap (numpy) vs tracemalloc", (double)pn->meta.peak_heap, (double)tm_numpy,
                  0.10);
    assert_within("peak heap (random) vs tracemalloc", (double)pr->meta.peak_heap,
                  (double)tm_random, 0.10);
    /* The peak_space samples are the breakdown of that peak. */
    assert_within("sum of peak_space vs peak heap",
                  (double)profile_sum(pn, "peak_space", NULL, 0, NULL), (double)pn->meta.peak_heap,
                  0.01);
    /* What the change saves, against tracemalloc's. */
    double tm_saving = (double)(tm_numpy - tm_random);
    assert_within("peak saved by `import random` vs tracemalloc",
                  (double)(pn->meta.peak_heap - pr->meta.peak_heap), tm_saving, 0.15);
    /* The import line carries that cost in memsnap's profile: tracemalloc's attribution of
     * the line (7,315,071 B at the end, measured at 256 frames) is within 4% of its saving
     * (7,069,041 B), so the saving is the reference here. */
    int64_t line = profile_sum(pn, "peak_space", "djproject/rng_numpy.py", 3, NULL);
    assert_within("the numpy.random import line vs tracemalloc's saving", (double)line, tm_saving,
                  0.15);
    /* ... and that line's bytes are the ones under the collapsed `import numpy` frame. */
    assert_within("`import numpy` frames vs the import line", (double)numpy, (double)line, 0.01);
    profile_free(pn);
    profile_free(pr);
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
        cmocka_unit_test(test_profile_is_exact),
        cmocka_unit_test(test_startup_peak_vs_tracemalloc),
        cmocka_unit_test(test_fork_children_stay_out),
        cmocka_unit_test(test_django_numpy_import),
    };
    int failed = cmocka_run_group_tests_name("run", tests, NULL, NULL);
    unlink(scratch_pb());
    return failed;
}
