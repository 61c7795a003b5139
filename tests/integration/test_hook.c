/*
 * test_hook.c - libmemsnap_hook.so inside real Python processes, without the injector.
 *
 * tests/py/hook_host.py loads the library with ctypes and calls memsnap_hook_start with a
 * config this test builds from the offset table; the test maps the ring with ring_reader,
 * heartbeats and drains it while the host runs workloads, and checks what the hook recorded
 * against what the host did: the right code objects innermost first, a 10:1 hot/cold byte
 * ratio, every allocation at rate 1, frees of sampled blocks, allocators restored at stop, the
 * watchdog, silence from fork children, SIGINT reaching the main thread, synchronous install,
 * no thread of ours while recording (so 3.12+ os.fork() does not warn, also under memsnap run).
 * Every installed Python (Debian's and pyenv's 3.8 - 3.13) runs every test.
 *
 * The hook keeps no thread while recording: its stop, watchdog and descriptor duties run in
 * its allocator wrappers every few thousand calls. So wherever the test needs one of them
 * (stop, descriptor closed) it has the host allocate ("churn").
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hook/hook_abi.h"
#include "hook_ring_wait.h"
#include "hook_config.h"
#include "py_offsets.h"
#include "ring_reader.h"
#include "testproc.h"

#define MAX_PYTHONS 16
#define CODE_HOT    0
#define CODE_COLD   1
#define CODE_OUTER  2
#define CODE_EXACT  3
#define CODE_CHILD  4
#define CODE_CHURN  5
#define N_CODES     6

/* What a STACK record defined, as much of it as the checks use. */
struct seen_slot {
    uint32_t nframes;
    uint32_t child; /* child_work() is somewhere on the stack */
    uint64_t inner, inner_lasti, caller;
};

/* What the drained events showed. */
struct seen {
    struct seen_slot *slots; /* by slot number; config.stack_slots of them */
    uint32_t n_slots;
    uint64_t code[N_CODES];
    uint64_t allocs, frees;
    uint64_t churn_n;    /* ALLOCs of blocks of churn_size made in churn() */
    uint64_t churn_size; /* 0: not counted */
    uint64_t hot_n, cold_n, hot_bytes, cold_bytes;
    uint64_t hot_caller_wrong; /* hot allocations whose next frame is not outer() */
    uint64_t hot_lasti_wrong;  /* ... whose instruction field is not inside hot()'s code */
    int lasti_model;           /* enum py_lasti_model of this Python */
    int32_t code_adaptive;     /* offset of the inline bytecode (3.11+) */
    uint64_t exact_size;       /* size of the blocks exact() keeps */
    uint64_t *exact_addrs;     /* addresses of those blocks, in arrival order */
    size_t exact_n, exact_cap;
    int exact_sorted;              /* 1: count FREEs of exact_addrs; 2: done counting */
    uint64_t exact_freed;          /* those addresses with a FREE (each counted once: a released
                                    * block's address may be reused, and freed again, by Python) */
    uint8_t *exact_mark;           /* per exact_addrs entry: its FREE was seen */
    uint64_t exact_reused_unfreed; /* ALLOCs at an exact address before its FREE */
    uint64_t child_frames;         /* events with child_work() anywhere on the stack */
};

struct host {
    const struct test_python *py;
    struct test_proc proc;
    struct ring_reader ring;
    int ring_open;
    int beating; /* send heartbeats while pumping */
    struct seen seen;
};

static const char *hook_library(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", test_memsnap());
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
             "libmemsnap_hook.so");
    return path;
}

/* The config memsnap would build for this interpreter. */
static void config_build(struct mshook_config *c, const struct test_python *py, uint64_t rate,
                         uint32_t timeout_ms, uint32_t flags)
{
    struct hook_config_params p = {
        .rate = rate,
        .heartbeat_timeout_ms = timeout_ms,
        .flags = flags,
        .seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)py->minor << 32 ^ (uint64_t)py->debian,
        .memsnap_pid = getpid(),
    };
    ms_error err = {{0}};
    uint32_t hex = (uint32_t)py->major << 24 | (uint32_t)py->minor << 16;
    if (hook_config_build(c, py_offsets_find(py->major, py->minor), hex, &p, &err) != 0)
        fail_msg("%s: %s", py->label, err.msg);
}

static void host_send(struct host *h, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_int_equal(test_proc_send(&h->proc, buf), 0);
}

static int seen_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A new session's ring: its slots start undefined. */
static void seen_slots_reset(struct seen *s, uint32_t n_slots)
{
    free(s->slots);
    s->slots = NULL;
    s->n_slots = n_slots;
}

