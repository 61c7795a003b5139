/*
 * test_inject.c - the injector against live CPython processes of every installed version:
 * libprobe.so (tests/support/probe_lib.c) is injected into tests/py/inject_target.py, whose
 * threads sit in time.sleep, accept, select, a pipe read, Event.wait and a compute loop, and
 * which afterwards reports whether any of them noticed anything (an exception, a shortened or
 * lengthened sleep). Also: every thread kind hijacked directly, the loaded copy reused,
 * never left stopped or traced, gdb still attaching afterwards (the library is an unlinked
 * /dev/shm file, not a memfd), refusals of bad targets, memsnap SIGKILLed at random instants
 * in the middle of injections, and threads hammering malloc.
 *
 * INJECT_STRESS=1 (scripts/stress.d/inject.sh) raises the SIGKILL and malloc-hammer rounds
 * from 15 to 100.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "elf_symbols.h"
#include "inject_lib.h"
#include "proc_maps.h"
#include "remote.h"
#include "testproc.h"

#define READY_TIMEOUT_MS 20000
#define DONE_TIMEOUT_MS  30000
#define MAX_PYTHONS      16

/* Mirrors struct probe_arg in tests/support/probe_lib.c. */
struct probe_arg {
    uint64_t magic;
    int32_t write_fd;
    int32_t reserved;
    char text[64];
};

static struct test_python pythons[MAX_PYTHONS];
static int n_pythons;
static char *probe_image;
static size_t probe_len;
static uint64_t probe_runs_value; /* link-time address of probe_runs */
static uint64_t probe_first_vaddr;

static const char *thread_names[] = {"sleep", "accept", "select", "read", "event", "compute"};
#define N_THREAD_NAMES (sizeof thread_names / sizeof thread_names[0])

struct target {
    struct test_proc proc;
    const struct test_python *py;
    pid_t tids[N_THREAD_NAMES];
    int injections; /* successful start calls so far */
};

static int stress_rounds(void)
{
    const char *s = getenv("INJECT_STRESS");
    return s && *s && strcmp(s, "0") != 0 ? 100 : 15;
}

