/*
 * test_attach.c - `memsnap attach` against real CPython processes of every installed version
 * (tests/py/attach_target.py), asserting on the profile written and on what the target saw.
 *
 *   - profile: hot() allocates 10x the bytes of cold(): alloc_space(hot)/alloc_space(cold)
 *     within 15% of 10; leak() tops inuse_space; meta, timeline and labels are filled. All
 *     versions are recorded by one memsnap at once (several pids, -o naming).
 *   - the target unharmed: its blocking threads (sleep, accept, select, pipe read,
 *     Event.wait) saw no error and no short sleep, leaked data intact, output unchanged,
 *     never stopped or traced, exits normally.
 *   - SIGKILL of memsnap at random instants (including mid-injection): the target is never
 *     left stopped, its hook stops within 2 s (its ring mapping disappears), no copy of the
 *     library is left in its /dev/shm or /tmp (targets run with private ones, as root), a new
 *     attach works.
 *   - attach/detach cycles keep the target's RSS flat.
 *   - SIGINT ends an open-ended recording cleanly; a target exiting mid-window still gets
 *     its profile; bad input (usage, missing/non-Python/stopped process, a second memsnap)
 *     is one clear sentence and the right exit status, with the target untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "profile.h"
#include "testproc.h"
#include "timeline.h"

#define MAX_PY   16
#define READY_MS 20000
#define RUN_MS   60000

static struct test_python pythons[MAX_PY];
static int n_pythons;
static char tmpdir[] = "/tmp/memsnap-attach-XXXXXX";
static char out[1 << 16], err[1 << 16];

/* --- the target --- */

/* Native tid of each target's worker thread, by pid (the thread label memsnap must give). */
static struct {
    pid_t pid;
    long worker;
} workers[64];
static int n_workers;

static void target_start(struct test_proc *p, const struct test_python *py)
{
    char *argv[] = {(char *)py->path, (char *)test_py_script("attach_target.py"), NULL};
    assert_int_equal(test_proc_spawn(p, argv), 0);
    char line[128];
    if (test_proc_wait_line(p, "ready ", line, sizeof line, READY_MS) < 0)
        fail_msg("%s: attach_target.py did not start", py->label);
    const char *w = strstr(line, "worker=");
    assert_non_null(w);
    workers[n_workers % 64].pid = p->pid;
    workers[n_workers % 64].worker = strtol(w + 7, NULL, 10);
    n_workers++;
}

/* The same target in a mount namespace of its own with private, empty tmpfs /dev/shm and
 * /tmp, so that what is left in them can only be this test's memsnap's (this machine runs
 * other memsnaps, whose transient files would look like leftovers). Needs root and
 * unshare(1); else starts a normal target and returns 0. 1 if isolated. The script runs as a
 * copy in the private /dev/shm: the clone itself may live under /tmp, which the mount hides. */
static int target_start_isolated(struct test_proc *p, const struct test_python *py)
{
    if (getuid() != 0 || access("/usr/bin/unshare", X_OK) != 0) {
        target_start(p, py);
        return 0;
    }
    char *argv[] = {"/usr/bin/unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "/bin/sh",
                    "-c",
                    "mount -t tmpfs -o mode=1777 none /dev/shm && "
                    "cp \"$1\" /dev/shm/attach_target.py && "
                    "mount -t tmpfs -o mode=1777 none /tmp && "
                    "exec \"$0\" /dev/shm/attach_target.py",
                    (char *)py->path,
                    (char *)test_py_script("attach_target.py"),
                    NULL};
    assert_int_equal(test_proc_spawn(p, argv), 0);
    char line[128];
    if (test_proc_wait_line(p, "ready ", line, sizeof line, READY_MS) < 0)
        fail_msg("%s: attach_target.py did not start in its own mount namespace", py->label);
    const char *w = strstr(line, "worker=");
    assert_non_null(w);
    workers[n_workers % 64].pid = p->pid;
    workers[n_workers % 64].worker = strtol(w + 7, NULL, 10);
    n_workers++;
    return 1;
}