static int on_event(void *ctx, const struct ring_event *ev)
{
    struct seen *s = ctx;
    if (ev->type == MSHOOK_REC_FREE) {
        s->frees++;
        const uint64_t *at = s->exact_sorted == 1 ? bsearch(&ev->addr, s->exact_addrs, s->exact_n,
                                                            sizeof(uint64_t), seen_cmp)
                                                  : NULL;
        if (at && !s->exact_mark[at - s->exact_addrs]) {
            s->exact_mark[at - s->exact_addrs] = 1;
            s->exact_freed++;
        }
        return 0;
    }
    if (ev->type == MSHOOK_REC_STACK) {
        if (!s->slots) {
            s->slots = calloc(s->n_slots, sizeof *s->slots);
            assert_non_null(s->slots);
        }
        assert_true(ev->slot < s->n_slots);
        struct seen_slot *st = &s->slots[ev->slot];
        memset(st, 0, sizeof *st);
        st->nframes = ev->nframes;
        for (uint32_t i = 0; i < ev->nframes; i++)
            if (ev->frames[i].code == s->code[CODE_CHILD])
                st->child = 1;
        if (ev->nframes > 0) {
            st->inner = ev->frames[0].code;
            st->inner_lasti = ev->frames[0].lasti;
        }
        if (ev->nframes > 1)
            st->caller = ev->frames[1].code;
        return 0;
    }
    if (ev->type != MSHOOK_REC_ALLOC)
        return 0;
    s->allocs++;
    if (s->exact_sorted == 1) {
        const uint64_t *at =
            bsearch(&ev->addr, s->exact_addrs, s->exact_n, sizeof(uint64_t), seen_cmp);
        if (at && !s->exact_mark[at - s->exact_addrs])
            s->exact_reused_unfreed++; /* its FREE never came */
    }
    /* The hook defines a slot before naming it. */
    assert_non_null(s->slots);
    const struct seen_slot *st = &s->slots[ev->slot];
    s->child_frames += st->child;
    if (st->nframes == 0)
        return 0;
    uint64_t inner = st->inner;
    if (inner == s->code[CODE_HOT]) {
        s->hot_n++;
        s->hot_bytes += ev->size;
        if (st->nframes < 2 || st->caller != s->code[CODE_OUTER])
            s->hot_caller_wrong++;
        /* An offset into hot()'s few dozen bytes of bytecode, or a pointer into them. */
        uint64_t lasti = st->inner_lasti;
        int ok = s->lasti_model <= PY_LASTI_WORDS
                     ? (int64_t)lasti >= 0 && lasti < 200
                     : lasti >= inner + (uint64_t)s->code_adaptive &&
                           lasti < inner + (uint64_t)s->code_adaptive + 400;
        if (!ok)
            s->hot_lasti_wrong++;
    } else if (inner == s->code[CODE_COLD]) {
        s->cold_n++;
        s->cold_bytes += ev->size;
    } else if (inner == s->code[CODE_CHURN] && ev->size == s->churn_size) {
        s->churn_n++;
    } else if (inner == s->code[CODE_EXACT] && ev->size == s->exact_size && !s->exact_sorted) {
        if (s->exact_n == s->exact_cap) {
            s->exact_cap = s->exact_cap ? s->exact_cap * 2 : 1024;
            s->exact_addrs = realloc(s->exact_addrs, s->exact_cap * sizeof(uint64_t));
            assert_non_null(s->exact_addrs);
        }
        s->exact_addrs[s->exact_n++] = ev->addr;
    }
    return 0;
}

static void host_drain(struct host *h)
{
    if (!h->ring_open)
        return;
    if (h->beating)
        ring_reader_heartbeat(&h->ring);
    ms_error err = {{0}};
    int n = ring_reader_drain(&h->ring, on_event, &h->seen, &err);
    if (n < 0)
        fail_msg("%s: %s", h->py->label, err.msg);
}

/* Waits for a line from the host, draining and heartbeating meanwhile. */
static void host_expect(struct host *h, const char *prefix, char *line, size_t n, int timeout_ms)
{
    long long deadline = test_now_ms() + timeout_ms;
    for (;;) {
        host_drain(h);
        if (test_proc_wait_line(&h->proc, prefix, line, n, 20) == 0) {
            host_drain(h);
            return;
        }
        if (test_now_ms() > deadline)
            fail_msg("%s: no \"%s\" line from hook_host.py within %d ms", h->py->label, prefix,
                     timeout_ms);
    }
}

