/*
 * hook.c - the injected library's entry point and its session.
 *
 * No thread of ours lives in the target while it records: a thread changes what the target
 * sees (CPython 3.12+ os.fork() warns "This process is multi-threaded" when /proc/self/stat
 * counts more than one thread), and the rules say the target's output must not change.
 *
 * memsnap_hook_start() runs in a thread memsnap hijacked at a safe point: it holds no GIL and
 * may not block or call into Python. memsnap holds that thread stopped and takes a ptrace stop
 * at each of its syscalls, so in attach mode it does as little as it can: validates the
 * config, creates the memfd (whose number it returns) and starts a short-lived install
 * thread; the thread sizes, seals and maps the shared region, writes its header (state
 * STARTING last, which memsnap waits for: hook_ring_wait.h), takes the GIL, wraps the
 * allocators, sets RECORDING, releases the GIL and exits. Run mode (MSHOOK_F_SYNC_INSTALL:
 * the caller holds the GIL) sets everything up and wraps before returning, no thread. The
 * hijacked thread's errno is kept (ABI 3), so memsnap need not save it around a reused hook.
 *
 * The periodic duties ride on the wrappers (hook_alloc.c), which run with the GIL held: every
 * few thousand wrapped calls, session_tick() closes the memfd once memsnap has mapped it,
 * publishes the counters, and is the watchdog: when memsnap asks to stop, or its heartbeat is
 * stale (memsnap died), the tick ends the session on the spot - original allocators back when
 * ours are still on top, final counters, STOPPED, region unmapped. So a target that
 * allocates stops within microseconds; a fully idle one stops at its next allocations (memsnap
 * does not wait for it past a bounded time), or when a new memsnap_hook_start finds the stale
 * session and sends a short-lived reaper thread to end it under the GIL.
 *
 * Threads we still create (install, reaper, and the failure path below) block every signal, so
 * process-directed signals always reach Python's threads.
 *
 * Return values of memsnap_hook_start (negative errno; else the memfd's descriptor number):
 *   -EINVAL  the config is malformed (magic, abi, size, rate, ring size, domains, offsets)
 *   -EPROTO  the config was built for another Python minor version than the running one
 *   -ENOSYS  a needed C API symbol is missing (not a CPython process?)
 *   -EAGAIN  the interpreter is not initialized, or the previous session is still stopping
 *            (its memsnap vanished, and the target has not allocated since; a reaper thread
 *            is ending it): retry shortly
 *   -EBUSY   another memsnap's session is live (fresh heartbeat)
 *   others   from memfd_create, pthread_create (attach mode); ftruncate, mmap (run mode)
 * When the install thread cannot set the region up (out of memory), it closes the memfd and
 * the session ends: memsnap sees the descriptor go away while it waits for STARTING.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "hook_abi.h"
#include "hook_alloc.h"
#include "hook_python.h"
#include "hook_record.h"
#include "hook_safe.h"
#include "hook_stack.h"

#define HOOK_POLL_NS        (50 * 1000000L) /* the failure path's wait for memsnap */
#define HOOK_HEADER_BYTES   4096u
#define HOOK_RING_MIN       (64u << 10)
#define HOOK_RING_MAX       (1ull << 30)
#define HOOK_ROUTE_MIN_RATE (64u << 10) /* bytes: the lowest rate whose samples are routed */
#define HOOK_THREAD_STACK   (256u << 10)

enum session_phase {
    PHASE_IDLE = 0,    /* no session: a start may begin one */
    PHASE_RUNNING = 1, /* a session exists: its region is mapped here */
};

static struct {
    uint32_t phase; /* enum session_phase, changed atomically */
    struct hook_python api;
    int api_ready;
    struct mshook_config cfg;
    struct mshook_shared *shared;
    size_t region_bytes;
    int fd;                /* the memfd until memsnap has mapped it, then -1 */
    int installed;         /* our wrappers are in the allocator chain; changed under the GIL */
    int ticking;           /* a tick is running (GIL held): no re-entry */
    uint64_t heartbeat_ns; /* last heartbeat a tick saw (for -EBUSY); relaxed */
    uint32_t timeout_ms;
    uint32_t reaping; /* a reaper thread is under way; atomic */
    int atfork_registered;
} session = {.fd = -1};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void state_set(uint32_t state)
{
    __atomic_store_n(&session.shared->state, state, __ATOMIC_RELEASE);
}