/* How many files named like the hook library's copies ("libmemsnap_hook...") are in the
 * target's /dev/shm and /tmp as the target sees them; each one is printed. */
static int hook_files_left(pid_t pid)
{
    static const char *const dirs[] = {"dev/shm", "tmp"};
    int n = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/proc/%d/root/%s", (int)pid, dirs[i]);
        DIR *d = opendir(path);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d)))
            if (!strncmp(de->d_name, "libmemsnap_hook", 15)) {
                print_message("    left behind: %s/%s\n", path, de->d_name);
                n++;
            }
        closedir(d);
    }
    return n;
}

static long worker_of(pid_t pid)
{
    for (int i = 0; i < 64 && i < n_workers; i++)
        if (workers[i].pid == pid)
            return workers[i].worker;
    return -1;
}

static long field(const char *line, const char *key)
{
    const char *s = strstr(line, key);
    return s ? strtol(s + strlen(key), NULL, 10) : -1;
}

/* Pokes every blocking thread of the target and checks what it reports about itself. */
static void target_check(struct test_proc *p, const char *label)
{
    char line[512];
    assert_false(test_pid_has_stopped_thread(p->pid));
    assert_false(test_pid_is_traced(p->pid));
    assert_int_equal(test_proc_send(p, "check\n"), 0);
    if (test_proc_wait_line(p, "check ", line, sizeof line, 15000) < 0)
        fail_msg("%s: the target did not answer 'check'", label);
    print_message("    %s: %s\n", label, line);
    if (field(line, "errors=") != 0 || field(line, "corrupt=") != 0 || field(line, "under=") != 0 ||
        field(line, "acked=") != field(line, "pokes="))
        fail_msg("%s: the target saw a problem: %s", label, line);
    /* Oversleeps come from a loaded 2-core machine too; a few are tolerated. */
    long sleeps = field(line, "sleeps="), late = field(line, "late=");
    if (late > 2 + sleeps / 20)
        fail_msg("%s: too many sleeps were more than 10 ms late: %s", label, line);
}

/* Asks the target to quit; it must exit 0 and have printed nothing unexpected. */
static void target_quit(struct test_proc *p, const char *label)
{
    test_proc_send(p, "quit\n");
    int st = test_proc_wait_exit(p, 10000);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s: the target did not exit cleanly (status %d)", label, st);
    char rest[256];
    ssize_t n = read(p->out_fd, rest, sizeof rest - 1);
    if (n < 0)
        n = 0;
    rest[n] = 0;
    if (p->len || n)
        fail_msg("%s: unexpected target output: %s%s", label, p->buf, rest);
    test_proc_kill(p);
}

/* --- memsnap --- */

static pid_t memsnap_spawn(char *const args[], const char *log)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)test_memsnap();
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid, int timeout_ms)
{
    long long deadline = test_now_ms() + timeout_ms;
    int st;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (test_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -2;
        }
        usleep(5000);
    }
    return st;
}

static void read_file(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
}

static int exit_code(int st)
{
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int attach_once(pid_t pid, const char *duration, const char *rate, const char *path)
{
    char pidbuf[16];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
    char *args[] = {"attach",     pidbuf, "--duration", (char *)duration, "--rate",
                    (char *)rate, "-o",   (char *)path, "--quiet",        NULL};
    return exit_code(test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS));
}

/* --- reading profiles --- */

static const char *leaf_name(const struct profile *p, const struct profile_sample *s)
{
    if (!s->n_locs)
        return "";
    const struct profile_location *l = &p->locations[p->stack_locs[s->first_loc]];
    return p->strings[p->functions[p->lines[l->first_line].function].name];
}

static int64_t sum_by_leaf(const struct profile *p, const char *type, const char *leaf)
{
    int t = profile_find_sample_type(p, type);
    assert_true(t >= 0);
    int64_t sum = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        if (!strcmp(leaf_name(p, &p->samples[i]), leaf))
            sum += p->values[i * p->n_sample_types + (size_t)t];
    return sum;
}