static void host_spawn(struct host *h, const struct test_python *py)
{
    memset(h, 0, sizeof *h);
    h->py = py;
    char *argv[] = {(char *)py->path, (char *)test_py_script("hook_host.py"),
                    (char *)hook_library(), NULL};
    assert_int_equal(test_proc_spawn(&h->proc, argv), 0);
    char line[256];
    host_expect(h, "ready", line, sizeof line, 10000);
    host_send(h, "codes\n");
    host_expect(h, "codes ", line, sizeof line, 5000);
    unsigned long long c[N_CODES];
    assert_int_equal(sscanf(line,
                            "codes hot=%llu cold=%llu outer=%llu exact=%llu child=%llu churn=%llu",
                            &c[0], &c[1], &c[2], &c[3], &c[4], &c[5]),
                     N_CODES);
    for (int i = 0; i < N_CODES; i++)
        h->seen.code[i] = c[i];
    const struct py_offsets *o = py_offsets_find(py->major, py->minor);
    assert_non_null(o);
    h->seen.lasti_model = o->lasti_model;
    h->seen.code_adaptive = o->code_code_adaptive;
}

/* Waits until the install thread has wrapped the allocators: allocations made before that
 * are not the session's, and a stop request needs the wrappers' tick to be seen. */
static void host_wait_recording(struct host *h)
{
    long long deadline = test_now_ms() + 5000;
    while (ring_reader_state(&h->ring) != MSHOOK_STATE_RECORDING) {
        if (test_now_ms() > deadline)
            fail_msg("%s: hook state %u, never RECORDING", h->py->label,
                     ring_reader_state(&h->ring));
        host_drain(h);
        usleep(5000);
    }
}

/* Sends the config, checks the return value; with a ring, maps it and waits for RECORDING. */
static int host_start(struct host *h, uint64_t rate, uint32_t timeout_ms, uint32_t flags)
{
    struct mshook_config cfg;
    config_build(&cfg, h->py, rate, timeout_ms, flags);
    char hex[2 * sizeof cfg + 1];
    for (size_t i = 0; i < sizeof cfg; i++)
        sprintf(hex + 2 * i, "%02x", ((const unsigned char *)&cfg)[i]);
    host_send(h, "%s %s\n", flags & MSHOOK_F_SYNC_INSTALL ? "startsync" : "start", hex);
    char line[256];
    host_expect(h, "started ", line, sizeof line, 5000);
    int rc = atoi(line + 8);
    if (rc < 0)
        return rc;
    ms_error err = {{0}};
    seen_slots_reset(&h->seen, cfg.stack_slots);
    if (hook_ring_wait(h->proc.pid, rc, 5000, &err) != 0 ||
        ring_reader_open(h->proc.pid, rc, &h->ring, &err) != 0)
        fail_msg("%s: %s", h->py->label, err.msg);
    h->ring_open = 1;
    h->beating = 1;
    if (flags & MSHOOK_F_SYNC_INSTALL)
        assert_int_equal(ring_reader_state(&h->ring), MSHOOK_STATE_RECORDING);
    host_wait_recording(h);
    return rc;
}

/* Waits (draining, heartbeating or not) until the hook reaches STOPPED; returns the ms it
 * took from the call. */
static long long host_wait_stopped(struct host *h, int timeout_ms)
{
    long long t0 = test_now_ms();
    while (ring_reader_state(&h->ring) != MSHOOK_STATE_STOPPED) {
        if (test_now_ms() - t0 > timeout_ms)
            fail_msg("%s: hook state %u, not STOPPED after %d ms", h->py->label,
                     ring_reader_state(&h->ring), timeout_ms);
        host_drain(h);
        usleep(5000);
    }
    host_drain(h);
    return test_now_ms() - t0;
}

/* Asks the hook to stop, has the host allocate so a wrapper notices, waits for STOPPED,
 * drains the rest; the final counters go to *final when given. */
static void host_stop_counters(struct host *h, struct mshook_shared *final)
{
    char line[64];
    ring_reader_request_stop(&h->ring);
    host_send(h, "churn 5000\n");
    host_expect(h, "churn done", line, sizeof line, 10000);
    host_wait_stopped(h, 5000);
    struct mshook_shared snap;
    ring_reader_counters(&h->ring, &snap);
    assert_int_equal(snap.ring_head, snap.ring_tail); /* everything published was read */
    if (final)
        *final = snap;
    ring_reader_close(&h->ring);
    h->ring_open = 0;
}

static void host_stop(struct host *h)
{
    host_stop_counters(h, NULL);
}

static void host_expect_allocators(struct host *h, int same)
{
    char line[64];
    host_send(h, "allocators\n");
    host_expect(h, "allocators ", line, sizeof line, 5000);
    char want[32];
    snprintf(want, sizeof want, "allocators same=%d", same);
    if (strcmp(line, want) != 0)
        fail_msg("%s: %s, expected %s", h->py->label, line, want);
}

static void host_quit(struct host *h)
{
    host_send(h, "quit\n");
    int status = test_proc_wait_exit(&h->proc, 10000);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_msg("%s: hook_host.py ended with status %#x", h->py->label, status);
    if (h->ring_open)
        ring_reader_close(&h->ring);
    test_proc_kill(&h->proc);
    free(h->seen.exact_addrs);
    free(h->seen.exact_mark);
    free(h->seen.slots);
}

