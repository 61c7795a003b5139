/*
 * test_failclosed.c - memsnap attaching to targets whose objects it cannot read by path, the
 * cases where it used to hijack a thread inside malloc and corrupt the target's heap:
 *   - libc deleted on disk after the target started (a copy loaded through
 *     LD_LIBRARY_PATH, then removed: what `apt upgrade libc6` does to running services);
 *   - that copy replaced by a different ELF file of the same name (renamed over it);
 *   - a chroot built from bind mounts in a private mount namespace, libc loaded from a tmpfs
 *     and the interpreter from a directory that exist only inside it (root only).
 * Every target (tests/py/failclosed_target.py) keeps libc's malloc busy in four threads.
 * Attaches alternate between memsnap as is and memsnap without CAP_SYS_ADMIN and
 * CAP_CHECKPOINT_RESTORE (setpriv), which cannot open /proc/PID/map_files and so must read
 * the objects from the target's memory. Each attach must record or refuse with a sentence;
 * the target must stay alive, never stopped or traced, its data intact, and exit 0 when
 * asked: 0 targets harmed. Each target must also be recorded at least once (a tool that
 * refuses everything would pass the first rule).
 *
 * FAILCLOSED_STRESS=1 (scripts/stress.d/failclosed.sh) raises the attaches per target from
 * 3 to 20.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testproc.h"

#define MAX_PYTHONS 16
#define LIBC        "/lib/x86_64-linux-gnu/libc.so.6"
#define LIBM        "/lib/x86_64-linux-gnu/libm.so.6"
#define SETPRIV     "/usr/bin/setpriv"

static struct test_python pythons[MAX_PYTHONS];
static int n_pythons;

static int rounds(void)
{
    const char *s = getenv("FAILCLOSED_STRESS");
    return s && *s && strcmp(s, "0") != 0 ? 20 : 3;
}

static int setup(void **state)
{
    (void)state;
    n_pythons = test_pythons(pythons, MAX_PYTHONS);
    return 0;
}

/* Debian's python (if any) and the first n - 1 pyenv ones. */
static int pick(const struct test_python **out, int n)
{
    int k = 0;
    for (int i = 0; i < n_pythons && k < n; i++)
        if (pythons[i].debian)
            out[k++] = &pythons[i];
    for (int i = 0; i < n_pythons && k < n; i++)
        if (!pythons[i].debian)
            out[k++] = &pythons[i];
    return k;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[PATH_MAX * 2 + 16];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

struct tally {
    int recorded, refused, harmed;
    long long max_ms;
};

/* One attach; then the target must be running, not stopped, not traced. */
static void attach_once(pid_t pid, int nocap, const char *out, struct tally *t, const char *what)
{
    char pidtxt[16];
    snprintf(pidtxt, sizeof pidtxt, "%d", (int)pid);
    char *ms = (char *)test_memsnap();
    char *plain[] = {ms, "attach", pidtxt, "--duration", "0.2", "-o", (char *)out, "--quiet", NULL};
    char *capless[] = {SETPRIV,
                       "--bounding-set",
                       "-sys_admin,-checkpoint_restore",
                       ms,
                       "attach",
                       pidtxt,
                       "--duration",
                       "0.2",
                       "-o",
                       (char *)out,
                       "--quiet",
                       NULL};
    static char so[4096], se[8192];
    long long t0 = test_now_ms();
    int st = test_run_capture(nocap ? capless : plain, so, sizeof so, se, sizeof se, 30000);
    long long ms_taken = test_now_ms() - t0;
    if (ms_taken > t->max_ms)
        t->max_ms = ms_taken;
    int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (ok) {
        t->recorded++;
    } else {
        t->refused++;
        /* A refusal is a sentence on stderr and an exit status, never a crash of memsnap. */
        if (st < 0 || !WIFEXITED(st) || !se[0] || strstr(se, "crashed")) {
            fprintf(stderr, "%s: attach %s (status 0x%x): %s\n", what,
                    nocap ? "without caps" : "as is", st, se);
            t->harmed++;
        } else if (getenv("FAILCLOSED_VERBOSE")) {
            fprintf(stderr, "%s: refused: %s", what, se);
        }
    }
    int alive = kill(pid, 0) == 0;
    if (!alive || test_pid_has_stopped_thread(pid) || test_pid_is_traced(pid)) {
        fprintf(stderr, "%s: target %s after an attach (%s)\n", what,
                alive ? "left stopped or traced" : "died", se);
        t->harmed++;
    }
}

/* Attaches rounds() times, then asks the target to check its data and quit. */
static void campaign(struct test_proc *p, pid_t pid, const char *what, struct tally *t)
{
    char out[64];
    snprintf(out, sizeof out, "/tmp/memsnap-fc-%d.pb", (int)getpid());
    int n = rounds();
    for (int i = 0; i < n && !t->harmed; i++)
        attach_once(pid, i % 2, out, t, what);
    unlink(out);
    char line[256];
    if (test_proc_send(p, "check\n") < 0 ||
        test_proc_wait_line(p, "check", line, sizeof line, 20000) < 0 ||
        strncmp(line, "check ok", 8) != 0) {
        fprintf(stderr, "%s: the target's check failed: '%s'\n", what, line);
        t->harmed++;
    }
    test_proc_send(p, "quit\n");
    int st = test_proc_wait_exit(p, 20000);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s: the target did not exit 0 (status 0x%x)\n", what, st);
        t->harmed++;
    }
    test_proc_kill(p);
    printf("%s: %d attaches, %d recorded, %d refused, %d harmed, slowest %lld ms\n", what, n,
           t->recorded, t->refused, t->harmed, t->max_ms);
    fflush(stdout);
}

