/*
 * test_outputs.c - where `-o` puts the profile, for `attach` and `run`, with real Pythons.
 *
 * A regular file is replaced atomically, but nothing else may be: a character device (a
 * mknod copy of /dev/null and /dev/full in a temp dir, so the machine's own nodes are never
 * at risk), a FIFO with a reader, and "-" are written in place and keep their type; a
 * symlink stays a symlink and its target receives the profile. A directory or a path that
 * cannot be created is refused before anything is touched: the attach target never gets
 * the hook mapped nor a tracer, the run command never starts. A write error (ENOSPC on the
 * /dev/full copy) is one sentence and a non-zero exit. Every profile delivered is decoded and
 * must name the target's pid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "profile.h"
#include "testproc.h"

#define MAX_PY   16
#define READY_MS 20000
#define RUN_MS   60000

static struct test_python pythons[MAX_PY];
static int n_pythons;
static char tmpdir[] = "/tmp/memsnap-outputs-XXXXXX";
static char out[1 << 16], err[1 << 16];
static int have_mknod; /* mknod works here (root, not a nodev mount) */

/* The Pythons tried: the first and the last found (Debian's and the newest pyenv usually). */
static int tried(int i)
{
    return i == 0 || i == n_pythons - 1;
}

static const char *tpath(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static int exit_code(int st)
{
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int has_hook_mapped(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "memsnap_hook") || strstr(line, "memsnap-ring"))
            found = 1;
    fclose(f);
    return found;
}

/* Reads a profile file and checks it is the given process's. */
static void expect_profile_of(const char *path, pid_t pid, const char *label)
{
    struct profile *p = NULL;
    ms_error e;
    if (profile_read(path, &p, &e) < 0)
        fail_msg("%s: the profile delivered to %s does not decode: %s", label, path, e.msg);
    if (p->meta.pid != (int64_t)pid)
        fail_msg("%s: the profile names pid %lld, not %d", label, (long long)p->meta.pid, (int)pid);
    profile_free(p);
}

static void expect_type(const char *path, mode_t type, const char *label)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        fail_msg("%s: %s is gone", label, path);
    if ((st.st_mode & S_IFMT) != type)
        fail_msg("%s: %s changed type (mode %o)", label, path, (unsigned)st.st_mode);
}

/* mknod copies of /dev/null (1:3) and /dev/full (1:7) in tmpdir. */
static void make_devices(void)
{
    unlink(tpath("null"));
    unlink(tpath("full"));
    have_mknod = mknod(tpath("null"), S_IFCHR | 0666, makedev(1, 3)) == 0 &&
                 mknod(tpath("full"), S_IFCHR | 0666, makedev(1, 7)) == 0;
    /* a nodev mount accepts mknod but refuses the open */
    int fd = have_mknod ? open(tpath("null"), O_WRONLY) : -1;
    if (fd < 0)
        have_mknod = 0;
    else
        close(fd);
    if (!have_mknod)
        print_message("SKIP: device outputs need mknod (root, a dev mount) in %s\n", tmpdir);
}