/* Lines of /proc/PID/maps naming the ring, and descriptors of PID pointing at it. */
static int ring_mappings(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, MSHOOK_MEMFD_NAME) != NULL;
    fclose(f);
    return n;
}

static int ring_descriptors(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[320], target[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t k = readlink(path, target, sizeof target - 1);
        if (k > 0) {
            target[k] = 0;
            n += strstr(target, MSHOOK_MEMFD_NAME) != NULL;
        }
    }
    closedir(d);
    return n;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* OS threads of PID (/proc/PID/status Threads:), what CPython 3.12+ os.fork() counts. */
static int os_threads(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* Waits up to timeout_ms for PID to have want threads (a short-lived thread of ours may be
 * exiting); returns the last count seen. */
static int os_threads_settle(pid_t pid, int want, int timeout_ms)
{
    long long deadline = test_now_ms() + timeout_ms;
    int n;
    while ((n = os_threads(pid)) != want && test_now_ms() < deadline)
        usleep(5000);
    return n;
}

static int host_start_raw(struct host *h, const struct mshook_config *cfg);

static int pythons(struct test_python *out)
{
    int n = test_pythons(out, MAX_PYTHONS);
    assert_true(n > 0);
    return n;
}

/* Sampled bytes follow where the bytes were allocated: hot() allocates 10x cold(). */
static void test_stacks_and_ratio(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        /* 64 KiB: each 2033-byte block is sampled with p = 3%, about 2000 hot samples. */
        assert_true(host_start(&h, 64 << 10, 2000, 0) >= 0);
        host_expect_allocators(&h, 0);
        char line[64];
        host_send(&h, "hotcold 6600\n");
        host_expect(&h, "hotcold done", line, sizeof line, 30000);
        host_stop(&h);
        struct seen *s = &h.seen;
        double ratio = s->cold_bytes ? (double)s->hot_bytes / (double)s->cold_bytes : 0;
        /* The ratio of two Poisson counts: 5 standard deviations of tolerance. */
        double sd = 10.0 * sqrt(1.0 / (double)(s->cold_n ? s->cold_n : 1) +
                                1.0 / (double)(s->hot_n ? s->hot_n : 1));
        printf("%s: hot %" PRIu64 " samples / %" PRIu64 " B, cold %" PRIu64 " / %" PRIu64
               " B, ratio %.2f (+-%.2f)\n",
               py[i].label, s->hot_n, s->hot_bytes, s->cold_n, s->cold_bytes, ratio, sd);
        assert_true(s->hot_n > 1000);
        assert_true(s->cold_n > 100);
        assert_int_equal(s->hot_caller_wrong, 0);
        assert_int_equal(s->hot_lasti_wrong, 0);
        if (fabs(ratio - 10.0) > 5 * sd)
            fail_msg("%s: hot/cold ratio %.2f, expected 10 +- %.2f", py[i].label, ratio, 5 * sd);
        host_expect_allocators(&h, 1);
        host_quit(&h);
    }
}

/* Has the host keep count blocks of size bytes in exact(), then sorts the recorded ones so
 * that their FREEs are counted from now on. */
static struct seen *host_keep_blocks(struct host *h, int count, int size)
{
    char line[64];
    host_send(h, "exact %d %d\n", count, size);
    host_expect(h, "exact done", line, sizeof line, 30000);
    /* At rate 1 the last ALLOCs may sit behind the head the hook has not published yet (it
     * publishes every kilobyte and at ticks, which allocations make): churn, then drain. */
    host_send(h, "churn 2048\n");
    host_expect(h, "churn done", line, sizeof line, 30000);
    host_drain(h);
    struct seen *s = &h->seen;
    qsort(s->exact_addrs, s->exact_n, sizeof(uint64_t), seen_cmp);
    s->exact_mark = calloc(s->exact_n ? s->exact_n : 1, 1);
    assert_non_null(s->exact_mark);
    s->exact_sorted = 1;
    return s;
}

/* Rate 1 records every allocation and every free of a recorded block. */
static void test_exact_and_frees(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    const int count = 3000, size = 3000;
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        h.seen.exact_size = (uint64_t)size + 33; /* PyBytesObject header + NUL */
        assert_true(host_start(&h, 1, 2000, 0) >= 0);
        char line[64];
        struct seen *s = host_keep_blocks(&h, count, size);
        host_send(&h, "release\n");
        host_expect(&h, "release done", line, sizeof line, 30000);
        /* The last FREEs may sit behind the ring head the hook has not published yet (it
         * publishes in batches, and at ticks, which allocations make): small objects, which
         * pymalloc serves from its own pools, never from the released blocks, make ticks. */
        host_send(&h, "churn 2048\n");
        host_expect(&h, "churn done", line, sizeof line, 30000);
        host_drain(&h);
        s->exact_sorted = 2; /* later frees (the stop's churn) may reuse those addresses */
        struct mshook_shared snap;
        host_stop_counters(&h, &snap);
        printf("%s: %zu of %d blocks recorded, %" PRIu64 " freed; %" PRIu64 " allocs, %" PRIu64
               " sampled, %" PRIu64 " dropped\n",
               py[i].label, s->exact_n, count, s->exact_freed, snap.alloc_count,
               snap.sampled_allocs, snap.dropped_events);
        assert_int_equal(snap.dropped_events, 0);
        assert_int_equal(snap.frees_via_raw, 0); /* rate 1 wraps the frees */
        assert_int_equal(snap.alloc_count, snap.sampled_allocs);
        assert_int_equal(s->exact_n, count);
        assert_int_equal(s->exact_freed, count);
        assert_int_equal(s->exact_reused_unfreed, 0);
        host_quit(&h);
    }
}