static void state_fail(const char *why)
{
    snprintf(session.shared->error, sizeof session.shared->error, "%s", why);
    state_set(MSHOOK_STATE_FAILED);
}

static int config_check(const struct mshook_config *cfg, const struct hook_python *api)
{
    if (cfg->magic != MSHOOK_MAGIC || cfg->abi != MSHOOK_ABI ||
        cfg->size != sizeof(struct mshook_config))
        return -EINVAL;
    if (cfg->rate == 0 || cfg->ring_bytes < HOOK_RING_MIN || cfg->ring_bytes > HOOK_RING_MAX ||
        (cfg->ring_bytes & (cfg->ring_bytes - 1)) != 0)
        return -EINVAL;
    if (cfg->domains == 0 || (cfg->domains & ~(MSHOOK_DOMAIN_MEM | MSHOOK_DOMAIN_OBJ)) != 0)
        return -EINVAL;
    if (cfg->heartbeat_timeout_ms < 100 || cfg->heartbeat_timeout_ms > 3600u * 1000u)
        return -EINVAL;
    if (cfg->max_frames == 0 || cfg->max_frames > MSHOOK_MAX_FRAMES)
        return -EINVAL;
    if (cfg->stack_slots < MSHOOK_STACK_SLOTS_MIN || cfg->stack_slots > MSHOOK_STACK_SLOTS_MAX ||
        (cfg->stack_slots & (cfg->stack_slots - 1)) != 0)
        return -EINVAL;
    if ((cfg->flags & ~(MSHOOK_F_SYNC_INSTALL | MSHOOK_F_WAIT_WHEN_FULL)) != 0)
        return -EINVAL;
    struct hook_stack_layout layout;
    hook_stack_layout_from(&layout, cfg, api->code_type, api->bytes_type);
    if (hook_stack_layout_check(&layout) != 0)
        return -EINVAL;
    struct hook_code_layout code_layout;
    hook_code_layout_from(&code_layout, cfg, api->unicode_type, api->bytes_type);
    if (hook_code_layout_check(&code_layout) != 0)
        return -EINVAL;
    /* Offsets for another version would make the in-process walk read garbage: refuse. */
    if ((int)((cfg->py_version_hex >> 24) & 0xff) != api->major ||
        (int)((cfg->py_version_hex >> 16) & 0xff) != api->minor)
        return -EPROTO;
    return 0;
}