/* mode 0: the libc copy deleted; 1: replaced by another ELF file of the same name. */
static void libc_gone(int mode)
{
    const struct test_python *py[2];
    int n = pick(py, 2);
    if (n == 0) {
        printf("SKIP: no Python installed\n");
        return;
    }
    int harmed = 0;
    for (int i = 0; i < n; i++) {
        char dir[] = "/tmp/memsnap-libcXXXXXX", lib[128], tmp[128];
        assert_non_null(mkdtemp(dir));
        snprintf(lib, sizeof lib, "%s/libc.so.6", dir);
        snprintf(tmp, sizeof tmp, "%s/new", dir);
        copy_file(LIBC, lib);
        setenv("LD_LIBRARY_PATH", dir, 1);
        struct test_proc p;
        char *argv[] = {(char *)py[i]->path, (char *)test_py_script("failclosed_target.py"), "4",
                        NULL};
        assert_int_equal(test_proc_spawn(&p, argv), 0);
        unsetenv("LD_LIBRARY_PATH");
        char line[128];
        assert_int_equal(test_proc_wait_line(&p, "ready", line, sizeof line, 20000), 0);
        /* The target runs on the copy: its maps name it. */
        char maps[64], cmd[256];
        snprintf(maps, sizeof maps, "/proc/%d/maps", (int)p.pid);
        snprintf(cmd, sizeof cmd, "grep -q '%s' %s", lib, maps);
        assert_int_equal(system(cmd), 0);
        if (mode == 0) {
            assert_int_equal(unlink(lib), 0);
        } else {
            copy_file(LIBM, tmp);
            assert_int_equal(rename(tmp, lib), 0);
        }
        char what[96];
        snprintf(what, sizeof what, "%s, libc %s", py[i]->label, mode ? "replaced" : "deleted");
        struct tally t = {0, 0, 0, 0};
        campaign(&p, p.pid, what, &t);
        harmed += t.harmed;
        assert_true(t.recorded >= 1);
        unlink(lib);
        rmdir(dir);
    }
    assert_int_equal(harmed, 0);
}

static void test_libc_deleted(void **state)
{
    (void)state;
    libc_gone(0);
}