/* Rate 1 with small blocks, which pymalloc serves from its pools: every block kept alive is
 * recorded with its address and every one of their FREEs comes; temporaries made and dropped
 * one after another (churn) are each recorded once, with their own stack. */
static void test_exact_small_blocks(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    const int count = 3000, size = 100, churned = 20000;
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        h.seen.exact_size = (uint64_t)size + 33; /* PyBytesObject header + NUL */
        h.seen.churn_size = (uint64_t)size + 1 + 33;
        assert_true(host_start(&h, 1, 2000, 0) >= 0);
        char line[64];
        struct seen *s = host_keep_blocks(&h, count, size);
        host_send(&h, "churn %d %d\n", churned, size + 1);
        host_expect(&h, "churn done", line, sizeof line, 30000);
        host_send(&h, "release\n");
        host_expect(&h, "release done", line, sizeof line, 30000);
        host_send(&h, "churn 2048\n"); /* ticks: the last FREEs are published */
        host_expect(&h, "churn done", line, sizeof line, 30000);
        host_drain(&h);
        s->exact_sorted = 2;
        struct mshook_shared snap;
        host_stop_counters(&h, &snap);
        printf("%s: %zu of %d kept blocks recorded, %" PRIu64 " freed; churn: %" PRIu64
               " of %d seen; %" PRIu64 " dropped\n",
               py[i].label, s->exact_n, count, s->exact_freed, s->churn_n, churned,
               snap.dropped_events);
        assert_int_equal(snap.dropped_events, 0);
        assert_int_equal(snap.alloc_count, snap.sampled_allocs);
        assert_int_equal(s->exact_n, count);
        assert_int_equal(s->exact_freed, count);
        assert_int_equal(s->exact_reused_unfreed, 0);
        assert_int_equal(s->churn_n, churned);
        host_quit(&h);
    }
}

static long host_blocks(struct host *h)
{
    char line[64];
    long n = -1;
    host_send(h, "blocks\n");
    host_expect(h, "blocks ", line, sizeof line, 5000);
    assert_int_equal(sscanf(line, "blocks %ld", &n), 1);
    return n;
}

/* At a sampled rate every free of a sampled block is seen, whichever way the hook watches
 * frees: routing sampled blocks through the raw domain (pymalloc, rate >= 64 KiB; pymalloc's
 * own free stays in place) or wrapping the frees (PYTHONMALLOC=malloc, or a lower rate). And
 * routing leaves sys.getallocatedblocks() as it was: pymalloc counts a routed block in and
 * out like its other raw blocks. */
static void sampled_frees_check(uint64_t rate, const char *pythonmalloc, uint32_t want_routed)
{
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    const int count = 20000, size = 400; /* 433-byte blocks: pymalloc's, unless routed */
    if (pythonmalloc)
        setenv("PYTHONMALLOC", pythonmalloc, 1);
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        h.seen.exact_size = (uint64_t)size + 33;
        assert_true(host_start(&h, rate, 2000, 0) >= 0);
        struct mshook_shared snap;
        ring_reader_counters(&h.ring, &snap);
        if (snap.frees_via_raw != want_routed)
            fail_msg("%s: frees_via_raw %u at rate %" PRIu64 " (PYTHONMALLOC=%s), expected %u",
                     py[i].label, snap.frees_via_raw, rate, pythonmalloc ? pythonmalloc : "",
                     want_routed);
        long blocks_before = host_blocks(&h);
        char line[64];
        struct seen *s = host_keep_blocks(&h, count, size);
        uint64_t freed_while_kept = s->exact_freed;
        host_send(&h, "release\n");
        host_expect(&h, "release done", line, sizeof line, 30000);
        host_drain(&h);
        s->exact_sorted = 2;
        long blocks_after = host_blocks(&h);
        host_stop_counters(&h, &snap);
        printf("%s (rate %" PRIu64 ", PYTHONMALLOC=%s, routed %u): %zu sampled blocks kept, "
               "%" PRIu64 " freed at release; getallocatedblocks %ld -> %ld\n",
               py[i].label, rate, pythonmalloc ? pythonmalloc : "", snap.frees_via_raw, s->exact_n,
               s->exact_freed, blocks_before, blocks_after);
        /* 8.7 MB kept: about 8.7 MB / rate samples (132 at 64 KiB). */
        assert_true(s->exact_n > 8660000 / rate / 3);
        assert_int_equal(freed_while_kept, 0);
        assert_int_equal(s->exact_freed, s->exact_n);
        assert_int_equal(s->exact_reused_unfreed, 0);
        /* A routed block not counted in by pymalloc but counted out would drift the count
         * down by one per sampled block freed. */
        if (labs(blocks_after - blocks_before) > (long)s->exact_n / 4)
            fail_msg("%s: sys.getallocatedblocks() went from %ld to %ld over %zu sampled blocks",
                     py[i].label, blocks_before, blocks_after, s->exact_n);
        host_expect_allocators(&h, 1);
        host_quit(&h);
    }
    if (pythonmalloc)
        unsetenv("PYTHONMALLOC");
}