static int load_probe(void **state)
{
    (void)state;
    n_pythons = test_pythons(pythons, MAX_PYTHONS);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", test_memsnap());
    char *slash = strrchr(path, '/');
    if (!slash)
        return -1;
    snprintf(slash, sizeof path - (size_t)(slash - path), "/tests/libprobe.so");
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (make builds it)\n", path);
        return -1;
    }
    probe_image = malloc(1 << 22);
    probe_len = fread(probe_image, 1, 1 << 22, f);
    fclose(f);
    struct elf_image *img;
    struct elf_symbol sym;
    uint64_t off;
    ms_error err;
    if (elf_image_open(path, &img, &err) < 0 ||
        elf_image_find_symbol(img, "probe_runs", &sym, &err) < 0 ||
        elf_image_first_load(img, &probe_first_vaddr, &off, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    probe_runs_value = sym.value;
    elf_image_close(img);
    return 0;
}

static int free_probe(void **state)
{
    (void)state;
    free(probe_image);
    return 0;
}

static void target_start(struct target *t, const struct test_python *py, int hammer)
{
    memset(t, 0, sizeof *t);
    t->py = py;
    char *argv[] = {(char *)py->path, (char *)test_py_script("inject_target.py"),
                    hammer ? "hammer" : NULL, NULL};
    setenv("INJECT_TARGET_SLEEP", "6.0", 1);
    /* 10 ms is the goal and what an idle machine shows; the shared 2-CPU test machine delays
     * wake-ups by tens of ms through scheduling and the GIL alone, so make test allows 50. */
    setenv("INJECT_TARGET_SLACK", hammer ? "0.5" : "0.050", 1);
    assert_int_equal(test_proc_spawn(&t->proc, argv), 0);
}

static void target_wait_ready(struct target *t)
{
    char line[1024];
    if (test_proc_wait_line(&t->proc, "ready ", line, sizeof line, READY_TIMEOUT_MS) < 0)
        fail_msg("%s: inject_target.py did not start", t->py->label);
    for (size_t i = 0; i < N_THREAD_NAMES; i++) {
        char key[32];
        snprintf(key, sizeof key, " %s=", thread_names[i]);
        const char *at = strstr(line, key);
        assert_non_null(at);
        t->tids[i] = (pid_t)atoi(at + strlen(key));
        assert_true(t->tids[i] > 0);
    }
}

/* Sends "go", collects the target's reports until "done", and fails on any "bad" report,
 * a missing report, or a non-zero exit. */
static void target_finish(struct target *t)
{
    char line[512], report[8192] = "";
    size_t used = 0;
    assert_int_equal(test_proc_send(&t->proc, "go\n"), 0);
    for (;;) {
        if (test_proc_wait_line(&t->proc, "", line, sizeof line, DONE_TIMEOUT_MS) < 0)
            fail_msg("%s: target did not finish; reports so far:\n%s", t->py->label, report);
        if (strcmp(line, "done") == 0)
            break;
        if (strncmp(line, "probe ", 6) == 0)
            continue;
        used += (size_t)snprintf(report + used, sizeof report - used, "%s\n", line);
        if (used >= sizeof report)
            used = sizeof report - 1;
    }
    if (strstr(report, "bad ") == report || strstr(report, "\nbad "))
        fail_msg("%s: the target noticed the injections:\n%s", t->py->label, report);
    for (size_t i = 0; i < N_THREAD_NAMES; i++) {
        char want[32];
        snprintf(want, sizeof want, "ok %s", thread_names[i]);
        if (!strstr(report, want))
            fail_msg("%s: no '%s' report:\n%s", t->py->label, want, report);
    }
    int st = test_proc_wait_exit(&t->proc, 10000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    test_proc_kill(&t->proc);
}

static void assert_untouched(const struct target *t, const char *when)
{
    if (test_pid_has_stopped_thread(t->proc.pid))
        fail_msg("%s: a thread was left stopped %s", t->py->label, when);
    if (test_pid_is_traced(t->proc.pid))
        fail_msg("%s: the process was left traced %s", t->py->label, when);
}

/* 1 if a mapping path is a loaded libprobe.so: an unlinked
 * "/dev/shm/libprobe-<injector pid>-<16 hex>.so" (or /tmp, or an older version's
 * "libprobe-<16 hex>.so"), or the last resort "/memfd:libprobe.so". */
static int is_probe_path(const char *path)
{
    if (strcmp(path, "/memfd:libprobe.so") == 0)
        return 1;
    const char *base = strrchr(path, '/');
    if (!base || strncmp(base, "/libprobe-", 10) != 0)
        return 0;
    const char *h = base + 10;
    size_t digits = strspn(h, "0123456789");
    if (digits && h[digits] == '-')
        h += digits + 1;
    return strspn(h, "0123456789abcdef") == 16 && strcmp(h + 16, ".so") == 0;
}

/* Mappings of libprobe.so's first page in pid: one per loaded copy. */
static int probe_copies(pid_t pid, uint64_t *base)
{
    struct proc_maps maps;
    ms_error err;
    if (proc_maps_read(pid, &maps, &err) < 0)
        return -1;
    int n = 0;
    for (size_t i = 0; i < maps.count; i++)
        if (is_probe_path(maps.maps[i].path) && maps.maps[i].offset == 0) {
            n++;
            if (base)
                *base = maps.maps[i].start;
        }
    proc_maps_free(&maps);
    return n;
}

static int inject_probe(struct target *t, pid_t tid, uint64_t magic, struct inject_result *res,
                        ms_error *err)
{
    struct probe_arg a = {.magic = magic, .write_fd = 1};
    snprintf(a.text, sizeof a.text, "probe %llx\n", (unsigned long long)magic);
    return inject_library_on_thread(t->proc.pid, tid, probe_image, probe_len, "probe_start", &a,
                                    sizeof a, res, err);
}

/* One injection that must succeed and prove, through its return value and its line on the
 * target's stdout, that probe_start ran once with our argument. */
static void inject_ok(struct target *t, pid_t tid, const char *what)
{
    struct inject_result res;
    ms_error err = {""};
    uint64_t magic = 0x510000 + (uint64_t)t->injections * 16 + (uint64_t)(tid & 15);
    if (inject_probe(t, tid, magic, &res, &err) < 0)
        fail_msg("%s: injecting (%s) failed: %s", t->py->label, what, err.msg);
    t->injections++;
    if (getenv("INJECT_VERBOSE"))
        print_message("%s %s: wall %.2f ms, stopped %.2f ms, safepoint %.2f ms\n", t->py->label,
                      what, res.wall_ns / 1e6, res.stopped_ns / 1e6, res.safepoint_ns / 1e6);
    assert_int_equal(res.start_result, (int)(magic & 0xffffff) + t->injections);
    assert_int_equal(res.reused, t->injections > 1);
    if (tid)
        assert_int_equal(res.tid, tid);
    char want[64], line[256];
    snprintf(want, sizeof want, "probe %llx", (unsigned long long)magic);
    if (test_proc_wait_line(&t->proc, want, line, sizeof line, 5000) < 0)
        fail_msg("%s: probe line '%s' not seen (%s)", t->py->label, want, what);
    assert_untouched(t, what);
}

/* Every thread kind hijacked in turn, plus inject_library's own choice of thread, in every
 * installed python at once (the targets run concurrently to keep the test short). */
static void test_inject_every_thread_kind(void **state)
{
    (void)state;
    struct target *ts = calloc((size_t)n_pythons, sizeof *ts);
    for (int i = 0; i < n_pythons; i++)
        target_start(&ts[i], &pythons[i], 0);
    for (int i = 0; i < n_pythons; i++)
        target_wait_ready(&ts[i]);
    for (int i = 0; i < n_pythons; i++) {
        struct target *t = &ts[i];
        inject_ok(t, 0, "first, thread chosen by inject_library");
        assert_int_equal(probe_copies(t->proc.pid, NULL), 1);
        for (size_t k = 0; k < N_THREAD_NAMES; k++)
            inject_ok(t, t->tids[k], thread_names[k]);
        inject_ok(t, 0, "last, thread chosen by inject_library");
        uint64_t base = 0;
        assert_int_equal(probe_copies(t->proc.pid, &base), 1);
        int runs = 0;
        ms_error err;
        uint64_t at = base + probe_runs_value - (probe_first_vaddr & ~(uint64_t)4095);
        assert_int_equal(remote_read(t->proc.pid, at, &runs, sizeof runs, &err), 0);
        assert_int_equal(runs, t->injections);
    }
    for (int i = 0; i < n_pythons; i++)
        target_finish(&ts[i]);
    free(ts);
}

/* The path of libprobe.so's first mapping in pid (empty if none). */
static void probe_path(pid_t pid, char *out, size_t n)
{
    struct proc_maps maps;
    ms_error err;
    out[0] = 0;
    if (proc_maps_read(pid, &maps, &err) < 0)
        return;
    for (size_t i = 0; i < maps.count; i++)
        if (is_probe_path(maps.maps[i].path) && maps.maps[i].offset == 0) {
            snprintf(out, n, "%s", maps.maps[i].path);
            break;
        }
    proc_maps_free(&maps);
}

/* gdb's absolute path from PATH, or 0 when it is not installed. */
static int find_gdb(char *out, size_t n)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/gdb", d);
        if (access(out, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* A file in /dev/shm named like an image file of libprobe.so ("<hex>" as an older memsnap
 * named them, "<pid>-<hex>" as memsnap does now), with its mtime age_s ago. */
static void plant_image_file(char *path, size_t n, const char *hex, int age_s)
{
    snprintf(path, n, "/dev/shm/libprobe-%s.so", hex);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a library", f);
    fclose(f);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age_s;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* gdb 13 hangs attaching to a process that maps a "/memfd:..." library and holds a pipe (it
 * reads an ELF header from every descriptor): the library must come from an unlinked file of
 * /dev/shm instead. For Debian's python and one pyenv one, whose inject_target.py holds pipes
 * (its stdin, the "read" thread's pipe): inject, then gdb must attach, list the library and
 * detach within 20 s; our image file is gone from /dev/shm. Planted files: an older
 * version's (unlocked, no pid in the name) is removed 2 minutes old and kept when fresh (a
 * concurrent run's); a current one's is removed at once when nobody holds its flock (its
 * memsnap died) and kept, however old, while a live memsnap (here: this test) holds it. */
static void test_gdb_attaches_after_injection(void **state)
{
    (void)state;
    char gdb[PATH_MAX];
    if (!find_gdb(gdb, sizeof gdb)) {
        print_message("SKIP: gdb is not installed\n");
        return;
    }
    const struct test_python *chosen[2] = {NULL, NULL};
    for (int i = 0; i < n_pythons; i++) {
        if (pythons[i].debian && !chosen[0])
            chosen[0] = &pythons[i];
        if (!pythons[i].debian && !chosen[1])
            chosen[1] = &pythons[i];
    }
    for (int k = 0; k < 2; k++) {
        const struct test_python *py = chosen[k];
        if (!py)
            continue;
        char stale[PATH_MAX], fresh[PATH_MAX], dead[PATH_MAX], live[PATH_MAX];
        plant_image_file(stale, sizeof stale, "00000000deadbeef", 120);
        plant_image_file(fresh, sizeof fresh, "00000000feedf00d", 0);
        plant_image_file(dead, sizeof dead, "999999-00000000deadf00d", 0);
        plant_image_file(live, sizeof live, "999999-00000000beeff00d", 120);
        int live_fd = open(live, O_RDONLY | O_CLOEXEC);
        assert_true(live_fd >= 0);
        assert_int_equal(flock(live_fd, LOCK_EX | LOCK_NB), 0);
        struct target t;
        memset(&t, 0, sizeof t);
        t.py = py;
        char *targv[] = {(char *)py->path, (char *)test_py_script("inject_target.py"), NULL};
        /* gdb's attach stops every thread for a while, which lengthens the sleep thread's
         * sleep: here only gdb's stop, not the injection, may show there. */
        setenv("INJECT_TARGET_SLEEP", "2.0", 1);
        setenv("INJECT_TARGET_SLACK", "5.0", 1);
        assert_int_equal(test_proc_spawn(&t.proc, targv), 0);
        target_wait_ready(&t);
        inject_ok(&t, 0, "before gdb");
        char mapped[PATH_MAX];
        probe_path(t.proc.pid, mapped, sizeof mapped);
        if (strncmp(mapped, "/dev/shm/libprobe-", 18) != 0)
            fail_msg("%s: the probe is mapped as '%s', not from /dev/shm", py->label, mapped);
        int stale_gone = access(stale, F_OK) != 0, fresh_kept = access(fresh, F_OK) == 0;
        int dead_gone = access(dead, F_OK) != 0, live_kept = access(live, F_OK) == 0;
        unlink(fresh);
        unlink(stale);
        unlink(dead);
        unlink(live);
        close(live_fd);
        if (access(mapped, F_OK) == 0)
            fail_msg("%s: %s was left in /dev/shm", py->label, mapped);
        assert_true(stale_gone);
        assert_true(fresh_kept);
        assert_true(dead_gone);
        assert_true(live_kept);

        char pid[16], out[16384], err[4096];
        snprintf(pid, sizeof pid, "%d", (int)t.proc.pid);
        char *argv[] = {gdb,
                        "-nx",
                        "-batch",
                        "-iex",
                        "set debuginfod enabled off",
                        "-p",
                        pid,
                        "-ex",
                        "info sharedlibrary",
                        "-ex",
                        "detach",
                        NULL};
        long long t0 = test_now_ms();
        int st = test_run_capture(argv, out, sizeof out, err, sizeof err, 20000);
        if (st == -2)
            fail_msg("%s: gdb hung attaching after the injection (killed after 20 s)", py->label);
        assert_true(st >= 0);
        if (!strstr(out, mapped + 9))
            fail_msg("%s: gdb (%.1f s) did not list %s:\n%s\n%s", py->label,
                     (test_now_ms() - t0) / 1e3, mapped, out, err);
        assert_untouched(&t, "after gdb");
        inject_ok(&t, 0, "after gdb, reusing the copy");
        target_finish(&t);
    }
}

static void expect_refusal(pid_t pid, const char *needle)
{
    struct inject_result res;
    ms_error err = {""};
    struct probe_arg a = {.magic = 1, .write_fd = -1};
    int rc = inject_library(pid, probe_image, probe_len, "probe_start", &a, sizeof a, &res, &err);
    assert_int_equal(rc, -1);
    if (!strstr(err.msg, needle))
        fail_msg("pid %d: expected an error containing '%s', got '%s'", (int)pid, needle, err.msg);
    assert_null(strchr(err.msg, '\n'));
}

static void test_refuses_bad_targets(void **state)
{
    (void)state;
    expect_refusal(0, "not a process id");
    expect_refusal(-3, "not a process id");
    expect_refusal(0x3ffffff0, "no process with pid");

    struct target t;
    target_start(&t, &pythons[0], 0);
    target_wait_ready(&t);
    expect_refusal(t.tids[0], "is a thread of process");

    /* Stopped by job control: refused, and left stopped exactly as it was. */
    kill(t.proc.pid, SIGSTOP);
    for (int i = 0; i < 200 && !test_pid_has_stopped_thread(t.proc.pid); i++)
        usleep(5000);
    expect_refusal(t.proc.pid, "is stopped (Ctrl-Z?)");
    assert_int_equal(test_pid_is_traced(t.proc.pid), 0);
    kill(t.proc.pid, SIGCONT);

    /* Traced by someone else (a small ptrace holder standing in for gdb). */
    pid_t holder = fork();
    if (holder == 0) {
        if (ptrace(PTRACE_SEIZE, t.proc.pid, 0, 0) < 0)
            _exit(1);
        pause();
        _exit(0);
    }
    for (int i = 0; i < 400 && !test_pid_is_traced(t.proc.pid); i++)
        usleep(5000);
    assert_int_equal(test_pid_is_traced(t.proc.pid), 1);
    char needle[64];
    snprintf(needle, sizeof needle, "already being traced by pid %d", (int)holder);
    expect_refusal(t.proc.pid, needle);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    for (int i = 0; i < 200 && test_pid_is_traced(t.proc.pid); i++)
        usleep(5000);
    assert_int_equal(probe_copies(t.proc.pid, NULL), 0);
    /* Untouched: a later injection works and the target noticed nothing. */
    inject_ok(&t, 0, "after the refusals");
    target_finish(&t);
}

static long long rand_between(long long lo, long long hi)
{
    return lo + (long long)(random() % (hi - lo + 1));
}

/* The libprobe image files now in /dev/shm and /tmp, as one string of "dir/name\n" lines. */
static void image_files_list(char *out, size_t n)
{
    static const char *const dirs[] = {"/dev/shm", "/tmp"};
    size_t used = 0;
    out[0] = 0;
    for (size_t k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dirs[k], de->d_name);
            if (is_probe_path(path) && used + strlen(path) + 2 < n)
                used += (size_t)snprintf(out + used, n - used, "%s\n", path);
        }
        if (d)
            closedir(d);
    }
}

/* Removes the image files listed in after but not in before (a killed injector's, which the
 * next injection would only remove after a minute); returns how many. */
static int image_files_remove_new(const char *before, const char *after)
{
    int n = 0;
    char line[PATH_MAX + 2];
    for (const char *p = after; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (l < sizeof line - 1) {
            memcpy(line, p, l);
            line[l] = '\n';
            line[l + 1] = 0;
            if (!strstr(before, line)) {
                line[l] = 0;
                n += unlink(line) == 0;
            }
        }
        p += l + (nl ? 1 : 0);
    }
    return n;
}

/* memsnap SIGKILLed at random instants of an injection: the kernel detaches the thread and
 * the self-restoring stub must bring it back on its own. */
static void test_survives_sigkill_mid_injection(void **state)
{
    (void)state;
    int rounds = stress_rounds();
    srandom((unsigned)time(NULL));
    for (int p = 0; p < n_pythons && p < 2; p++) {
        struct target t;
        target_start(&t, &pythons[p], 0);
        target_wait_ready(&t);
        int completed = 0, leftovers = 0;
        for (int r = 0; r < rounds; r++) {
            /* A parent cannot be killed by its own test, so the injector runs in a child. */
            long long delay_us = rand_between(0, 8000);
            char before[8192], after[8192];
            image_files_list(before, sizeof before);
            pid_t child = fork();
            if (child == 0) {
                struct inject_result res;
                ms_error err;
                struct probe_arg a = {.magic = 7, .write_fd = -1};
                int rc = inject_library(t.proc.pid, probe_image, probe_len, "probe_start", &a,
                                        sizeof a, &res, &err);
                _exit(rc == 0 ? 0 : 3);
            }
            usleep((useconds_t)delay_us);
            kill(child, SIGKILL);
            int st;
            waitpid(child, &st, 0);
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                completed++;
            /* A run killed between writing its image file and unlinking it leaves one. */
            image_files_list(after, sizeof after);
            leftovers += image_files_remove_new(before, after);
            /* The kernel detaches a dead tracer's tracees at once. */
            int stuck = 1;
            for (int i = 0; i < 100 && (stuck = test_pid_has_stopped_thread(t.proc.pid)); i++)
                usleep(2000);
            if (stuck)
                fail_msg("%s: left stopped after SIGKILL at %lld us", t.py->label, delay_us);
            assert_int_equal(kill(t.proc.pid, 0), 0);
        }
        print_message("%s: %d of %d killed injections had completed, %d left an image file\n",
                      t.py->label, completed, rounds, leftovers);
        assert_true(leftovers <= rounds - completed);
        usleep(20000);
        /* A later injection works; the count of earlier runs is unknown, so check directly. */
        struct inject_result res;
        ms_error err = {""};
        if (inject_probe(&t, 0, 0x777, &res, &err) < 0)
            fail_msg("%s: injection after the kills failed: %s", t.py->label, err.msg);
        assert_true(res.start_result > 0x777);
        assert_true(probe_copies(t.proc.pid, NULL) <= 1);
        assert_untouched(&t, "after the kills");
        target_finish(&t);
    }
}

/* Threads hammering malloc (Python objects and libc malloc via ctypes): a thread chosen inside
 * malloc would deadlock the injected dlopen; every injection must succeed promptly. */
static void test_malloc_hammer_never_deadlocks(void **state)
{
    (void)state;
    int rounds = stress_rounds();
    for (int p = 0; p < n_pythons && p < 2; p++) {
        struct target t;
        target_start(&t, &pythons[p], 1);
        target_wait_ready(&t);
        int refused = 0;
        long long worst = 0;
        for (int r = 0; r < rounds; r++) {
            struct inject_result res;
            ms_error err = {""};
            struct probe_arg a = {.magic = 9, .write_fd = -1};
            if (inject_library(t.proc.pid, probe_image, probe_len, "probe_start", &a, sizeof a,
                               &res, &err) < 0)
                fail_msg("%s: injection %d under malloc load failed: %s", t.py->label, r, err.msg);
            assert_int_equal(res.start_result, 9 + r + 1);
            refused += res.candidates_refused;
            if (res.wall_ns > worst)
                worst = res.wall_ns;
            assert_untouched(&t, "under malloc load");
        }
        print_message("%s: %d injections under malloc load, %d candidate threads refused, "
                      "slowest %.1f ms\n",
                      t.py->label, rounds, refused, worst / 1e6);
        target_finish(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inject_every_thread_kind),
        cmocka_unit_test(test_gdb_attaches_after_injection),
        cmocka_unit_test(test_refuses_bad_targets),
        cmocka_unit_test(test_survives_sigkill_mid_injection),
        cmocka_unit_test(test_malloc_hammer_never_deadlocks),
    };
    return cmocka_run_group_tests_name("inject", tests, load_probe, free_probe);
}