static void test_libc_replaced(void **state)
{
    (void)state;
    libc_gone(1);
}

/* The interpreter's installation directory (pyenv's versions/X, or "" for Debian's). */
static void install_dir(const struct test_python *py, char *out, size_t n)
{
    out[0] = 0;
    if (py->debian)
        return;
    snprintf(out, n, "%s", py->path);
    for (int k = 0; k < 2; k++) { /* .../versions/X/bin/python3.Y -> .../versions/X */
        char *s = strrchr(out, '/');
        if (s)
            *s = 0;
    }
}

static void test_chroot(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        printf("SKIP: the chroot test needs root\n");
        return;
    }
    if (access("/usr/bin/unshare", X_OK) != 0 || access("/usr/sbin/chroot", X_OK) != 0) {
        printf("SKIP: the chroot test needs unshare and chroot\n");
        return;
    }
    const struct test_python *py[3];
    int n = pick(py, 3);
    if (n == 0) {
        printf("SKIP: no Python installed\n");
        return;
    }
    char tests_py[PATH_MAX];
    snprintf(tests_py, sizeof tests_py, "%s", test_py_script("failclosed_target.py"));
    *strrchr(tests_py, '/') = 0;
    int harmed = 0;
    for (int i = 0; i < n; i++) {
        char root[] = "/tmp/memsnap-rootXXXXXX";
        assert_non_null(mkdtemp(root));
        char inst[PATH_MAX], exe[PATH_MAX], script[8192];
        install_dir(py[i], inst, sizeof inst);
        if (inst[0])
            snprintf(exe, sizeof exe, "/opt/py%s", py[i]->path + strlen(inst));
        else
            snprintf(exe, sizeof exe, "%s", py[i]->path);
        /* Inside a private mount namespace: /usr bound, the interpreter's tree bound at
         * /opt/py and libc copied to a tmpfs at /privlib, neither of which exists outside. */
        snprintf(script, sizeof script,
                 "set -e; R=%s\n"
                 "mkdir -p $R/usr $R/opt/py $R/tp $R/tmp $R/privlib\n"
                 "ln -s usr/lib $R/lib; ln -s usr/lib64 $R/lib64; ln -s usr/bin $R/bin\n"
                 "mount --bind /usr $R/usr\n"
                 "if [ -n '%s' ]; then mount --bind '%s' $R/opt/py; fi\n"
                 "mount --bind '%s' $R/tp\n"
                 "mount -t tmpfs tmpfs $R/privlib\n"
                 "cp " LIBC " $R/privlib/\n"
                 "exec chroot $R /usr/bin/env LD_LIBRARY_PATH=/privlib:/opt/py/lib '%s' "
                 "/tp/failclosed_target.py 4\n",
                 root, inst, inst, tests_py, exe);
        char *argv[] = {"/usr/bin/unshare", "--mount", "--propagation", "private",
                        "/bin/sh",          "-c",      script,          NULL};
        struct test_proc p;
        assert_int_equal(test_proc_spawn(&p, argv), 0);
        char line[128];
        if (test_proc_wait_line(&p, "ready", line, sizeof line, 20000) < 0) {
            test_proc_kill(&p);
            fail_msg("%s: the chroot'ed target did not start", py[i]->label);
        }
        pid_t pid = (pid_t)atoi(line + 6);
        assert_int_equal(pid, p.pid);
        char what[96];
        snprintf(what, sizeof what, "%s, chroot", py[i]->label);
        struct tally t = {0, 0, 0, 0};
        campaign(&p, pid, what, &t);
        harmed += t.harmed;
        assert_true(t.recorded >= 1);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root); /* the mounts died with the namespace */
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(harmed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libc_deleted),
        cmocka_unit_test(test_libc_replaced),
        cmocka_unit_test(test_chroot),
    };
    return cmocka_run_group_tests_name("failclosed", tests, setup, NULL);
}