static const char *top_leaf(const struct profile *p, const char *type)
{
    int t = profile_find_sample_type(p, type);
    assert_true(t >= 0);
    const char *best = "";
    int64_t best_v = -1;
    for (size_t i = 0; i < p->n_samples; i++) {
        const char *name = leaf_name(p, &p->samples[i]);
        int64_t v = sum_by_leaf(p, type, name);
        if (v > best_v) {
            best_v = v;
            best = name;
        }
    }
    return best;
}

static void check_profile(const char *path, const struct test_python *py, pid_t pid, int64_t rate)
{
    struct profile *p;
    ms_error e;
    if (profile_read(path, &p, &e) < 0)
        fail_msg("%s: %s", py->label, e.msg);
    int64_t hot = sum_by_leaf(p, "alloc_space", "hot");
    int64_t cold = sum_by_leaf(p, "alloc_space", "cold");
    double ratio = cold > 0 ? (double)hot / (double)cold : 0;
    print_message("    %s: alloc_space hot %lld cold %lld ratio %.2f, top inuse %s, %zu samples\n",
                  py->label, (long long)hot, (long long)cold, ratio, top_leaf(p, "inuse_space"),
                  p->n_samples);
    if (ratio < 8.5 || ratio > 11.5)
        fail_msg("%s: hot/cold alloc_space ratio %.2f is not 10 +- 15%%", py->label, ratio);
    if (strcmp(top_leaf(p, "inuse_space"), "leak"))
        fail_msg("%s: leak does not top inuse_space", py->label);
    assert_true(sum_by_leaf(p, "inuse_space", "hot") < sum_by_leaf(p, "inuse_space", "leak") / 5);
    assert_string_equal(p->strings[p->sample_types[p->default_sample_type].type], "inuse_space");
    assert_int_equal(p->period, rate);
    assert_int_equal(p->meta.pid, pid);
    assert_int_equal(p->meta.rate, rate);
    assert_string_equal(p->strings[p->meta.mode], "attach");
    char ver[16];
    snprintf(ver, sizeof ver, "%d.%d.", py->major, py->minor);
    assert_true(!strncmp(p->strings[p->meta.python_version], ver, strlen(ver)));
    assert_non_null(strstr(p->strings[p->meta.command], "attach_target.py"));
    assert_true(p->meta.duration_ns > 500000000ll);
    assert_true(p->meta.peak_rss > 0 && p->meta.total_alloc_count > 0);
    assert_true(p->n_timeline >= 20);
    /* The worker thread's samples carry its label, its native tid; the stack goes up to the
     * thread bootstrap, so more than one frame. */
    char label[48];
    snprintf(label, sizeof label, "thread %ld", worker_of(pid));
    for (size_t i = 0; i < p->n_samples; i++)
        if (!strcmp(leaf_name(p, &p->samples[i]), "hot")) {
            assert_string_equal(p->strings[p->samples[i].thread], label);
            assert_true(p->samples[i].n_locs >= 3);
            assert_true(p->samples[i].block_bytes >= 2000 && p->samples[i].block_bytes < 2200);
        }
    profile_free(p);
}

/* --- tests --- */

/* Code objects that die milliseconds after they allocate (tests/py/attach_shortlived.py
 * compiles, calls and drops a function every 10 ms, from two sources in turn whose code objects
 * often take each other's address) are named by what the hook announced in the ring while they
 * lived: the kept memory's leaf is ephemeral, at <ephemeral>:2 for the 64 KiB blocks and :3 for
 * the 128 KiB ones, on every version, and nothing is under an "<unknown>" frame. At 16 KiB the
 * hook sees code objects die (it wraps the frees); at 64 KiB it routes sampled blocks through
 * the raw domain and tells a reborn code object by its fingerprint. */