/* The shared region's memfd (session.fd). Returns 0 or -errno. */
static int region_open(void)
{
    int fd = memfd_create(MSHOOK_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    session.fd = fd;
    return 0;
}

/* Sizes, seals and maps the memfd as header + ring and writes the header, state STARTING
 * last (release): memsnap maps the region only once it sees that. Returns 0 or -errno. */
static int region_map(const struct mshook_config *cfg)
{
    size_t table_bytes = hook_slots_bytes(cfg->stack_slots);
    size_t bytes = HOOK_HEADER_BYTES + (size_t)cfg->ring_bytes + table_bytes;
    if (ftruncate(session.fd, (off_t)bytes) != 0 ||
        fcntl(session.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        return -errno;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, session.fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    struct mshook_shared *s = p;
    s->magic = MSHOOK_MAGIC;
    s->abi = MSHOOK_ABI;
    s->header_bytes = HOOK_HEADER_BYTES;
    s->ring_bytes = cfg->ring_bytes;
    s->table_bytes = table_bytes;
    s->hook_pid = (int32_t)getpid();
    s->memsnap_pid = cfg->memsnap_pid;
    s->config = *cfg;
    s->heartbeat_ns = now_ns(); /* memsnap has one timeout to map the region and heartbeat */
    session.shared = s;
    session.region_bytes = bytes;
    state_set(MSHOOK_STATE_STARTING);
    return 0;
}

/* The recorder over the mapped region. Returns 0, -ENOMEM, or -ENOTRECOVERABLE when the hook
 * cannot read memory fault-safely here (it would have to trust every frame). */
static int recorder_start(const struct mshook_config *cfg)
{
    int why = hook_safe_begin();
    if (why != 0) {
        snprintf(session.shared->error, sizeof session.shared->error,
                 "the hook cannot read memory fault-safely in this process (process_vm_readv: "
                 "%s), so it would have to trust every frame; nothing was installed",
                 strerror(why));
        return -ENOTRECOVERABLE;
    }
    struct hook_stack_layout layout;
    hook_stack_layout_from(&layout, cfg, session.api.code_type, session.api.bytes_type);
    struct hook_code_layout code_layout;
    hook_code_layout_from(&code_layout, cfg, session.api.unicode_type, session.api.bytes_type);
    unsigned char *ring = (unsigned char *)session.shared + HOOK_HEADER_BYTES;
    if (hook_recorder_begin(cfg, session.shared, ring, ring + cfg->ring_bytes, &layout,
                            &code_layout, session.api.tstate_get) != 0)
        return -ENOMEM;
    return 0;
}

static void region_release(void)
{
    if (session.fd >= 0) {
        close(session.fd);
        session.fd = -1;
    }
    if (session.shared) {
        munmap(session.shared, session.region_bytes);
        session.shared = NULL;
    }
}

static void session_tick(void);

/* With the GIL held by the caller: wrap the allocators and start recording. */
static int recording_begin_locked(void)
{
    /* Below this rate the 513-byte routed blocks would weigh on the heap (up to ~13% of it at
     * 4 KiB): frees are wrapped instead. */
    int route = session.cfg.rate >= HOOK_ROUTE_MIN_RATE && hook_alloc_can_route_raw(&session.api);
    hook_recorder.layout.fingerprint = (uint32_t)route; /* before any wrapper can walk */
    if (hook_alloc_install(&session.api, session.cfg.domains, route, session_tick) != 0)
        return -1;
    hook_alloc_locate(&session.api, session.shared);
    __atomic_store_n(&session.shared->frees_via_raw, (uint32_t)route, __ATOMIC_RELAXED);
    session.installed = 1;
    __atomic_store_n(&session.shared->start_ns, now_ns(), __ATOMIC_RELAXED);
    state_set(MSHOOK_STATE_RECORDING);
    return 0;
}

/* Is it safe to wait for the GIL? Not before initialization, nor once finalization began
 * (a thread asking for the GIL then may be parked forever or exited by the runtime). */
static int python_usable(void)
{
    return session.api.is_initialized() && !session.api.is_finalizing();
}

/* With the GIL held: the end of the session. The caller may be a wrapper in the middle of an
 * allocation: it finishes through the original allocator (its slot is static, never
 * unmapped), and no wrapper touches the region once the recorder has ended. */
static void session_end_locked(void)
{
    if (session.installed) {
        state_set(MSHOOK_STATE_STOPPING);
        /* Late in finalization the allocating thread may not really own the interpreter
         * any more: leave the chain alone, ours become pass-throughs. */
        if (session.api.is_finalizing())
            hook_alloc_disable();
        else
            hook_alloc_uninstall(&session.api);
        session.installed = 0;
    }
    hook_recorder_end();
    if (__atomic_load_n(&session.shared->state, __ATOMIC_ACQUIRE) != MSHOOK_STATE_FAILED)
        state_set(MSHOOK_STATE_STOPPED);
    region_release();
    __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
}

/* Has memsnap asked to stop, or stopped heartbeating? Notes the heartbeat for -EBUSY. */
static int session_stop_due(void)
{
    struct mshook_shared *s = session.shared;
    uint64_t beat = __atomic_load_n(&s->heartbeat_ns, __ATOMIC_ACQUIRE);
    __atomic_store_n(&session.heartbeat_ns, beat, __ATOMIC_RELAXED);
    if (__atomic_load_n(&s->stop_request, __ATOMIC_ACQUIRE))
        return 1;
    uint64_t now = now_ns();
    return now > beat && now - beat > (uint64_t)session.timeout_ms * 1000000ull;
}

/* The periodic duties, from a wrapper, GIL held (see hook_alloc_install). */
static void session_tick(void)
{
    if (session.ticking || !session.installed)
        return;
    session.ticking = 1;
    if (session.fd >= 0 && __atomic_load_n(&session.shared->mapped, __ATOMIC_ACQUIRE)) {
        close(session.fd); /* memsnap holds its own mapping: the target keeps no fd */
        session.fd = -1;
    }
    if (session_stop_due())
        session_end_locked();
    else
        hook_recorder_publish();
    session.ticking = 0;
}

/* Failure before anything was wrapped: FAILED is published; keep the region until memsnap has
 * mapped it and read why (or is gone), then release it. Only failure paths wait here.
 * recorder_begun: whether hook_recorder_begin succeeded (then the recorder is ended too). */
static void failure_linger(int recorder_begun)
{
    uint64_t timeout_ns = (uint64_t)session.timeout_ms * 1000000ull;
    for (;;) {
        struct timespec pause = {0, HOOK_POLL_NS};
        nanosleep(&pause, NULL); /* every signal is blocked here: no EINTR */
        struct mshook_shared *s = session.shared;
        uint64_t beat = __atomic_load_n(&s->heartbeat_ns, __ATOMIC_ACQUIRE);
        __atomic_store_n(&session.heartbeat_ns, beat, __ATOMIC_RELAXED);
        if (__atomic_load_n(&s->stop_request, __ATOMIC_ACQUIRE))
            break;
        uint64_t now = now_ns();
        if (now > beat && now - beat > timeout_ns)
            break;
    }
    if (recorder_begun)
        hook_recorder_end();
    region_release();
    __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
}

/* Attach mode: take the GIL, wrap, RECORDING, release, exit. Nothing of the session is touched
 * after the GIL is released: a tick may end the session and a new one begin right away. */
static void *install_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "memsnap-hook", 0, 0, 0);
    if (region_map(&session.cfg) != 0) {
        /* Nothing to report through: closing the memfd tells memsnap, which waits for it. */
        region_release();
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return NULL;
    }
    int started = recorder_start(&session.cfg);
    if (started == -ENOTRECOVERABLE) {
        state_set(MSHOOK_STATE_FAILED); /* the error was written */
        failure_linger(0);
        return NULL;
    }
    if (started != 0) {
        state_fail("the hook could not map its tables (out of memory)");
        failure_linger(0);
        return NULL;
    }
    if (!python_usable()) {
        state_fail("the interpreter is finalizing; nothing was installed");
        failure_linger(1);
        return NULL;
    }
    int gil = session.api.gil_ensure();
    int rc = recording_begin_locked();
    if (rc != 0)
        state_fail("no free allocator wrapper slot (too many sessions were re-wrapped)");
    session.api.gil_release(gil);
    if (rc != 0)
        failure_linger(1);
    return NULL;
}

static void *linger_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "memsnap-hook", 0, 0, 0);
    failure_linger(1);
    return NULL;
}