static void test_sampled_frees_routed(void **state)
{
    (void)state;
    sampled_frees_check(64 << 10, NULL, 1);
}

static void test_sampled_frees_wrapped(void **state)
{
    (void)state;
    sampled_frees_check(16 << 10, NULL, 0);             /* below the routing rate */
    sampled_frees_check(64 << 10, "malloc", 0);         /* not pymalloc */
    sampled_frees_check(64 << 10, "pymalloc_debug", 0); /* debug hooks around pymalloc */
}

/* Stop puts the original allocators back; a second session on the same library works; a
 * start while a session is live is refused with -EBUSY; a synchronous install records from
 * the moment start returns. */
static void test_stop_restart_busy_sync(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        for (int round = 0; round < 3; round++) {
            uint32_t flags = round == 2 ? MSHOOK_F_SYNC_INSTALL : 0;
            assert_true(host_start(&h, 4096, 2000, flags) >= 0);
            host_expect_allocators(&h, 0);
            struct mshook_config cfg;
            config_build(&cfg, &py[i], 4096, 2000, 0);
            char hex[2 * sizeof cfg + 1], line[64];
            for (size_t k = 0; k < sizeof cfg; k++)
                sprintf(hex + 2 * k, "%02x", ((const unsigned char *)&cfg)[k]);
            host_send(&h, "start %s\n", hex);
            host_expect(&h, "started ", line, sizeof line, 5000);
            assert_int_equal(atoi(line + 8), -EBUSY);
            host_send(&h, "hotcold 200\n");
            host_expect(&h, "hotcold done", line, sizeof line, 10000);
            host_stop(&h);
            assert_true(h.seen.hot_n > 0);
            host_expect_allocators(&h, 1);
        }
        host_quit(&h);
    }
}

/* memsnap vanishing (no more heartbeats) stops the session of an allocating target within
 * 2 s. An idle target's stale session is ended by the next start (-EAGAIN, then success). */
static void test_watchdog(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        char line[64];
        host_spawn(&h, &py[i]);
        assert_true(host_start(&h, 4096, 500, 0) >= 0);
        h.beating = 0;
        host_send(&h, "spin 3\n");
        long long ms = host_wait_stopped(&h, 2000);
        printf("%s: watchdog stopped the session %lld ms after the last heartbeat\n", py[i].label,
               ms);
        host_expect(&h, "spin done", line, sizeof line, 10000);
        host_expect_allocators(&h, 1);
        ring_reader_close(&h.ring);
        h.ring_open = 0;

        /* Idle: no tick will run, so only the next start can find the session stale. */
        assert_true(host_start(&h, 4096, 500, 0) >= 0);
        h.beating = 0;
        usleep(700 * 1000);
        struct mshook_config cfg;
        config_build(&cfg, &py[i], 4096, 2000, 0);
        int rc = -EAGAIN, tries = 0;
        long long t0 = test_now_ms();
        while (rc == -EAGAIN && test_now_ms() - t0 < 3000) {
            rc = host_start_raw(&h, &cfg);
            tries++;
            if (rc == -EAGAIN)
                usleep(20000);
        }
        printf("%s: an idle target's stale session gave way after %d start(s), %lld ms\n",
               py[i].label, tries, test_now_ms() - t0);
        assert_true(rc >= 0);
        assert_int_equal(ring_reader_state(&h.ring), MSHOOK_STATE_STOPPED);
        ring_reader_close(&h.ring);
        ms_error err = {{0}};
        seen_slots_reset(&h.seen, cfg.stack_slots);
        if (hook_ring_wait(h.proc.pid, rc, 5000, &err) != 0 ||
            ring_reader_open(h.proc.pid, rc, &h.ring, &err) != 0)
            fail_msg("%s: %s", py[i].label, err.msg);
        h.ring_open = 1;
        h.beating = 1;
        host_wait_recording(&h); /* else the churn that should see the stop may come first */
        host_stop(&h);
        host_expect_allocators(&h, 1);
        host_quit(&h);
    }
}