static void short_lived_check(const char *rate)
{
    struct test_proc t[MAX_PY];
    char *args[64];
    char pids[MAX_PY][16];
    int n = 0;
    args[n++] = "attach";
    for (int i = 0; i < n_pythons; i++) {
        char *argv[] = {(char *)pythons[i].path, (char *)test_py_script("attach_shortlived.py"),
                        NULL};
        assert_int_equal(test_proc_spawn(&t[i], argv), 0);
        char line[64];
        if (test_proc_wait_line(&t[i], "ready", line, sizeof line, READY_MS) < 0)
            fail_msg("%s: attach_shortlived.py did not start", pythons[i].label);
        snprintf(pids[i], sizeof pids[i], "%d", (int)t[i].pid);
        args[n++] = pids[i];
    }
    char outpath[256];
    snprintf(outpath, sizeof outpath, "%s/shortlived.pb", tmpdir);
    char *rest[] = {"--duration", "1.5", "--rate", (char *)rate, "-o", outpath, "--quiet", NULL};
    for (int i = 0; rest[i]; i++)
        args[n++] = rest[i];
    args[n] = NULL;
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS);
    assert_int_equal(exit_code(st), 0);
    for (int i = 0; i < n_pythons; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/shortlived-%d.pb", tmpdir, (int)t[i].pid);
        struct profile *p;
        ms_error e;
        if (profile_read(path, &p, &e) < 0)
            fail_msg("%s: %s", pythons[i].label, e.msg);
        int64_t named = sum_by_leaf(p, "inuse_space", "ephemeral");
        int64_t unknown = 0;
        int at_line[2] = {0, 0}; /* samples of 64 KiB and 128 KiB blocks under ephemeral */
        int t_inuse = profile_find_sample_type(p, "inuse_space");
        for (size_t k = 0; k < p->n_samples; k++) {
            const struct profile_sample *s = &p->samples[k];
            for (uint32_t j = 0; j < s->n_locs; j++) {
                const struct profile_location *l = &p->locations[p->stack_locs[s->first_loc + j]];
                const struct profile_line *ln = &p->lines[l->first_line];
                const struct profile_function *f = &p->functions[ln->function];
                if (!strcmp(p->strings[f->name], "<unknown>"))
                    unknown += p->values[k * p->n_sample_types + (size_t)t_inuse];
                if (j == 0 && !strcmp(p->strings[f->name], "ephemeral")) {
                    assert_string_equal(p->strings[f->filename], "<ephemeral>");
                    /* A stack's average block size (the 56-byte bytearray objects of its line
                     * weigh in a little): 128 KiB blocks named at line 2, or 64 KiB ones at
                     * line 3, would move it far from the line's own size. */
                    int big = s->block_bytes > 100000;
                    int64_t lo = big ? 120000 : 50000, hi = big ? 131073 : 65537;
                    if (ln->line != 2 + big || s->block_bytes < lo || s->block_bytes > hi)
                        fail_msg("%s, rate %s: %lld-byte blocks of ephemeral at line %lld; "
                                 "expected 64 KiB ones at line 2, 128 KiB ones at line 3",
                                 pythons[i].label, rate, (long long)s->block_bytes,
                                 (long long)ln->line);
                    at_line[big]++;
                }
            }
        }
        print_message("    %s, rate %s: inuse_space under ephemeral %lld (%d + %d samples), "
                      "under <unknown> %lld\n",
                      pythons[i].label, rate, (long long)named, at_line[0], at_line[1],
                      (long long)unknown);
        /* ~150 calls of 64 or 128 KiB in the window, the newest 100 kept: megabytes */
        if (named < (1 << 20))
            fail_msg("%s: only %lld bytes of inuse_space under ephemeral", pythons[i].label,
                     (long long)named);
        assert_true(at_line[0] > 0 && at_line[1] > 0);
        assert_int_equal(unknown, 0);
        profile_free(p);
        assert_false(test_pid_has_stopped_thread(t[i].pid));
        test_proc_kill(&t[i]);
    }
}

static void test_short_lived_code_named(void **state)
{
    (void)state;
    short_lived_check("16384");
    short_lived_check("65536");
}

