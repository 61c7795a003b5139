/*
 * session.h - one profiled process from attach to profile: locate the interpreter, inject the
 * hook, drain its ring into the collector while keeping the heartbeat fresh, stop the hook,
 * and build the profile.
 *
 * A session is driven by its caller's loop (cmd_attach records several processes at once
 * from one thread, so nothing here blocks for long):
 *
 *   session_attach()   refuses - target untouched - a missing, stopped, non-Python or
 *                      unsupported process, missing permission, or one another memsnap is
 *                      already recording (the hook's start returns -EBUSY); otherwise
 *                      injects the hook (one short pause of one thread) and maps its ring.
 *   session_poll()     every ~10 ms: heartbeat, drain the ring (resolving code objects while
 *                      they still exist), RSS/heap timeline. Returns 1 once the target has
 *                      exited: the session then holds what was collected until then.
 *   session_request_stop()  asks the hook to stop; session_poll() then drains until it
 *                      says STOPPED (bounded by SESSION_STOP_TIMEOUT_MS: an idle target's
 *                      hook stops at its next allocations) and unmaps the ring. The target
 *                      keeps the dormant library. Nothing blocks, so other sessions keep
 *                      their heartbeat.
 *   session_build()    the profile (samples, meta, timeline); the session keeps ownership.
 *
 * If memsnap dies at any instant the heartbeat goes stale and the hook stops itself within
 * MSHOOK heartbeat_timeout_ms (SESSION_HEARTBEAT_TIMEOUT_MS).
 */
#ifndef MEMSNAP_SESSION_H
#define MEMSNAP_SESSION_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "profile.h"

#define SESSION_DRAIN_INTERVAL_MS    10
#define SESSION_HEARTBEAT_TIMEOUT_MS 1000 /* the watchdog stops the hook within 2 s */
#define SESSION_STOP_TIMEOUT_MS      3000
#define SESSION_START_RETRY_MS       3000 /* retrying a start refused with -EAGAIN */
#define SESSION_RING_WAIT_MS         1000 /* for the hook's install thread to make its ring */
#define SESSION_REPLACED_STOP_MS     200  /* the hook's STOPPED after the target replaced it */

struct session_options {
    uint64_t rate;  /* sampling rate in bytes, >= 1 */
    int track_peak; /* live-at-peak sample types */
    /* Called while session_attach waits to retry a start (up to SESSION_START_RETRY_MS), so
     * the caller can keep its other sessions' heartbeats fresh. May be NULL. */
    void (*idle)(void *ctx);
    void *idle_ctx;
};

/* Where a session is. */
enum session_phase {
    SESSION_INSTALLING = 1, /* the hook is waiting for the GIL to wrap the allocators */
    SESSION_RECORDING = 2,
    SESSION_ENDED = 3, /* stopped, or the target exited */
};

struct session_summary {
    enum session_phase phase;
    int target_exited;       /* the process exited during the window */
    int64_t elapsed_ns;      /* since recording began */
    uint64_t events;         /* ALLOC + FREE events drained */
    uint64_t samples;        /* sampled allocations (ALLOC events) */
    int64_t heap;            /* live bytes now (unbiased estimate, exact at rate 1) */
    int64_t rss;             /* target RSS at the last sample */
    uint64_t dropped_events; /* from the hook's counters */
    uint64_t invalid_stacks; /* sampled stacks the hook cut at an unprovable frame */
    int exit_signal;         /* target_exited: the signal that killed it, 0 unknown or none */
    int allocator_replaced;  /* the target replaced our wrappers: the recording ended early */
    int frees_via_raw;       /* the hook routes sampled blocks through the raw domain */
    int64_t attach_ns;       /* session_attach start -> hook RECORDING, 0 until then */
    int64_t inject_pause_ns; /* longest stop of the hijacked thread during injection */
    int64_t inject_total_ns; /* wall time of the injection */
};

struct session;

/* Attaches to pid. On success *out is a live session; on failure err says why in one
 * sentence and the target was not modified (or, when the failure comes after injection,
 * the hook has been asked to stop). */
int session_attach(pid_t pid, const struct session_options *opt, struct session **out,
                   ms_error *err);

/* One tick: heartbeat, drain, timeline; after session_request_stop, also waits (without
 * blocking) for the hook's STOPPED. now_ns is CLOCK_MONOTONIC. Returns 0 (going on), 1 (ended:
 * stopped as asked or not confirmed in time, the target exited, or the hook stopped on its own;
 * the ring is unmapped), -1 with err (a corrupt ring, or the hook failed; a stop
 * has been requested or the session has ended - keep polling until it returns non-zero with
 * the ring closed, see session_ended). What was drained is kept in every case. */
int session_poll(struct session *s, int64_t now_ns, ms_error *err);

/* Asks the hook to stop; the recording window ends now. Polling then drains until STOPPED
 * (bounded by SESSION_STOP_TIMEOUT_MS; an idle target's hook stops at its next allocations).
 * Idempotent. */
void session_request_stop(struct session *s, int64_t now_ns);

/* session_request_stop + poll until ended (blocking, for single sessions and cleanup). */
int session_stop(struct session *s, ms_error *err);

/* Refreshes the heartbeat only (see session_options.idle). */
void session_heartbeat(struct session *s);

/* 1 once the ring is unmapped (nothing more will come). */
int session_ended(const struct session *s);

/* Builds the profile of what was recorded (call after session_stop). The profile belongs to
 * the session. NULL with err on ENOMEM. */
struct profile *session_build(struct session *s, ms_error *err);

void session_summary(const struct session *s, struct session_summary *out);

/* The one-sentence notes a session may end with, each also written into the profile as a
 * comment "memsnap-note: <sentence>" by session_build:
 *   SESSION_NOTE_INVALID   stacks cut at frames the hook could not prove (hook-safety.md)
 *   SESSION_NOTE_REPLACED  the target replaced the allocator: the recording ended early
 *   SESSION_NOTE_EXIT      the target exited, or was killed by a signal (when known: from its
 *                          zombie's /proc/PID/stat before its parent reaps it)
 * Fills out (n bytes) and returns 1, or 0 (out empty) when the note does not apply. */
enum { SESSION_NOTE_INVALID, SESSION_NOTE_REPLACED, SESSION_NOTE_EXIT, SESSION_NOTES };
int session_note(const struct session *s, char *out, size_t n, int which);
pid_t session_pid(const struct session *s);

/* Stops if needed, unmaps, frees. NULL is fine. */
void session_free(struct session *s);

#endif