/* A fork child allocating at rate 1 writes nothing into the parent's ring, and survives. */
static void test_fork_child_silent(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        int before = os_threads(h.proc.pid);
        assert_true(host_start(&h, 1, 2000, 0) >= 0);
        /* The install thread has published RECORDING but may still be exiting; a fork in
         * those microseconds would rightly warn (3.12+) of a second thread. */
        assert_int_equal(os_threads_settle(h.proc.pid, before, 1000), before);
        char line[64];
        host_send(&h, "fork 5000\n");
        host_expect(&h, "fork status=", line, sizeof line, 20000);
        assert_string_equal(line, "fork status=0 warnings=0"); /* no thread of ours to warn of */
        host_stop(&h);
        assert_true(h.seen.allocs > 0); /* the parent was recorded */
        assert_int_equal(h.seen.child_frames, 0);
        host_quit(&h);
    }
}

/* SIGINT sent to the process interrupts the main thread's time.sleep while a session records. */
static void test_sigint_reaches_main_thread(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        assert_true(host_start(&h, 4096, 2000, 0) >= 0);
        char line[64];
        host_send(&h, "sleep 20\n");
        long long until = test_now_ms() + 300;
        while (test_now_ms() < until) { /* let the host enter the sleep */
            host_drain(&h);
            usleep(10000);
        }
        assert_int_equal(kill(h.proc.pid, SIGINT), 0);
        host_expect(&h, "sleep ", line, sizeof line, 3000);
        double secs = 0;
        if (sscanf(line, "sleep interrupted=%lf", &secs) != 1)
            fail_msg("%s: %s", py[i].label, line);
        assert_true(secs < 2.0);
        host_stop(&h);
        host_quit(&h);
    }
}

/* While a session records, the target has exactly the OS threads it had before (attach mode's
 * install thread exits once RECORDING is set; a synchronous install starts none), it closes its
 * ring descriptor once memsnap has mapped it, and after stop the region is unmapped. */
static void test_no_thread_while_recording(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        char line[64];
        host_spawn(&h, &py[i]);
        int before = os_threads(h.proc.pid);
        for (int sync = 0; sync < 2; sync++) {
            assert_true(host_start(&h, 4096, 2000, sync ? MSHOOK_F_SYNC_INSTALL : 0) >= 0);
            int during =
                sync ? os_threads(h.proc.pid) : os_threads_settle(h.proc.pid, before, 1000);
            if (during != before)
                fail_msg("%s: %d threads while recording (%s install), %d before", py[i].label,
                         during, sync ? "sync" : "thread", before);
            host_send(&h, "churn 20000\n");
            host_expect(&h, "churn done", line, sizeof line, 10000);
            assert_int_equal(ring_reader_state(&h.ring), MSHOOK_STATE_RECORDING);
            assert_int_equal(os_threads(h.proc.pid), before);
            assert_int_equal(ring_descriptors(h.proc.pid), 0);
            assert_int_equal(ring_mappings(h.proc.pid), 1);
            host_stop(&h);
            assert_int_equal(ring_mappings(h.proc.pid), 0);
            assert_int_equal(os_threads(h.proc.pid), before);
        }
        host_quit(&h);
    }
}

/* A script forking in __main__ under memsnap run prints on stderr what it prints without
 * memsnap: 3.12+ warns about fork() in a multi-threaded process, so a thread of ours would
 * show. */
static void test_run_fork_no_warning(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py), tested = 0;
    static const char script[] = "import os, sys\n"
                                 "pid = os.fork()\n"
                                 "if pid == 0:\n"
                                 "    os._exit(0)\n"
                                 "os.waitpid(pid, 0)\n"
                                 "data = [bytes(100) for _ in range(20000)]\n"
                                 "print('forked', len(data))\n";
    char dir[] = "/tmp/memsnap-test-hook-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (int i = 0; i < n; i++) {
        if (py[i].major * 100 + py[i].minor < 312)
            continue;
        static char out[65536], err[65536], plain_err[65536];
        char *plain[] = {py[i].path, "-c", (char *)script, NULL};
        int st = test_run_capture(plain, out, sizeof out, plain_err, sizeof plain_err, 30000);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_non_null(strstr(out, "forked 20000"));
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/fork-%s.pb", dir, py[i].label);
        char *args[] = {"run", "-o", path, "--", py[i].path, "-c", (char *)script, NULL};
        st = test_run_memsnap(args, out, sizeof out, err, sizeof err, 60000);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fail_msg("%s: memsnap run ended with status %#x: %s", py[i].label, st, err);
        assert_non_null(strstr(out, "forked 20000"));
        printf("%s: plain stderr %zu bytes, under memsnap run: %s\n", py[i].label,
               strlen(plain_err), strstr(err, "Warning") ? "a warning" : "no warning");
        if (strstr(plain_err, "DeprecationWarning"))
            fail_msg("%s: the plain run already warns: %s", py[i].label, plain_err);
        if (strstr(err, "DeprecationWarning") || strstr(err, "multi-threaded"))
            fail_msg("%s: memsnap run changed the target's stderr: %s", py[i].label, err);
        unlink(path);
        tested++;
    }
    rmdir(dir);
    if (!tested)
        printf("SKIP: no Python 3.12+ installed for the fork warning check\n");
}