/* A session whose ticks stopped (idle target) looked stale to memsnap_hook_start: under the
 * GIL, end it if memsnap asked or is gone, else just note its fresh heartbeat (-EBUSY next). */
static void *reaper_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "memsnap-hook", 0, 0, 0);
    if (python_usable()) {
        int gil = session.api.gil_ensure();
        /* installed is only changed under the GIL; without it the session is the install
         * thread's or the failure path's, which end it themselves. */
        if (__atomic_load_n(&session.phase, __ATOMIC_ACQUIRE) == PHASE_RUNNING &&
            session.installed && !session.ticking && session_stop_due())
            session_end_locked();
        session.api.gil_release(gil);
    }
    __atomic_store_n(&session.reaping, 0, __ATOMIC_RELEASE);
    return NULL;
}

/* A detached thread that must never take a process-directed signal (SIGINT belongs to
 * Python's main thread), so it starts with every signal blocked: through its attributes when
 * libc can (glibc >= 2.32, looked up at run time so that the hook still loads into older
 * ones), else by blocking them around pthread_create, two more syscalls in the hijacked
 * thread. */
static int thread_start(void *(*fn)(void *))
{
    static int (*set_sigmask)(pthread_attr_t *, const sigset_t *);
    static int looked_up;
    if (!looked_up) {
        set_sigmask = (int (*)(pthread_attr_t *, const sigset_t *))dlsym(
            RTLD_DEFAULT, "pthread_attr_setsigmask_np");
        looked_up = 1;
    }
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, HOOK_THREAD_STACK);
    sigset_t all, old;
    sigfillset(&all);
    int masked_by_attr = set_sigmask && set_sigmask(&attr, &all) == 0;
    if (!masked_by_attr)
        pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, fn, NULL);
    if (!masked_by_attr)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return -rc;
}

