/*
 * run_record.c - records a `memsnap run` child from Py_RunMain to its death (see run_record.h).
 *
 * The pieces are the ones `memsnap attach` uses (pyruntime, hook_config, the embedded hook,
 * ring_reader, code_table, collector with stacks and session_resolve, timeline, the profile
 * builder);
 * what differs is how the hook gets in (the launcher's stopped thread is adopted instead of a
 * thread seized at a safe point) and how the recording ends (the child dies; there is nobody
 * to ask to stop, and no memory left to read).
 */
#include "run_record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hook_blob.h"
#include "hook_config.h"
#include "inject_lib.h"

static int64_t clock_ns(clockid_t which)
{
    struct timespec ts;
    clock_gettime(which, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int on_event(void *ctx, const struct ring_event *ev)
{
    struct run_record *rr = ctx;
    if (ev->type == MSHOOK_REC_FREE) {
        collector_release(rr->collector, ev->addr);
        return 0;
    }
    if (ev->type == MSHOOK_REC_CODE)
        return code_table_add(rr->codes, ev->code, &rr->problem);
    if (ev->type == MSHOOK_REC_CODE_GONE) {
        code_table_remove(rr->codes, ev->addr);
        return 0;
    }
    if (ev->type == MSHOOK_REC_STACK)
        return collector_stack(rr->collector, ev->slot, ev->tstate, ev->frames, ev->nframes,
                               ev->flags, &rr->problem);
    return collector_alloc(rr->collector, ev->addr, ev->size, ev->slot, &rr->problem);
}

/* Records where the recording broke and asks the hook to stop (it restores the allocators;
 * the program runs on unprofiled). */
static void record_stop(struct run_record *rr, const char *why)
{
    if (rr->stopped)
        return;
    rr->stopped = 1;
    snprintf(rr->problem.msg, sizeof rr->problem.msg, "%s", why);
    ring_reader_request_stop(&rr->ring);
}

/* Drains what the hook has published. revalidate: the child is alive, so cached thread
 * labels are read again (thread states may have been reused since the last drain). */
static int drain(struct run_record *rr, int revalidate)
{
    if (!rr->ring_open || rr->ring_broken)
        return 0;
    /* Revalidation costs remote reads per thread in use, so it happens at most every
     * RUN_EPOCH_NS however often the ring is drained: the same window for thread state reuse
     * that `memsnap attach` has with its 10 ms drains. */
    int64_t now = clock_ns(CLOCK_MONOTONIC);
    if (revalidate && now >= rr->next_epoch_ns) {
        rr->next_epoch_ns = now + RUN_EPOCH_NS;
        collector_epoch(rr->collector);
    }
    ms_error err;
    int n = ring_reader_drain(&rr->ring, on_event, rr, &err);
    if (n < 0) {
        /* on_event left its own reason (ENOMEM) in rr->problem; else the ring is corrupt. */
        char why[sizeof err.msg + 64];
        snprintf(why, sizeof why, "recording stopped early: %s",
                 rr->problem.msg[0] ? rr->problem.msg : err.msg);
        rr->problem.msg[0] = 0;
        record_stop(rr, why);
        rr->ring_broken = 1;
        return 0;
    }
    struct collector_stats st;
    collector_stats(rr->collector, &st);
    if (st.peak_seq != rr->peak_seq) {
        rr->peak_seq = st.peak_seq;
        rr->peak_time_ns = now - rr->start_ns;
    }
    return n;
}

static void timeline_point(struct run_record *rr, int64_t now)
{
    if (!rr->timeline_open || rr->timeline_done || now < rr->next_point_ns)
        return;
    rr->next_point_ns = now + TIMELINE_INTERVAL_NS;
    struct collector_stats st;
    collector_stats(rr->collector, &st);
    if (timeline_sample(&rr->timeline, now - rr->start_ns, (int64_t)st.heap_estimate, NULL) < 0)
        rr->timeline_done = 1; /* the child is exiting: no more RSS to read */
}

/* Fills the profile's metadata that is known at the start. */
static int meta_begin(struct run_record *rr, const struct run_record_options *o, ms_error *err)
{
    struct profile *p = rr->profile;
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", rr->rt.major, rr->rt.minor, rr->rt.micro);
    size_t len = 1;
    for (char *const *a = o->command; a && *a; a++)
        len += strlen(*a) + 1;
    char *cmd = calloc(1, len);
    if (!cmd)
        return ms_error_errno(err, ENOMEM, "building the profile");
    for (char *const *a = o->command; a && *a; a++) {
        if (a != o->command)
            strcat(cmd, " ");
        strcat(cmd, *a);
    }
    p->meta.pid = rr->pid;
    p->meta.command = profile_intern(p, cmd);
    p->meta.python_version = profile_intern(p, version);
    p->meta.mode = profile_intern(p, "run");
    p->meta.rate = (int64_t)rr->rate;
    free(cmd);
    if (p->meta.command == UINT32_MAX || p->meta.python_version == UINT32_MAX ||
        p->meta.mode == UINT32_MAX)
        return ms_error_errno(err, ENOMEM, "building the profile");
    return 0;
}

/* Injects the hook into the stopped main thread and maps its ring. */
static int hook_install(struct run_record *rr, ms_error *err)
{
    struct hook_config_params params = {
        .rate = rr->rate,
        .ring_bytes = rr->rate == 1 ? RUN_RING_EXACT_BYTES : RUN_RING_SAMPLED_BYTES,
        .heartbeat_timeout_ms = RUN_HEARTBEAT_TIMEOUT_MS,
        /* Exact mode: the program waits for memsnap rather than lose events (hook_abi.h). */
        .flags = MSHOOK_F_SYNC_INSTALL | (rr->rate == 1 ? MSHOOK_F_WAIT_WHEN_FULL : 0),
        .seed = (uint64_t)clock_ns(CLOCK_REALTIME) ^ ((uint64_t)rr->pid << 32),
        .memsnap_pid = (int32_t)getpid(),
    };
    struct mshook_config cfg;
    if (hook_config_build(&cfg, rr->rt.off, rr->rt.version_hex, &params, err) < 0)
        return -1;
    struct inject_result res;
    if (inject_library_adopted(rr->pid, rr->pid, memsnap_hook_blob, hook_blob_size(),
                               MSHOOK_START_SYMBOL, &cfg, sizeof cfg, &res, err) < 0)
        return ms_error_prefix(err, "installing the allocation hook");
    if (res.start_result < 0)
        return ms_error_set(err, "the allocation hook refused to start in process %d: %s",
                            (int)rr->pid, strerror(-res.start_result));
    /* The child is still stopped, so its descriptor is there to open. */
    if (ring_reader_open(rr->pid, res.start_result, &rr->ring, err) < 0)
        return ms_error_prefix(err, "mapping the allocation hook's ring");
    rr->ring_open = 1;
    if (rr->ring.stack_slots != cfg.stack_slots)
        return ms_error_set(err, "the allocation hook of process %d has %u stack slots, not %u",
                            (int)rr->pid, rr->ring.stack_slots, cfg.stack_slots);
    if (timeline_exclude(&rr->timeline, rr->ring.map, rr->ring.map_bytes, err) < 0)
        return -1;
    ring_reader_heartbeat(&rr->ring);
    if (ring_reader_state(&rr->ring) != MSHOOK_STATE_RECORDING) {
        struct mshook_shared snap;
        ring_reader_counters(&rr->ring, &snap);
        return ms_error_set(err, "the allocation hook did not start recording in process %d: %s",
                            (int)rr->pid, snap.error[0] ? snap.error : "no reason given");
    }
    return 0;
}

int run_record_begin(struct run_record *rr, pid_t pid, const struct run_record_options *o,
                     ms_error *err)
{
    memset(rr, 0, sizeof *rr);
    rr->pid = pid;
    rr->rate = o->rate ? o->rate : 1;
    if (pyruntime_locate(pid, &rr->rt, err) < 0)
        return -1;
    rr->codes = code_table_new(rr->rt.off);
    if (!rr->codes)
        return ms_error_errno(err, ENOMEM, "creating the code table");
    if (session_resolve_init(&rr->resolve, &rr->rt, rr->codes, err) < 0) {
        run_record_free(rr);
        return -1;
    }
    rr->resolve_ready = 1;
    struct stacks_resolver resolver = session_resolve_resolver(&rr->resolve);
    struct collector_options copt = {
        .rate = rr->rate, .track_peak = 1, .stack_slots = hook_config_default_slots(rr->rate)};
    rr->profile = profile_new();
    if (rr->profile)
        rr->collector = collector_new(rr->profile, &resolver, &copt);
    if (!rr->collector) {
        run_record_free(rr);
        return ms_error_errno(err, ENOMEM, "preparing the collector");
    }
    if (meta_begin(rr, o, err) < 0 || timeline_open(&rr->timeline, pid, err) < 0) {
        run_record_free(rr);
        return -1;
    }
    rr->timeline_open = 1;
    if (hook_install(rr, err) < 0) {
        if (rr->ring_open)
            ring_reader_request_stop(&rr->ring); /* the program runs on unprofiled */
        run_record_free(rr);
        return -1;
    }
    rr->start_ns = clock_ns(CLOCK_MONOTONIC);
    rr->start_unix_ns = clock_ns(CLOCK_REALTIME);
    rr->next_point_ns = rr->start_ns;
    timeline_point(rr, rr->start_ns);
    return 0;
}

int run_record_poll(struct run_record *rr)
{
    if (rr->stopped)
        return 0;
    ring_reader_heartbeat(&rr->ring);
    int n = drain(rr, 1);
    timeline_point(rr, clock_ns(CLOCK_MONOTONIC));
    uint32_t state = ring_reader_state(&rr->ring);
    if (state == MSHOOK_STATE_FAILED) {
        struct mshook_shared snap;
        ring_reader_counters(&rr->ring, &snap);
        char why[400];
        snprintf(why, sizeof why, "recording stopped early: the hook failed: %s", snap.error);
        record_stop(rr, why);
    } else if (state != MSHOOK_STATE_RECORDING) {
        record_stop(rr, "recording stopped early: the hook stopped on its own (was memsnap "
                        "held stopped for long?)");
    }
    return n;
}

void run_record_hold(struct run_record *rr)
{
    if (!rr->ring_open)
        return;
    uint64_t ahead = (uint64_t)(clock_ns(CLOCK_MONOTONIC) + RUN_HOLD_GRACE_NS);
    __atomic_store_n(&rr->ring.shared->heartbeat_ns, ahead, __ATOMIC_RELEASE);
}

int run_record_end(struct run_record *rr, int64_t peak_rss, ms_error *err)
{
    int64_t end_ns = clock_ns(CLOCK_MONOTONIC);
    /* Everything the hook wrote before the child died, published or not; its thread states
     * are gone, so no revalidation: the label cache answers for what was seen alive. */
    ring_reader_producer_gone(&rr->ring);
    drain(rr, 0);
    ring_reader_counters(&rr->ring, &rr->counters);
    if (collector_finish(rr->collector, err) < 0)
        return -1;
    struct profile *p = rr->profile;
    int peak = profile_find_sample_type(p, "peak_space");
    if (peak >= 0)
        p->default_sample_type = (size_t)peak;
    int64_t peak_heap = 0;
    for (size_t i = 0; peak >= 0 && i < p->n_samples; i++)
        peak_heap += p->values[i * p->n_sample_types + (size_t)peak];

    struct collector_stats st;
    collector_stats(rr->collector, &st);
    uint64_t allocs = rr->counters.alloc_count;
    if (rr->rate == 1 && st.alloc_events > allocs)
        allocs = st.alloc_events; /* the hook's counters are published every ~50 ms */
    p->time_nanos = rr->start_unix_ns;
    p->duration_nanos = end_ns - rr->start_ns;
    p->meta.start_unix_ns = rr->start_unix_ns;
    p->meta.duration_ns = end_ns - rr->start_ns;
    p->meta.dropped_events = (int64_t)rr->counters.dropped_events;
    p->meta.dropped_bytes = (int64_t)rr->counters.dropped_bytes;
    /* The timeline's samples exclude the hook's ring but may miss a short spike between two
     * of them; the kernel's maximum RSS sees every spike but counts the ring. The ring's
     * resident bytes only grow, so the kernel's number minus the ring's resident bytes now is
     * at most the program's own peak: the larger of the two is the best lower bound. */
    int64_t ring_rss = timeline_excluded_now(&rr->timeline);
    int64_t kernel_peak = peak_rss > ring_rss ? peak_rss - ring_rss : 0;
    p->meta.peak_rss = rr->timeline.peak_rss > kernel_peak ? rr->timeline.peak_rss : kernel_peak;
    p->meta.peak_heap = peak_heap;
    p->meta.peak_time_ns = rr->peak_time_ns;
    p->meta.total_alloc_bytes = (int64_t)rr->counters.alloc_bytes;
    p->meta.total_alloc_count = (int64_t)allocs;
    return timeline_to_profile(&rr->timeline, p, err);
}

struct profile *run_record_profile(const struct run_record *rr)
{
    return rr->profile;
}

void run_record_summary(const struct run_record *rr, struct run_record_summary *out)
{
    memset(out, 0, sizeof *out);
    if (!rr->profile)
        return;
    out->peak_heap = rr->profile->meta.peak_heap;
    out->peak_time_ns = rr->profile->meta.peak_time_ns;
    out->allocations = (uint64_t)rr->profile->meta.total_alloc_count;
    out->dropped = (uint64_t)rr->profile->meta.dropped_events;
}

const char *run_record_problem(const struct run_record *rr)
{
    return rr->stopped ? rr->problem.msg : NULL;
}

void run_record_free(struct run_record *rr)
{
    if (rr->ring_open)
        ring_reader_close(&rr->ring);
    rr->ring_open = 0;
    if (rr->timeline_open)
        timeline_close(&rr->timeline);
    rr->timeline_open = 0;
    collector_free(rr->collector);
    rr->collector = NULL;
    profile_free(rr->profile);
    rr->profile = NULL;
    if (rr->resolve_ready)
        session_resolve_free(&rr->resolve);
    rr->resolve_ready = 0;
    code_table_free(rr->codes);
    rr->codes = NULL;
}