/* 50 start/stop cycles leave no mapping, no descriptor and no resident growth behind. */
static void test_cycles_leave_nothing(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    /* Debian's static build and the newest pyenv one: enough for a leak, fast enough. */
    int pick[2] = {0, n - 1};
    for (int p = 0; p < (n > 1 ? 2 : 1); p++) {
        const struct test_python *t = &py[pick[p]];
        struct host h;
        host_spawn(&h, t);
        long before = 0;
        char line[64];
        for (int cycle = 0; cycle < 50; cycle++) {
            if (cycle == 5)
                before = rss_kib(h.proc.pid);
            assert_true(host_start(&h, 4096, 2000, 0) >= 0);
            host_send(&h, "hotcold 50\n");
            host_expect(&h, "hotcold done", line, sizeof line, 10000);
            host_stop(&h);
        }
        usleep(100000);
        long after = rss_kib(h.proc.pid);
        printf("%s: RSS %ld KiB after 5 cycles, %ld KiB after 50\n", t->label, before, after);
        assert_int_equal(ring_mappings(h.proc.pid), 0);
        assert_int_equal(ring_descriptors(h.proc.pid), 0);
        assert_true(after - before < 1024);
        host_expect_allocators(&h, 1);
        host_quit(&h);
    }
}

/* Sends cfg as is and returns what memsnap_hook_start said. */
static int host_start_raw(struct host *h, const struct mshook_config *cfg)
{
    char hex[2 * sizeof *cfg + 1], line[64];
    for (size_t k = 0; k < sizeof *cfg; k++)
        sprintf(hex + 2 * k, "%02x", ((const unsigned char *)cfg)[k]);
    host_send(h, "start %s\n", hex);
    host_expect(h, "started ", line, sizeof line, 5000);
    return atoi(line + 8);
}

/* Malformed configs and configs for another Python version are refused before anything is
 * created or installed; a good one works afterwards. */
static void test_bad_configs_refused(void **state)
{
    (void)state;
    struct test_python py[MAX_PYTHONS];
    int n = pythons(py);
    for (int i = 0; i < n; i++) {
        struct host h;
        host_spawn(&h, &py[i]);
        struct mshook_config good, c;
        config_build(&good, &py[i], 4096, 2000, 0);
        c = good;
        c.magic ^= 1;
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.size -= 8;
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.ring_bytes += 4096; /* not a power of two */
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.domains = 0;
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.max_frames = MSHOOK_MAX_FRAMES + 1;
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.frame_code = -1;
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.stack_slots = 96; /* not a power of two */
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.stack_slots = MSHOOK_STACK_SLOTS_MAX * 2;
        assert_int_equal(host_start_raw(&h, &c), -EINVAL);
        c = good;
        c.py_version_hex ^= 1u << 16; /* offsets of another minor version: never walk them */
        assert_int_equal(host_start_raw(&h, &c), -EPROTO);
        assert_int_equal(ring_descriptors(h.proc.pid), 0);
        host_expect_allocators(&h, 1);
        assert_true(host_start(&h, 4096, 2000, 0) >= 0);
        host_stop(&h);
        host_quit(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stacks_and_ratio),
        cmocka_unit_test(test_exact_and_frees),
        cmocka_unit_test(test_exact_small_blocks),
        cmocka_unit_test(test_sampled_frees_routed),
        cmocka_unit_test(test_sampled_frees_wrapped),
        cmocka_unit_test(test_stop_restart_busy_sync),
        cmocka_unit_test(test_watchdog),
        cmocka_unit_test(test_fork_child_silent),
        cmocka_unit_test(test_sigint_reaches_main_thread),
        cmocka_unit_test(test_no_thread_while_recording),
        cmocka_unit_test(test_run_fork_no_warning),
        cmocka_unit_test(test_cycles_leave_nothing),
        cmocka_unit_test(test_bad_configs_refused),
    };
    return cmocka_run_group_tests_name("hook", tests, NULL, NULL);
}
