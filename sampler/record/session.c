/*
 * session.c - one attached process (see session.h): refuse early and clearly, inject the hook,
 * pump its ring into the collector, stop it, and assemble the profile.
 *
 * Decisions:
 *   - The target exiting mid-window is not an error: the session keeps what it drained
 *     (our mapping of the ring outlives the process), and the profile is written with the
 *     duration actually recorded; the command says so and exits 0.
 *   - Time zero of the profile (timeline, duration) is when the hook reported RECORDING, not
 *     when memsnap started: the window is what the hook saw.
 *   - Code objects are named by the hook's CODE / CODE_GONE records, in ring order, into a
 *     code table (code_table.h): no remote read per frame, and code objects that die before
 *     the drain keep their names. Thread labels are still read remotely, once per drain.
 */
#include "session.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "code_table.h"
#include "collector.h"
#include "hook/hook_abi.h"
#include "hook_blob.h"
#include "hook_config.h"
#include "hook_ring_wait.h"
#include "inject_lib.h"
#include "pyruntime.h"
#include "remote.h"
#include "ring_reader.h"
#include "session_resolve.h"
#include "timeline.h"

struct session {
    pid_t pid;
    struct session_options opt;
    struct pyruntime rt;
    struct code_table *codes;
    struct session_resolve resolve;
    int resolve_ready;
    struct profile *profile;
    struct collector *collector;
    struct ring_reader ring;
    int ring_open;
    struct timeline tl;
    int tl_open;

    enum session_phase phase;
    int target_exited;
    int exit_signal;        /* the signal that killed the target, 0 when unknown or none */
    int allocator_replaced; /* the target replaced our allocator wrappers (session.h) */
    int64_t alloc_ok_ns;    /* the last poll that saw every wrapper still in place */
    int stop_requested;
    int64_t stop_deadline_ns;
    int built;
    int64_t attach_start_ns; /* CLOCK_MONOTONIC when session_attach began */
    int64_t record_start_ns; /* CLOCK_MONOTONIC when the hook reported RECORDING */
    int64_t record_end_ns;
    int64_t start_unix_ns;
    uint64_t events;
    struct mshook_shared counters; /* last snapshot of the hook's header */
    struct inject_result inject;
    char command[4096];
    ms_error event_err; /* why the last drain callback failed */
};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Reads /proc/PID/stat into buf (n bytes) and returns where its third field (the state
 * letter) starts, after the command name, which may hold spaces and parentheses; NULL when the
 * process is gone or the text does not parse. */
static char *read_stat_fields(pid_t pid, char *buf, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t got = read(fd, buf, n - 1);
    close(fd);
    if (got <= 0)
        return NULL;
    buf[got] = 0;
    char *paren = strrchr(buf, ')');
    if (!paren || paren[1] != ' ' || !paren[2])
        return NULL;
    return paren + 2;
}

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...), 0 if the process is gone. */
static char process_state(pid_t pid)
{
    char buf[512];
    const char *state = read_stat_fields(pid, buf, sizeof buf);
    return state ? state[0] : 0;
}

/* How a process that is gone or a zombie died, from its zombie's /proc/PID/stat exit_code
 * (field 52, a wait status, Linux 3.5+): the signal that killed it, 0 when it exited or when
 * nothing can tell any more (its parent reaped it: the pid is gone). */
