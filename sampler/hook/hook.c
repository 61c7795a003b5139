/*
 * hook.c - the injected library's entry point, its session, and its control thread.
 *
 * memsnap_hook_start() runs in a thread memsnap hijacked at a safe point: it holds no GIL and
 * may not block or call into Python, so it only validates the config, creates the shared
 * region (a sealed memfd) and starts the control thread. The control thread does everything
 * that needs the GIL (wrapping and unwrapping the allocators), closes the memfd once memsnap
 * has mapped it, and is the watchdog: it stops the session when memsnap asks or when memsnap's
 * heartbeat goes stale (memsnap died), so the target never keeps recording for nobody.
 *
 * Return values of memsnap_hook_start (negative errno):
 *   -EINVAL  the config is malformed (magic, abi, size, rate, ring size, domains, offsets)
 *   -EPROTO  the config was built for another Python minor version than the running one
 *   -ENOSYS  a needed C API symbol is missing (not a CPython process?)
 *   -EAGAIN  the interpreter is not initialized, or the previous session is still stopping
 *            (its memsnap vanished less than a poll ago): retry shortly
 *   -EBUSY   another memsnap's session is live (fresh heartbeat)
 *   others   from memfd_create, ftruncate, mmap, pthread_create
 */
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
#include "hook_stack.h"

#define HOOK_POLL_NS      (50 * 1000000L)
#define HOOK_HEADER_BYTES 4096u
#define HOOK_RING_MIN     (64u << 10)
#define HOOK_RING_MAX     (1ull << 30)
#define HOOK_THREAD_STACK (256u << 10)

enum session_phase {
    PHASE_IDLE = 0,    /* no session: a start may begin one */
    PHASE_RUNNING = 1, /* a control thread owns the session */
};

static struct {
    uint32_t phase; /* enum session_phase, changed atomically */
    struct hook_python api;
    int api_ready;
    struct mshook_config cfg;
    struct mshook_shared *shared;
    size_t region_bytes;
    int fd;                /* the memfd until memsnap has mapped it, then -1 */
    int installed;         /* our wrappers are in the allocator chain */
    uint64_t heartbeat_ns; /* last heartbeat the control thread saw (for -EBUSY) */
    uint32_t timeout_ms;
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
    if ((cfg->flags & ~MSHOOK_F_SYNC_INSTALL) != 0)
        return -EINVAL;
    struct hook_stack_layout layout;
    hook_stack_layout_from(&layout, cfg, api->code_type);
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

/* The shared region: a sealed memfd of header + ring, mapped here. Returns 0 or -errno. */
static int region_create(const struct mshook_config *cfg)
{
    size_t bytes = HOOK_HEADER_BYTES + (size_t)cfg->ring_bytes;
    int fd = memfd_create(MSHOOK_MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (ftruncate(fd, (off_t)bytes) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        close(fd);
        return rc;
    }
    struct mshook_shared *s = p;
    s->magic = MSHOOK_MAGIC;
    s->abi = MSHOOK_ABI;
    s->header_bytes = HOOK_HEADER_BYTES;
    s->ring_bytes = cfg->ring_bytes;
    s->hook_pid = (int32_t)getpid();
    s->memsnap_pid = cfg->memsnap_pid;
    s->config = *cfg;
    s->heartbeat_ns = now_ns(); /* memsnap has one timeout to map the region and heartbeat */
    s->state = MSHOOK_STATE_STARTING;
    session.shared = s;
    session.region_bytes = bytes;
    session.fd = fd;
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

/* With the GIL held by the caller: wrap the allocators and start recording. */
static int recording_begin_locked(void)
{
    if (hook_alloc_install(&session.api, session.cfg.domains) != 0)
        return -1;
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

static void recording_begin(void)
{
    if (!python_usable()) {
        state_fail("the interpreter is finalizing; nothing was installed");
        return;
    }
    int gil = session.api.gil_ensure();
    if (recording_begin_locked() != 0)
        state_fail("no free allocator wrapper slot (too many sessions were re-wrapped)");
    session.api.gil_release(gil);
}

static void recording_end(void)
{
    if (session.installed) {
        state_set(MSHOOK_STATE_STOPPING);
        if (python_usable()) {
            int gil = session.api.gil_ensure();
            hook_alloc_uninstall(&session.api);
            session.api.gil_release(gil);
        } else {
            hook_alloc_disable();
        }
        session.installed = 0;
    }
    hook_recorder_end();
    if (__atomic_load_n(&session.shared->state, __ATOMIC_ACQUIRE) != MSHOOK_STATE_FAILED)
        state_set(MSHOOK_STATE_STOPPED);
}

/* Polls until memsnap asks us to stop or stops heartbeating. */
static void watchdog_wait(void)
{
    uint64_t timeout_ns = (uint64_t)session.timeout_ms * 1000000ull;
    for (;;) {
        struct timespec pause = {0, HOOK_POLL_NS};
        nanosleep(&pause, NULL); /* every signal is blocked here: no EINTR */
        struct mshook_shared *s = session.shared;
        if (session.fd >= 0 && __atomic_load_n(&s->mapped, __ATOMIC_ACQUIRE)) {
            close(session.fd); /* memsnap holds its own mapping: the target keeps no fd */
            session.fd = -1;
        }
        uint64_t beat = __atomic_load_n(&s->heartbeat_ns, __ATOMIC_ACQUIRE);
        __atomic_store_n(&session.heartbeat_ns, beat, __ATOMIC_RELAXED);
        if (__atomic_load_n(&s->stop_request, __ATOMIC_ACQUIRE))
            return;
        uint64_t now = now_ns();
        if (now > beat && now - beat > timeout_ns)
            return;
        hook_recorder_publish();
    }
}

static void *control_main(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "memsnap-hook", 0, 0, 0);
    if (!session.installed)
        recording_begin();
    watchdog_wait();
    recording_end();
    region_release();
    __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
    return NULL;
}

/* The control thread must never take a process-directed signal (SIGINT belongs to Python's
 * main thread), so it starts with every signal blocked. */
static int control_start(void)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, HOOK_THREAD_STACK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, control_main, NULL);
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
    __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
}

__attribute__((visibility("default"))) int memsnap_hook_start(const struct mshook_config *cfg)
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
        return fresh ? -EBUSY : -EAGAIN;
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

    rc = region_create(&copy);
    if (rc != 0) {
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return rc;
    }
    struct hook_stack_layout layout;
    hook_stack_layout_from(&layout, &copy, session.api.code_type);
    struct hook_code_layout code_layout;
    hook_code_layout_from(&code_layout, &copy, session.api.unicode_type, session.api.bytes_type);
    if (hook_recorder_begin(&copy, session.shared,
                            (unsigned char *)session.shared + HOOK_HEADER_BYTES, &layout,
                            &code_layout, session.api.tstate_get) != 0) {
        region_release();
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return -ENOMEM;
    }
    session.installed = 0;
    if ((copy.flags & MSHOOK_F_SYNC_INSTALL) && recording_begin_locked() != 0)
        state_fail("no free allocator wrapper slot (too many sessions were re-wrapped)");

    int fd = session.fd;
    rc = control_start();
    if (rc != 0) {
        if (session.installed) /* the caller still holds the GIL */
            hook_alloc_uninstall(&session.api);
        session.installed = 0;
        hook_recorder_end();
        region_release();
        __atomic_store_n(&session.phase, PHASE_IDLE, __ATOMIC_RELEASE);
        return rc;
    }
    return fd;
}