/* Every installed version at once, one memsnap, several pids. */
static void test_profiles_every_python(void **state)
{
    (void)state;
    struct test_proc t[MAX_PY];
    char *args[64];
    char pids[MAX_PY][16];
    int n = 0;
    args[n++] = "attach";
    for (int i = 0; i < n_pythons; i++) {
        target_start(&t[i], &pythons[i]);
        snprintf(pids[i], sizeof pids[i], "%d", (int)t[i].pid);
        args[n++] = pids[i];
    }
    char outpath[256];
    snprintf(outpath, sizeof outpath, "%s/every.pb", tmpdir);
    /* 64 KiB: sampled blocks routed through the raw domain, as at the default rate; 5 s give
     * ~7,000 hot and ~700 cold samples (the ratio's standard error ~0.4, the tolerance 1.5). */
    char *rest[] = {"--duration", "5",       "--rate",  "65536", "-o",
                    outpath,      "--quiet", "--stats", NULL};
    for (int i = 0; rest[i]; i++)
        args[n++] = rest[i];
    args[n] = NULL;
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS);
    print_message("%s%s", out, err);
    assert_int_equal(exit_code(st), 0);
    for (int i = 0; i < n_pythons; i++) {
        char path[256], want[300];
        snprintf(path, sizeof path, "%s/every-%d.pb", tmpdir, (int)t[i].pid);
        snprintf(want, sizeof want, "wrote %s: ", path);
        assert_non_null(strstr(out, want));
        snprintf(want, sizeof want, "memsnap: stats pid=%d ", (int)t[i].pid);
        const char *stats = strstr(err, want);
        assert_non_null(stats);
        const char *eol = strchr(stats, '\n');
        const char *routed = strstr(stats, " frees_via_raw=1");
        if (!routed || (eol && routed > eol))
            fail_msg("%s: the hook did not route sampled blocks at 64 KiB", pythons[i].label);
        check_profile(path, &pythons[i], t[i].pid, 65536);
        target_check(&t[i], pythons[i].label);
        target_quit(&t[i], pythons[i].label);
    }
    for (const char *line = err; *line; line = strchr(line, '\n') + 1) { /* nothing but stats */
        assert_int_equal(strncmp(line, "memsnap: stats ", 15), 0);
        assert_non_null(strchr(line, '\n'));
    }
}

static int has_ring_mapping(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "memfd:memsnap-ring"))
            found = 1;
    fclose(f);
    return found;
}

/* The kill test's bookkeeping: when each memsnap was killed and when its target's ring went. */
struct kill_watch {
    long long killed_at; /* 0: not killed yet */
    long long gone_at;   /* 0: the ring is still mapped (or not killed yet) */
};

/* Notes the first instant each killed target is seen without its ring mapping. */
static void kill_watch_poll(struct kill_watch *w, const struct test_proc *t, int n)
{
    for (int i = 0; i < n; i++)
        if (w[i].killed_at && !w[i].gone_at && !has_ring_mapping(t[i].pid))
            w[i].gone_at = test_now_ms();
}

/* Sleeps ms, polling the killed targets every 10 ms, so that a target whose hook stops while
 * the next memsnap is still being started and killed is timed from its own kill. */
static void kill_watch_sleep(struct kill_watch *w, const struct test_proc *t, int n, int ms)
{
    long long until = test_now_ms() + ms;
    for (;;) {
        kill_watch_poll(w, t, n);
        long long left = until - test_now_ms();
        if (left <= 0)
            return;
        usleep((useconds_t)(left < 10 ? left : 10) * 1000);
    }
}

/* SIGKILL memsnap at a random instant in every version at once; each target must stop
 * recording within 2 s, never be left stopped, keep no copy of the library in its /dev/shm or
 * /tmp, and accept a new attach. Rounds 0 and 1 kill around the first attach of a fresh
 * target (the library is being written and loaded), round 2 while recording. */