static int process_exit_signal(pid_t pid)
{
    char buf[2048];
    char *p = read_stat_fields(pid, buf, sizeof buf);
    if (!p || (p[0] != 'Z' && p[0] != 'X'))
        return 0;
    /* p is field 3 (state): field 52 is 49 fields further */
    for (int field = 3; field < 52; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    char *end;
    long status = strtol(p, &end, 10);
    if (end == p || status < 0)
        return 0;
    int sig = (int)(status & 0x7f);
    return sig > 0 && sig < 0x7f ? sig : 0;
}

/* "SIGSEGV" for SIGSEGV: glibc's sigabbrev_np is 2.32+, so a table of the usual ones. */
static const char *sigabbrev(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
                 {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"},
                 {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"},
                 {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
                 {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
                 {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
    static char other[24];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig)
            return names[i].name;
    snprintf(other, sizeof other, "signal %d", sig);
    return other;
}

static int process_gone(pid_t pid)
{
    char st = process_state(pid);
    return st == 0 || st == 'Z' || st == 'X';
}

/* The command line, arguments joined by spaces (NULs in between), truncated to fit. */
static void read_cmdline(pid_t pid, char *out, size_t n)
{
    char path[64];
    out[0] = 0;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t len = read(fd, out, n - 1);
    close(fd);
    if (len <= 0)
        return;
    out[len] = 0;
    while (len > 0 && out[len - 1] == 0)
        len--;
    for (ssize_t i = 0; i < len; i++)
        if (out[i] == 0)
            out[i] = ' ';
    out[len] = 0;
}

/* Refuses what cannot be attached, before anything touches the target. */
static int check_target(pid_t pid, ms_error *err)
{
    char st = process_state(pid);
    if (st == 0)
        return ms_error_set(err, "no process with pid %d exists", (int)pid);
    if (st == 'Z' || st == 'X')
        return ms_error_set(err, "process %d exited before memsnap attached to it (it is a zombie)",
                            (int)pid);
    if (st == 'T')
        return ms_error_set(err,
                            "process %d is stopped (state T); resume it with 'kill -CONT %d' "
                            "and attach again",
                            (int)pid, (int)pid);
    if (st == 't')
        return ms_error_set(err,
                            "process %d is stopped by a debugger (state t); detach the "
                            "debugger and attach again",
                            (int)pid);
    return 0;
}

static int on_event(void *ctx, const struct ring_event *ev)
{
    struct session *s = ctx;
    s->events++;
    if (ev->type == MSHOOK_REC_FREE) {
        collector_release(s->collector, ev->addr);
        return 0;
    }
    if (ev->type == MSHOOK_REC_CODE)
        return code_table_add(s->codes, ev->code, &s->event_err);
    if (ev->type == MSHOOK_REC_CODE_GONE) {
        code_table_remove(s->codes, ev->addr);
        return 0;
    }
    if (ev->type == MSHOOK_REC_STACK)
        return collector_stack(s->collector, ev->slot, ev->tstate, ev->frames, ev->nframes,
                               ev->flags, &s->event_err);
    if (ev->type != MSHOOK_REC_ALLOC)
        return 0;
    return collector_alloc(s->collector, ev->addr, ev->size, ev->slot, &s->event_err);
}

/* Everything of the session except the ring (whose opening ends the attach). */
static int session_prepare(struct session *s, ms_error *err)
{
    s->codes = code_table_new(s->rt.off);
    if (!s->codes)
        return ms_error_errno(err, ENOMEM, "creating the code table");
    if (session_resolve_init(&s->resolve, &s->rt, s->codes, err) < 0)
        return -1;
    s->resolve_ready = 1;
    s->profile = profile_new();
    if (!s->profile)
        return ms_error_errno(err, ENOMEM, "creating the profile");
    struct stacks_resolver r = session_resolve_resolver(&s->resolve);
    struct collector_options co = {.rate = s->opt.rate,
                                   .track_peak = s->opt.track_peak,
                                   .stack_slots = hook_config_default_slots(s->opt.rate)};
    s->collector = collector_new(s->profile, &r, &co);
    if (!s->collector)
        return ms_error_errno(err, ENOMEM, "creating the collector");
    if (timeline_open(&s->tl, s->pid, err) < 0)
        return -1;
    s->tl_open = 1;
    return 0;
}

/* Ends a failed attach. A target that exited meanwhile gets one sentence, whichever step
 * noticed it first (reading its maps or memory, ptrace, the hook's start, its ring). */
static int attach_failed(struct session *s, pid_t pid, ms_error *err)
{
    session_free(s);
    /* A process in exit has already lost its mappings a moment before it shows as a zombie:
     * give it up to 100 ms to get there. */
    char st = process_state(pid);
    for (int i = 0; i < 20 && st != 0 && st != 'Z' && st != 'X'; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        st = process_state(pid);
    }
    if (st == 0 || st == 'Z' || st == 'X')
        ms_error_set(err,
                     "process %d exited while memsnap was attaching to it; nothing was recorded",
                     (int)pid);
    return -1;
}

int session_attach(pid_t pid, const struct session_options *opt, struct session **out,
                   ms_error *err)
{
    *out = NULL;
    if (check_target(pid, err) < 0)
        return -1;
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return ms_error_errno(err, ENOMEM, "attaching to %d", (int)pid);
    s->pid = pid;
    s->opt = *opt;
    s->phase = SESSION_INSTALLING;
    s->attach_start_ns = clock_ns(CLOCK_MONOTONIC);
    read_cmdline(pid, s->command, sizeof s->command);
    if (pyruntime_locate(pid, &s->rt, err) < 0 || session_prepare(s, err) < 0) {
        return attach_failed(s, pid, err);
    }

    struct mshook_config cfg;
    struct hook_config_params params = {
        .rate = opt->rate,
        .heartbeat_timeout_ms = SESSION_HEARTBEAT_TIMEOUT_MS,
        .memsnap_pid = (int32_t)getpid(),
    };
    if (getrandom(&params.seed, sizeof params.seed, GRND_NONBLOCK) != sizeof params.seed)
        params.seed = (uint64_t)clock_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 32);
    if (hook_config_build(&cfg, s->rt.off, s->rt.version_hex, &params, err) < 0) {
        ms_error_prefix(err, "process %d", (int)pid);
        return attach_failed(s, pid, err);
    }
    /* -EAGAIN: the interpreter is not initialised yet, or a previous session (say, of a
     * killed memsnap) is still stopping; both pass within about SESSION_START_RETRY_MS. */
    int fd = -EAGAIN;
    int64_t give_up = s->attach_start_ns + SESSION_START_RETRY_MS * 1000000ll;
    for (;;) {
        if (inject_library(pid, memsnap_hook_blob, hook_blob_size(), MSHOOK_START_SYMBOL, &cfg,
                           sizeof cfg, &s->inject, err) < 0) {
            return attach_failed(s, pid, err);
        }
        fd = s->inject.start_result;
        if (fd != -EAGAIN || clock_ns(CLOCK_MONOTONIC) >= give_up)
            break;
        for (int i = 0; i < 20; i++) {
            if (opt->idle)
                opt->idle(opt->idle_ctx);
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    if (fd < 0) {
        if (fd == -EBUSY)
            ms_error_set(err,
                         "process %d is already being recorded by another memsnap; wait for "
                         "it to finish (a killed memsnap's hook stops within 2 s)",
                         (int)pid);
        else if (fd == -EAGAIN)
            ms_error_set(err,
                         "process %d is not ready for the memsnap hook (the interpreter is "
                         "starting or shutting down, or a previous recording is still "
                         "stopping); try again",
                         (int)pid);
        else
            ms_error_errno(err, fd >= -4095 ? -fd : EINVAL,
                           "the memsnap hook could not start in process %d", (int)pid);
        return attach_failed(s, pid, err);
    }
    /* From here the hook runs; if we fail before mapping its ring, its watchdog stops it
     * (the heartbeat never starts). */
    if (hook_ring_wait(pid, fd, SESSION_RING_WAIT_MS, err) < 0 ||
        ring_reader_open(pid, fd, &s->ring, err) < 0) {
        ms_error_prefix(err, "process %d", (int)pid);
        return attach_failed(s, pid, err);
    }
    s->ring_open = 1;
    if (s->ring.stack_slots != cfg.stack_slots) {
        ms_error_set(err, "the memsnap hook of process %d has %u stack slots, not %u", (int)pid,
                     s->ring.stack_slots, cfg.stack_slots);
        return attach_failed(s, pid, err);
    }
    if (timeline_exclude(&s->tl, s->ring.map, s->ring.map_bytes, err) < 0) {
        return attach_failed(s, pid, err);
    }
    ring_reader_heartbeat(&s->ring);
    *out = s;
    return 0;
}

/* Drains what the hook has published; -1 on a corrupt ring or ENOMEM. */
static int session_drain(struct session *s, ms_error *err)
{
    collector_epoch(s->collector);
    s->event_err.msg[0] = 0;
    if (ring_reader_drain(&s->ring, on_event, s, err) < 0) {
        if (s->event_err.msg[0] && err)
            *err = s->event_err;
        return ms_error_prefix(err, "process %d", (int)s->pid);
    }
    ring_reader_counters(&s->ring, &s->counters);
    return 0;
}

static int64_t session_heap(const struct session *s)
{
    struct collector_stats st;
    collector_stats(s->collector, &st);
    return (int64_t)st.heap_estimate;
}

/* The end of a session: a last drain (records published before STOPPED, or before the
 * target died, are still in our mapping), a last timeline point, the ring unmapped. */
static int session_finish(struct session *s, int64_t now_ns, ms_error *err)
{
    int rc = session_drain(s, err);
    if (!s->record_end_ns)
        s->record_end_ns = now_ns;
    if (s->phase == SESSION_RECORDING && !s->target_exited)
        timeline_sample(&s->tl, s->record_end_ns - s->record_start_ns, session_heap(s), NULL);
    s->phase = SESSION_ENDED;
    timeline_exclude(&s->tl, NULL, 0, NULL); /* before the mapping it counts goes */
    ring_reader_close(&s->ring);
    s->ring_open = 0;
    return rc;
}

void session_request_stop(struct session *s, int64_t now_ns)
{
    if (s->stop_requested || !s->ring_open)
        return;
    s->stop_requested = 1;
    s->stop_deadline_ns = now_ns + SESSION_STOP_TIMEOUT_MS * 1000000ll;
    if (!s->record_end_ns && s->record_start_ns)
        s->record_end_ns = now_ns;
    ring_reader_request_stop(&s->ring);
}

/* Whether every allocator table the hook located still holds our wrapper (ctx and malloc),
 * read from the target's memory: 1 yes (or nothing to compare: an older hook, a table not
 * found), 0 when the target replaced it (PyMem_SetAllocator: tracemalloc.start or stop, a C
 * extension). A failed read says nothing (the target may be exiting): 1. */
static int allocator_still_ours(struct session *s)
{
    const struct mshook_shared *c = &s->counters;
    for (int d = 0; d < 3; d++) {
        if (!c->alloc_table[d])
            continue;
        uint64_t pair[2];
        if (remote_read(s->pid, c->alloc_table[d], pair, sizeof pair, NULL) < 0)
            return 1;
        if (pair[0] != c->alloc_ctx[d] || pair[1] != c->alloc_malloc[d])
            return 0;
    }
    return 1;
}

int session_poll(struct session *s, int64_t now_ns, ms_error *err)
{
    if (!s->ring_open)
        return 1;
    ring_reader_heartbeat(&s->ring);
    uint32_t state = ring_reader_state(&s->ring);
    if (s->phase == SESSION_INSTALLING && state == MSHOOK_STATE_RECORDING && !s->stop_requested) {
        s->phase = SESSION_RECORDING;
        s->record_start_ns = now_ns;
        s->alloc_ok_ns = now_ns;
        s->start_unix_ns = clock_ns(CLOCK_REALTIME);
    }
    if (session_drain(s, err) < 0) {
        session_request_stop(s, now_ns);
        return -1;
    }
    if (state == MSHOOK_STATE_FAILED) {
        ring_reader_counters(&s->ring, &s->counters);
        s->counters.error[sizeof s->counters.error - 1] = 0;
        if (s->phase == SESSION_INSTALLING && strstr(s->counters.error, "finalizing"))
            /* the exit race seen from the hook: the same sentence as attach_failed's */
            ms_error_set(err,
                         "process %d exited while memsnap was attaching to it (its interpreter "
                         "was finalizing); nothing was recorded",
                         (int)s->pid);
        else
            ms_error_set(err, "the memsnap hook failed in process %d: %s", (int)s->pid,
                         s->counters.error[0] ? s->counters.error : "no reason given");
        session_finish(s, now_ns, NULL);
        return -1;
    }
    if (s->phase == SESSION_RECORDING && !s->stop_requested) {
        if (allocator_still_ours(s)) {
            s->alloc_ok_ns = now_ns;
        } else {
            /* Nothing reached our wrappers since (at the latest) this poll: the recording
             * ends at the last poll that saw them in place, and the hook, no longer called,
             * cannot confirm a stop: wait for it briefly only. */
            s->allocator_replaced = 1;
            session_request_stop(s, now_ns);
            s->record_end_ns = s->alloc_ok_ns > s->record_start_ns ? s->alloc_ok_ns : now_ns;
            s->stop_deadline_ns = now_ns + SESSION_REPLACED_STOP_MS * 1000000ll;
        }
    }
    if (s->phase == SESSION_RECORDING && !s->stop_requested &&
        timeline_sample(&s->tl, now_ns - s->record_start_ns, session_heap(s), NULL) < 0)
        s->target_exited = 1;
    if (s->target_exited || process_gone(s->pid)) {
        s->target_exited = 1;
        if (!s->exit_signal)
            s->exit_signal = process_exit_signal(s->pid);
        return session_finish(s, now_ns, err) < 0 ? -1 : 1;
    }
    if (state == MSHOOK_STATE_STOPPED) /* asked to, or on its own (the interpreter exits) */
        return session_finish(s, now_ns, err) < 0 ? -1 : 1;
    /* No STOPPED in time is no failure: the hook stops at the target's next allocations (an
     * idle target makes none), and what it recorded until our stop is drained now. */
    if (s->stop_requested && now_ns >= s->stop_deadline_ns)
        return session_finish(s, now_ns, err) < 0 ? -1 : 1;
    return 0;
}

int session_stop(struct session *s, ms_error *err)
{
    if (!s->ring_open)
        return 0;
    session_request_stop(s, clock_ns(CLOCK_MONOTONIC));
    for (;;) {
        int rc = session_poll(s, clock_ns(CLOCK_MONOTONIC), err);
        if (rc < 0 && s->ring_open)
            continue; /* a drain error: keep stopping, the error is in err */
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static int64_t clamp64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

int session_note(const struct session *s, char *out, size_t n, int which)
{
    out[0] = 0;
    if (which == SESSION_NOTE_INVALID && s->counters.invalid_stacks)
        snprintf(out, n,
                 "the hook cut %llu sampled stacks at a frame it could not prove readable (a "
                 "corrupted interpreter, or a frame chain that loops); those samples end in "
                 "<unreadable frame: stack cut>",
                 (unsigned long long)s->counters.invalid_stacks);
    else if (which == SESSION_NOTE_REPLACED && s->allocator_replaced)
        snprintf(out, n,
                 "process %d replaced the allocator during the recording (PyMem_SetAllocator, "
                 "e.g. tracemalloc.start() or stop()); the recording ended there, after %.1f s, "
                 "and memsnap left the target's allocator in place",
                 (int)s->pid,
                 s->record_start_ns ? (double)(s->record_end_ns - s->record_start_ns) / 1e9 : 0.0);
    else if (which == SESSION_NOTE_EXIT && s->target_exited) {
        if (s->exit_signal)
            snprintf(out, n, "process %d was killed by %s during the recording", (int)s->pid,
                     sigabbrev(s->exit_signal));
        else
            snprintf(out, n, "process %d exited during the recording", (int)s->pid);
    }
    return out[0] ? 1 : 0;
}

/* Each note as a profile comment ("memsnap-note: ..."), so that the file says it too. */
static int session_notes(const struct session *s, struct profile *p, ms_error *err)
{
    for (int which = 0; which < SESSION_NOTES; which++) {
        char note[512], text[540];
        if (!session_note(s, note, sizeof note, which))
            continue;
        snprintf(text, sizeof text, "memsnap-note: %s", note);
        if (profile_add_comment(p, text) < 0)
            return ms_error_errno(err, errno, "building the profile");
    }
    return 0;
}

struct profile *session_build(struct session *s, ms_error *err)
{
    if (s->built)
        return s->profile;
    struct profile *p = s->profile;
    if (collector_finish(s->collector, err) < 0 || timeline_to_profile(&s->tl, p, err) < 0)
        return NULL;
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", s->rt.major, s->rt.minor, s->rt.micro);
    struct profile_meta *m = &p->meta;
    m->pid = s->pid;
    m->command = profile_intern(p, s->command);
    m->python_version = profile_intern(p, version);
    m->mode = profile_intern(p, "attach");
    if (m->command == UINT32_MAX || m->python_version == UINT32_MAX || m->mode == UINT32_MAX) {
        ms_error_errno(err, ENOMEM, "building the profile");
        return NULL;
    }
    int64_t duration = s->record_start_ns ? s->record_end_ns - s->record_start_ns : 0;
    m->start_unix_ns = s->start_unix_ns;
    m->duration_ns = duration > 0 ? duration : 0;
    m->rate = clamp64(s->opt.rate);
    m->dropped_events = clamp64(s->counters.dropped_events);
    m->dropped_bytes = clamp64(s->counters.dropped_bytes);
    m->peak_rss = s->tl.peak_rss;
    m->peak_heap = s->tl.peak_heap;
    m->peak_time_ns = s->tl.peak_heap_ns;
    m->total_alloc_bytes = clamp64(s->counters.alloc_bytes);
    m->total_alloc_count = clamp64(s->counters.alloc_count);
    if (session_notes(s, p, err) < 0)
        return NULL;
    p->time_nanos = m->start_unix_ns;
    p->duration_nanos = m->duration_ns;
    s->built = 1;
    return p;
}

void session_summary(const struct session *s, struct session_summary *out)
{
    memset(out, 0, sizeof *out);
    out->phase = s->phase;
    out->target_exited = s->target_exited;
    if (s->record_start_ns) {
        int64_t end = s->record_end_ns ? s->record_end_ns : clock_ns(CLOCK_MONOTONIC);
        out->elapsed_ns = end - s->record_start_ns;
        out->attach_ns = s->record_start_ns - s->attach_start_ns;
    }
    out->events = s->events;
    struct collector_stats st;
    collector_stats(s->collector, &st);
    out->samples = st.alloc_events;
    out->heap = session_heap(s);
    out->rss = s->tl.rss;
    out->dropped_events = s->counters.dropped_events;
    out->invalid_stacks = s->counters.invalid_stacks;
    out->exit_signal = s->exit_signal;
    out->allocator_replaced = s->allocator_replaced;
    out->frees_via_raw = s->counters.frees_via_raw == 1;
    out->inject_pause_ns = s->inject.stopped_ns;
    out->inject_total_ns = s->inject.wall_ns;
}

pid_t session_pid(const struct session *s)
{
    return s->pid;
}

void session_free(struct session *s)
{
    if (!s)
        return;
    if (s->ring_open)
        session_stop(s, NULL);
    if (s->tl_open)
        timeline_close(&s->tl);
    collector_free(s->collector);
    profile_free(s->profile);
    if (s->resolve_ready)
        session_resolve_free(&s->resolve);
    code_table_free(s->codes);
    free(s);
}

int session_ended(const struct session *s)
{
    return !s->ring_open;
}

void session_heartbeat(struct session *s)
{
    if (s->ring_open)
        ring_reader_heartbeat(&s->ring);
}