/* In a fork child: the parent's session is not ours. Our wrappers stay in the child's chain
 * as pass-throughs, the region and descriptor go, and a later session may start afresh. */
static void fork_child(void)
{
    if (__atomic_load_n(&session.phase, __ATOMIC_RELAXED) != PHASE_RUNNING)
        return;
    hook_alloc_disable();
    hook_recorder_forget();
    region_release();
    session.installed = 0;
    session.ticking = 0;
    __atomic_store_n(&session.reaping, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
}

static int session_start(const struct mshook_config *cfg)
{
    if (!cfg)
        return -EINVAL;
    if (!session.api_ready) {
        const char *missing = NULL;
        if (hook_python_resolve(&session.api, &missing) != 0)
            return -ENOSYS;
        session.api_ready = 1;
    }
    struct mshook_config copy = *cfg;
    int rc = config_check(&copy, &session.api);
    if (rc != 0)
        return rc;
    if (!session.api.is_initialized())
        return -EAGAIN;

    uint32_t idle = PHASE_IDLE;
    if (!__atomic_compare_exchange_n(&session.phase, &idle, PHASE_RUNNING, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED)) {
        uint64_t beat = __atomic_load_n(&session.heartbeat_ns, __ATOMIC_RELAXED);
        uint64_t now = now_ns();
        int fresh = beat >= now || now - beat <= (uint64_t)session.timeout_ms * 1000000ull;
        if (fresh)
            return -EBUSY;
        /* Stale as far as the ticks know: memsnap died, or the target is idle and no tick
         * ran. A reaper finds out under the GIL; the caller's retry sees the outcome. */
        uint32_t none = 0;
        if (__atomic_compare_exchange_n(&session.reaping, &none, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED) &&
            thread_start(reaper_main) != 0)
            __atomic_store_n(&session.reaping, 0, __ATOMIC_RELEASE);
        return -EAGAIN;
    }
    session.cfg = copy;
    session.timeout_ms = copy.heartbeat_timeout_ms;
    __atomic_store_n(&session.heartbeat_ns, now_ns(), __ATOMIC_RELAXED);
    if (!session.atfork_registered) {
        if (pthread_atfork(NULL, NULL, fork_child) != 0) {
            __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
            return -ENOMEM;
        }
        session.atfork_registered = 1;
    }

    session.installed = 0;
    session.ticking = 0;
    rc = region_open();
    if (rc != 0) {
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return rc;
    }
    int fd = session.fd;
    if (!(copy.flags & MSHOOK_F_SYNC_INSTALL)) {
        rc = thread_start(install_main); /* which sets the region up */
        if (rc != 0) {
            region_release();
            __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        }
        return rc != 0 ? rc : fd;
    }
    rc = region_map(&copy);
    if (rc == 0)
        rc = recorder_start(&copy);
    if (rc != 0) {
        region_release();
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return rc;
    }
    if (recording_begin_locked() == 0)
        return fd; /* recording, and no thread: the wrappers do the rest */
    state_fail("no free allocator wrapper slot (too many sessions were re-wrapped)");
    rc = thread_start(linger_main);
    if (rc != 0) {
        hook_recorder_end();
        region_release();
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return rc;
    }
    return fd;
}

__attribute__((visibility("default"))) int memsnap_hook_start(const struct mshook_config *cfg)
{
    int saved_errno = errno; /* the hijacked thread's own, which memsnap no longer saves */
    int rc = session_start(cfg);
    errno = saved_errno;
    return rc;
}