static void test_sigkill_at_random_instants(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    print_message("    seed %u\n", seed);
    srand(seed);
    for (int round = 0; round < 3; round++) {
        struct test_proc t[MAX_PY];
        struct kill_watch w[MAX_PY];
        int delay[MAX_PY], isolated[MAX_PY];
        memset(w, 0, sizeof w);
        for (int i = 0; i < n_pythons; i++)
            isolated[i] = target_start_isolated(&t[i], &pythons[i]);
        if (round == 0 && !isolated[0])
            print_message("SKIP: files left behind are checked only as root with unshare(1)\n");
        for (int i = 0; i < n_pythons; i++) {
            char pid[16], log[256], path[256];
            snprintf(pid, sizeof pid, "%d", (int)t[i].pid);
            snprintf(log, sizeof log, "%s/kill-%d.log", tmpdir, i);
            snprintf(path, sizeof path, "%s/killed-%d.pb", tmpdir, i);
            char *args[] = {"attach", pid, "--quiet", "-o", path, NULL};
            /* rounds 0, 1: from memsnap's start through the injection (which begins some
             * 50-150 ms in: reading the interpreter's ELF files comes first); round 2: while
             * recording */
            delay[i] = round < 2 ? 20 + rand() % 180 : 100 + rand() % 400;
            pid_t m = memsnap_spawn(args, log);
            kill_watch_sleep(w, t, i, delay[i]);
            kill(m, SIGKILL);
            w[i].killed_at = test_now_ms();
            waitpid(m, NULL, 0);
        }
        for (;;) {
            kill_watch_poll(w, t, n_pythons);
            int waiting = 0;
            for (int i = 0; i < n_pythons; i++)
                if (!w[i].gone_at && test_now_ms() - w[i].killed_at < 4000)
                    waiting = 1;
            if (!waiting)
                break;
            usleep(10000);
        }
        for (int i = 0; i < n_pythons; i++) {
            long long took = w[i].gone_at ? w[i].gone_at - w[i].killed_at : -1;
            print_message("    %s: killed after %d ms, hook stopped within %lld ms\n",
                          pythons[i].label, delay[i], took);
            if (took < 0 || took > 2100) /* 2 s + polling slack */
                fail_msg("%s: the hook did not stop within 2 s of memsnap's death",
                         pythons[i].label);
            assert_false(test_pid_has_stopped_thread(t[i].pid));
            assert_false(test_pid_is_traced(t[i].pid));
        }
        /* A kill at any instant leaves no copy of the library on disk (checked before the
         * next attach, which would clean up after a dead memsnap). */
        int left = 0;
        for (int i = 0; i < n_pythons; i++)
            if (isolated[i] && hook_files_left(t[i].pid)) {
                print_message("    %s: killed after %d ms left library files behind\n",
                              pythons[i].label, delay[i]);
                left++;
            }
        if (left)
            fail_msg("%d of %d killed memsnaps left library files behind", left, n_pythons);
        for (int i = 0; i < n_pythons; i++) {
            char path[256];
            snprintf(path, sizeof path, "%s/after-kill.pb", tmpdir);
            int rc = attach_once(t[i].pid, "0.3", "65536", path);
            if (rc != 0)
                fail_msg("%s: attach after a killed memsnap failed: %s", pythons[i].label, err);
            target_check(&t[i], pythons[i].label);
            target_quit(&t[i], pythons[i].label);
        }
    }
}

/* Attach/detach cycles must not grow the target (beyond the dormant library, loaded once). */
static void test_cycles_keep_rss_flat(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        if (!pythons[i].debian && i != n_pythons - 1)
            continue; /* Debian's and the newest: the two hook/interpreter extremes */
        struct test_proc t;
        char line[64], path[256];
        target_start(&t, &pythons[i]);
        test_proc_send(&t, "churn\n");
        test_proc_wait_line(&t, "mode churn", line, sizeof line, 5000);
        snprintf(path, sizeof path, "%s/cycle.pb", tmpdir);
        assert_int_equal(attach_once(t.pid, "0.2", "4096", path), 0);
        usleep(200000);
        int64_t before = timeline_rss_of(t.pid);
        for (int c = 0; c < 10; c++)
            if (attach_once(t.pid, "0.2", "4096", path) != 0)
                fail_msg("%s: cycle %d failed: %s", pythons[i].label, c, err);
        usleep(200000);
        int64_t after = timeline_rss_of(t.pid);
        print_message("    %s: RSS %lld -> %lld after 10 cycles (%+lld KiB)\n", pythons[i].label,
                      (long long)before, (long long)after, (long long)(after - before) / 1024);
        if (after - before > 512 * 1024)
            fail_msg("%s: RSS grew by %lld KiB over 10 attach cycles", pythons[i].label,
                     (long long)(after - before) / 1024);
        target_check(&t, pythons[i].label);
        target_quit(&t, pythons[i].label);
    }
}