/* Starts a reader that copies the FIFO into `into` and exits at EOF. */
static pid_t fifo_reader(const char *fifo, const char *into)
{
    pid_t r = fork();
    if (r == 0) {
        int in = open(fifo, O_RDONLY);
        int o = open(into, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        char b[65536];
        ssize_t n;
        while (in >= 0 && o >= 0 && (n = read(in, b, sizeof b)) > 0)
            if (write(o, b, (size_t)n) != n)
                _exit(2);
        _exit(in >= 0 && o >= 0 ? 0 : 1);
    }
    return r;
}

static int reader_done(pid_t r)
{
    long long deadline = test_now_ms() + 10000;
    int st;
    while (waitpid(r, &st, WNOHANG) != r) {
        if (test_now_ms() > deadline) {
            kill(r, SIGKILL);
            waitpid(r, &st, 0);
            return -1;
        }
        usleep(5000);
    }
    return exit_code(st);
}

/* --- attach --- */

static void target_start(struct test_proc *p, const struct test_python *py)
{
    char *argv[] = {(char *)py->path, (char *)test_py_script("attach_target.py"), NULL};
    assert_int_equal(test_proc_spawn(p, argv), 0);
    char line[128];
    if (test_proc_wait_line(p, "ready ", line, sizeof line, READY_MS) < 0)
        fail_msg("%s: attach_target.py did not start", py->label);
}

static void target_quit(struct test_proc *p, const char *label)
{
    assert_false(test_pid_has_stopped_thread(p->pid));
    assert_false(test_pid_is_traced(p->pid));
    test_proc_send(p, "quit\n");
    int st = test_proc_wait_exit(p, 10000);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: the target did not exit cleanly (status %d)", label, st);
    test_proc_kill(p);
}

static int attach_to(pid_t pid, const char *duration, const char *output)
{
    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
    char *args[] = {"attach", pidbuf, "--duration",   (char *)duration, "--rate",
                    "65536",  "-o",   (char *)output, "--quiet",        NULL};
    return exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
}

/* Outputs that cannot work are refused at once and the target is never touched: no tracer,
 * no hook mapped, and a 30 s window not waited for. */
static void attach_refusals(const struct test_python *py)
{
    struct test_proc t;
    target_start(&t, py);
    mkdir(tpath("adir"), 0755);
    const char *bad[] = {tpath("adir"), tpath("missing/x.pb"), "/proc/x", "/proc/self/status",
                         tpath("adir/")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long t0 = test_now_ms();
        int rc = attach_to(t.pid, "30", bad[i]);
        long long took = test_now_ms() - t0;
        print_message("    %s: -o %s -> %d in %lld ms: %s", py->label, bad[i], rc, took, err);
        if (rc != 1 || !strstr(err, "nothing was attached") || !strstr(err, bad[i]))
            fail_msg("%s: -o %s was not refused before attaching: %s", py->label, bad[i], err);
        if (strchr(err, '\n') != strrchr(err, '\n'))
            fail_msg("%s: more than one line for -o %s: %s", py->label, bad[i], err);
        assert_true(took < 5000);
        assert_false(has_hook_mapped(t.pid));
        assert_false(test_pid_is_traced(t.pid));
    }
    struct stat st;
    assert_int_equal(stat(tpath("adir"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    target_quit(&t, py->label);
}

static void attach_outputs(const struct test_python *py)
{
    struct test_proc t;
    target_start(&t, py);
    char label[96];

    if (have_mknod) {
        snprintf(label, sizeof label, "%s attach -o null-copy", py->label);
        int rc = attach_to(t.pid, "0.4", tpath("null"));
        if (rc != 0)
            fail_msg("%s: %s", label, err);
        expect_type(tpath("null"), S_IFCHR, label);

        snprintf(label, sizeof label, "%s attach -o full-copy", py->label);
        rc = attach_to(t.pid, "0.4", tpath("full"));
        print_message("    %s -> %d: %s", label, rc, err);
        assert_int_equal(rc, 1);
        assert_non_null(strstr(err, "No space left on device"));
        assert_non_null(strstr(err, "not saved"));
        expect_type(tpath("full"), S_IFCHR, label);
        struct stat st;
        assert_int_equal(stat(tpath("full"), &st), 0);
        assert_int_equal(major(st.st_rdev), 1);
        assert_int_equal(minor(st.st_rdev), 7);
    }

    /* A FIFO with its reader: the whole profile arrives, the FIFO stays a FIFO. */
    snprintf(label, sizeof label, "%s attach -o fifo", py->label);
    unlink(tpath("fifo"));
    assert_int_equal(mkfifo(tpath("fifo"), 0644), 0);
    pid_t r = fifo_reader(tpath("fifo"), tpath("from-fifo.pb"));
    int rc = attach_to(t.pid, "0.4", tpath("fifo"));
    if (rc != 0)
        fail_msg("%s: %s", label, err);
    assert_int_equal(reader_done(r), 0);
    expect_type(tpath("fifo"), S_IFIFO, label);
    expect_profile_of(tpath("from-fifo.pb"), t.pid, label);

    /* A FIFO whose reader comes only after the recording began. */
    snprintf(label, sizeof label, "%s attach -o fifo (late reader)", py->label);
    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)t.pid);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "(sleep 1; cat '%s' > '%s') & exec '%s' attach %d -d 0.3 -q -o '%s'",
             tpath("fifo"), tpath("late.pb"), test_memsnap(), (int)t.pid, tpath("fifo"));
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    rc = exit_code(test_run_capture(sh, out, sizeof out, err, sizeof err, RUN_MS));
    if (rc != 0)
        fail_msg("%s: %s", label, err);
    for (int i = 0; i < 200 && access(tpath("late.pb"), F_OK) != 0; i++)
        usleep(10000);
    usleep(200000); /* cat finishes after memsnap closes the FIFO */
    expect_profile_of(tpath("late.pb"), t.pid, label);

    /* A relative symlink to a file with its own permission bits: the link stays, the file
     * is replaced and keeps its mode. */
    snprintf(label, sizeof label, "%s attach -o symlink", py->label);
    FILE *f = fopen(tpath("real.pb"), "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    chmod(tpath("real.pb"), 0640);
    unlink(tpath("link.pb"));
    assert_int_equal(symlink("real.pb", tpath("link.pb")), 0);
    rc = attach_to(t.pid, "0.4", tpath("link.pb"));
    if (rc != 0)
        fail_msg("%s: %s", label, err);
    expect_type(tpath("link.pb"), S_IFLNK, label);
    expect_profile_of(tpath("real.pb"), t.pid, label);
    struct stat st;
    assert_int_equal(stat(tpath("real.pb"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    /* A dangling symlink: its target is created. */
    snprintf(label, sizeof label, "%s attach -o dangling symlink", py->label);
    unlink(tpath("dangling.pb"));
    unlink(tpath("created.pb"));
    assert_int_equal(symlink("created.pb", tpath("dangling.pb")), 0);
    rc = attach_to(t.pid, "0.4", tpath("dangling.pb"));
    if (rc != 0)
        fail_msg("%s: %s", label, err);
    expect_type(tpath("dangling.pb"), S_IFLNK, label);
    expect_profile_of(tpath("created.pb"), t.pid, label);

    /* "-": the profile on stdout, memsnap's own line on stderr. */
    snprintf(label, sizeof label, "%s attach -o -", py->label);
    snprintf(cmd, sizeof cmd, "exec '%s' attach %d -d 0.4 --rate 65536 -o - > '%s'", test_memsnap(),
             (int)t.pid, tpath("stdout.pb"));
    rc = exit_code(test_run_capture(sh, out, sizeof out, err, sizeof err, RUN_MS));
    if (rc != 0)
        fail_msg("%s: %s", label, err);
    assert_non_null(strstr(err, "wrote standard output"));
    expect_profile_of(tpath("stdout.pb"), t.pid, label);

    /* /dev/stdout into a pipe: a /proc magic link to "pipe:[N]", written in place. */
    snprintf(label, sizeof label, "%s attach -o /dev/stdout | cat", py->label);
    snprintf(cmd, sizeof cmd, "'%s' attach %d -d 0.4 --rate 65536 -o /dev/stdout | cat > '%s'",
             test_memsnap(), (int)t.pid, tpath("piped.pb"));
    rc = exit_code(test_run_capture(sh, out, sizeof out, err, sizeof err, RUN_MS));
    if (rc != 0)
        fail_msg("%s: %s", label, err);
    expect_profile_of(tpath("piped.pb"), t.pid, label);

    /* Several pids and a stream: refused as a usage error, before attaching. */
    char *two[] = {"attach", pidbuf, "1", "-o", "-", NULL};
    rc = exit_code(test_run_memsnap(two, out, sizeof out, err, sizeof err, RUN_MS));
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "one pid"));
    target_quit(&t, py->label);
}

static void test_attach_outputs(void **state)
{
    (void)state;
    make_devices();
    for (int i = 0; i < n_pythons; i++)
        if (tried(i)) {
            attach_refusals(&pythons[i]);
            attach_outputs(&pythons[i]);
        }
}

/* --- run --- */

/* memsnap run -o OUTPUT -- python -c (touch marker; allocate); the exit code. */
static int run_to(const struct test_python *py, const char *output, const char *marker)
{
    char code[1024];
    snprintf(code, sizeof code,
             "open('%s', 'w').close()\nx = [str(i) * 20 for i in range(100000)]\n", marker);
    char *args[] = {"run", "--rate",         "65536", "-o", (char *)output,
                    "--",  (char *)py->path, "-c",    code, NULL};
    return exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
}

/* The pid run's profile names: run's child, which only the profile itself tells. */
static void expect_run_profile(const char *path, const char *label)
{
    struct profile *p = NULL;
    ms_error e;
    if (profile_read(path, &p, &e) < 0)
        fail_msg("%s: the profile delivered to %s does not decode: %s", label, path, e.msg);
    assert_true(p->meta.pid > 0);
    assert_true(p->n_samples > 0);
    profile_free(p);
}

static void test_run_outputs(void **state)
{
    (void)state;
    make_devices();
    for (int i = 0; i < n_pythons; i++) {
        if (!tried(i))
            continue;
        const struct test_python *py = &pythons[i];
        const char *marker = tpath("started");
        char label[96];
        /* Refused: the command never starts. */
        mkdir(tpath("adir"), 0755);
        const char *bad[] = {tpath("adir"), tpath("missing/x.pb"), "/proc/x"};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            unlink(marker);
            int rc = run_to(py, bad[k], marker);
            print_message("    %s: run -o %s -> %d: %s", py->label, bad[k], rc, err);
            assert_int_equal(rc, 1);
            assert_non_null(strstr(err, "was not started"));
            assert_int_equal(access(marker, F_OK), -1);
        }
        if (have_mknod) {
            snprintf(label, sizeof label, "%s run -o null-copy", py->label);
            unlink(marker);
            int rc = run_to(py, tpath("null"), marker);
            if (rc != 0)
                fail_msg("%s: %s", label, err);
            expect_type(tpath("null"), S_IFCHR, label);
            snprintf(label, sizeof label, "%s run -o full-copy", py->label);
            rc = run_to(py, tpath("full"), marker);
            print_message("    %s -> %d: %s", label, rc, err);
            assert_int_equal(rc, 1); /* the command succeeded, the profile was lost */
            assert_non_null(strstr(err, "No space left on device"));
            expect_type(tpath("full"), S_IFCHR, label);
        }
        snprintf(label, sizeof label, "%s run -o fifo", py->label);
        unlink(tpath("fifo"));
        assert_int_equal(mkfifo(tpath("fifo"), 0644), 0);
        pid_t r = fifo_reader(tpath("fifo"), tpath("run-fifo.pb"));
        int rc = run_to(py, tpath("fifo"), marker);
        if (rc != 0)
            fail_msg("%s: %s", label, err);
        assert_int_equal(reader_done(r), 0);
        expect_type(tpath("fifo"), S_IFIFO, label);
        expect_run_profile(tpath("run-fifo.pb"), label);

        snprintf(label, sizeof label, "%s run -o symlink", py->label);
        unlink(tpath("run-link.pb"));
        unlink(tpath("run-real.pb"));
        assert_int_equal(symlink(tpath("run-real.pb"), tpath("run-link.pb")), 0);
        rc = run_to(py, tpath("run-link.pb"), marker);
        if (rc != 0)
            fail_msg("%s: %s", label, err);
        expect_type(tpath("run-link.pb"), S_IFLNK, label);
        expect_run_profile(tpath("run-real.pb"), label);

        snprintf(label, sizeof label, "%s run -o -", py->label);
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "exec '%s' run --rate 65536 -o - -- '%s' -c 'x = [str(i) * 20 for i in "
                 "range(100000)]' > '%s'",
                 test_memsnap(), py->path, tpath("run-stdout.pb"));
        char *sh[] = {"/bin/sh", "-c", cmd, NULL};
        rc = exit_code(test_run_capture(sh, out, sizeof out, err, sizeof err, RUN_MS));
        if (rc != 0)
            fail_msg("%s: %s", label, err);
        expect_run_profile(tpath("run-stdout.pb"), label);
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
        cmocka_unit_test(test_attach_outputs),
        cmocka_unit_test(test_run_outputs),
    };
    return cmocka_run_group_tests_name("outputs", tests, setup, teardown);
}