/* No --duration: SIGINT ends the recording and the profile is written. */
static void test_sigint_stops_cleanly(void **state)
{
    (void)state;
    struct test_proc t;
    target_start(&t, &pythons[0]);
    char pid[16], log[256], path[256], text[4096];
    snprintf(pid, sizeof pid, "%d", (int)t.pid);
    snprintf(log, sizeof log, "%s/sigint.log", tmpdir);
    snprintf(path, sizeof path, "%s/sigint.pb", tmpdir);
    char *args[] = {"attach", pid, "-o", path, NULL};
    pid_t m = memsnap_spawn(args, log);
    usleep(1200000);
    kill(m, SIGINT);
    int st = wait_status(m, 10000);
    read_file(log, text, sizeof text);
    print_message("    %s", text);
    assert_int_equal(exit_code(st), 0);
    assert_non_null(strstr(text, "wrote "));
    struct profile *p;
    ms_error e;
    assert_int_equal(profile_read(path, &p, &e), 0);
    assert_true(p->n_samples > 0);
    profile_free(p);
    target_check(&t, pythons[0].label);
    target_quit(&t, pythons[0].label);
}

/* The target exits during the window: what was recorded is written, exit status 0. */
static void test_target_exits_mid_window(void **state)
{
    (void)state;
    struct test_proc t;
    target_start(&t, &pythons[n_pythons - 1]);
    char pid[16], log[256], path[256], text[4096];
    snprintf(pid, sizeof pid, "%d", (int)t.pid);
    snprintf(log, sizeof log, "%s/exit.log", tmpdir);
    snprintf(path, sizeof path, "%s/exit.pb", tmpdir);
    char *args[] = {"attach", pid, "--duration", "30", "--rate", "16384", "-o", path, NULL};
    pid_t m = memsnap_spawn(args, log);
    usleep(1500000);
    test_proc_send(&t, "quit\n");
    assert_true(WIFEXITED(test_proc_wait_exit(&t, 10000)));
    long long t0 = test_now_ms();
    int st = wait_status(m, 10000);
    read_file(log, text, sizeof text);
    print_message("    %s", text);
    assert_int_equal(exit_code(st), 0);
    assert_true(test_now_ms() - t0 < 3000);
    assert_non_null(strstr(text, "exited during the recording"));
    struct profile *p;
    ms_error e;
    assert_int_equal(profile_read(path, &p, &e), 0);
    assert_true(sum_by_leaf(p, "alloc_space", "hot") > 0);
    assert_true(p->meta.duration_ns > 500000000ll && p->meta.duration_ns < 10000000000ll);
    profile_free(p);
    test_proc_kill(&t);
}

static void expect_refusal(char *const args[], int code, const char *needle)
{
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_MS);
    print_message("    %s -> %d: %s", args[1] ? args[1] : "", exit_code(st), err);
    assert_int_equal(exit_code(st), code);
    if (!strstr(err, needle))
        fail_msg("expected '%s' in: %s", needle, err);
}

static void test_bad_input(void **state)
{
    (void)state;
    char *no_pid[] = {"attach", NULL};
    expect_refusal(no_pid, 2, "no pid");
    char *word[] = {"attach", "abc", NULL};
    expect_refusal(word, 2, "not a process id");
    char *zero[] = {"attach", "0", NULL};
    expect_refusal(zero, 2, "not a process id");
    char *rate[] = {"attach", "1", "--rate", "0", NULL};
    expect_refusal(rate, 2, "--rate");
    char *dur[] = {"attach", "1", "--duration", "-3", NULL};
    expect_refusal(dur, 2, "--duration");
    char *absent[] = {"attach", "999999999", NULL};
    expect_refusal(absent, 2, "not a process id");
    char *gone[] = {"attach", "4000000", "--duration", "1", NULL};
    expect_refusal(gone, 1, "no process with pid 4000000");

    /* Not Python. */
    struct test_proc sl;
    char *sleep_argv[] = {"/bin/sleep", "30", NULL};
    assert_int_equal(test_proc_spawn(&sl, sleep_argv), 0);
    usleep(100000);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)sl.pid);
    char *notpy[] = {"attach", pid, "--duration", "1", NULL};
    expect_refusal(notpy, 1, "not a CPython process");
    assert_false(test_pid_is_traced(sl.pid));
    test_proc_kill(&sl);

    /* A stopped process is refused and stays exactly as it was (stopped, untraced). */
    struct test_proc t;
    target_start(&t, &pythons[0]);
    snprintf(pid, sizeof pid, "%d", (int)t.pid);
    kill(t.pid, SIGSTOP);
    usleep(100000);
    char *stopped[] = {"attach", pid, "--duration", "1", NULL};
    expect_refusal(stopped, 1, "is stopped");
    assert_true(test_pid_has_stopped_thread(t.pid));
    assert_false(test_pid_is_traced(t.pid));
    kill(t.pid, SIGCONT);
    usleep(100000);

    /* A second memsnap while one records. */
    char log[256], path[256], text[4096];
    snprintf(log, sizeof log, "%s/first.log", tmpdir);
    snprintf(path, sizeof path, "%s/first.pb", tmpdir);
    char *first[] = {"attach", pid, "--duration", "2", "--quiet", "-o", path, NULL};
    pid_t m = memsnap_spawn(first, log);
    usleep(800000);
    char second_path[256];
    snprintf(second_path, sizeof second_path, "%s/second.pb", tmpdir);
    char *second[] = {"attach", pid, "--duration", "1", "-o", second_path, NULL};
    expect_refusal(second, 1, "already being recorded by another memsnap");
    assert_int_equal(exit_code(wait_status(m, 15000)), 0);
    read_file(log, text, sizeof text);
    assert_non_null(strstr(text, "wrote "));

    /* Without ptrace permission (an unprivileged user): how to allow it, target untouched.
     * nobody runs a copy of memsnap in a directory of its own: the clone may live where only
     * its owner can enter (mktemp -d, a 0700 home). */
    char nobody_bin[256] = "";
    if (access("/usr/sbin/runuser", X_OK) == 0 && getuid() == 0 &&
        test_copy_executable(test_memsnap(), nobody_bin, sizeof nobody_bin) == 0) {
        char *as_nobody[] = {"/usr/sbin/runuser",
                             "-u",
                             "nobody",
                             "--",
                             nobody_bin,
                             "attach",
                             pid,
                             "--duration",
                             "1",
                             "-o",
                             "/tmp/memsnap-nobody.pb",
                             NULL};
        int st = test_run_capture(as_nobody, out, sizeof out, err, sizeof err, RUN_MS);
        print_message("    as nobody -> %d: %s", exit_code(st), err);
        assert_int_equal(exit_code(st), 1);
        assert_non_null(strstr(err, "CAP_SYS_PTRACE"));
        assert_int_equal(access("/tmp/memsnap-nobody.pb", F_OK), -1);
        test_remove_copy(nobody_bin);
    } else {
        print_message("SKIP: the no-permission case needs root, runuser and a world-readable "
                      "copy of memsnap under /tmp\n");
    }

    /* An unwritable output path is refused before the target is touched. */
    char *unwritable[] = {"attach", pid, "--duration", "0.3", "-o", "/nonexistent/dir/x.pb", NULL};
    expect_refusal(unwritable, 1, "/nonexistent/dir");
    target_check(&t, pythons[0].label);
    target_quit(&t, pythons[0].label);
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
        cmocka_unit_test(test_profiles_every_python),
        cmocka_unit_test(test_short_lived_code_named),
        cmocka_unit_test(test_sigkill_at_random_instants),
        cmocka_unit_test(test_cycles_keep_rss_flat),
        cmocka_unit_test(test_sigint_stops_cleanly),
        cmocka_unit_test(test_target_exits_mid_window),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("attach", tests, setup, teardown);
}
