/*
 * run_record.h - the recording half of `memsnap run`: from a child held at Py_RunMain to a
 * profile of everything its Python program allocated.
 *
 * cmd_run.c owns the child (launching, signals, job control, waiting, exit status); this
 * module owns what is recorded, so the division of work is:
 *
 *   run_record_begin(&rr, pid, ...)   child stopped and traced by the caller at Py_RunMain:
 *                                     inject the hook into the main thread with
 *                                     MSHOOK_F_SYNC_INSTALL (that thread holds the GIL there,
 *                                     so the allocators are wrapped before the main module
 *                                     runs), map the ring; the caller then detaches
 *   run_record_poll(&rr)              while the child lives, every millisecond or so: heartbeat,
 *                                     drain into the collector (code objects named by the
 *                                     hook's CODE records), timeline point every 10 ms
 *   run_record_hold(&rr)              the child is being stopped by job control
 *   run_record_end(&rr, peak_rss)     the child is dead (a zombie, or reaped): last drain
 *                                     without revalidating thread labels (the memory is gone;
 *                                     the mapping of the ring is ours and still readable), then
 *                                     the profile: mode "run", the collector's six sample
 *                                     types with default peak_space, metadata, timeline
 *   run_record_free(&rr)
 *
 * Exactness: at rate 1 every allocation through the PyMem/PyObject domains from the first
 * line of the main module on is in the profile: when the ring is full the program waits for
 * memsnap to drain it (MSHOOK_F_WAIT_WHEN_FULL), dropping only if memsnap stops heartbeating
 * or 2 s pass (the profile's dropped_events says so). The exact-mode ring
 * (RUN_RING_EXACT_BYTES, about a million events) is drained continuously; it is no bigger
 * because the hook writes each record into a line memsnap read a lap before, and a ring that
 * stays in the shared cache makes those writes cheaper. Its pages are shared
 * memory of the target and count in the target's RSS; the timeline subtracts them
 * (timeline_exclude), and the profile's peak RSS is the program's own: the larger of the
 * timeline's peak and the kernel's maximum RSS minus the ring's resident bytes.
 *
 * Errors: begin returns -1 with one sentence (not CPython, unsupported version, injection
 * refused, hook failed); the child is then still stopped and traced, and the caller lets it
 * run unprofiled. A corrupt ring or a hook that failed later ends the recording early: poll
 * stops, and run_record_problem() says why (what was collected is still written).
 * Not thread-safe.
 */
#ifndef MEMSNAP_RUN_RECORD_H
#define MEMSNAP_RUN_RECORD_H

#include <stdint.h>
#include <sys/types.h>

#include "code_table.h"
#include "collector.h"
#include "error.h"
#include "profile.h"
#include "pyruntime.h"
#include "ring_reader.h"
#include "session_resolve.h"
#include "timeline.h"

/* Ring sizes: exact mode records every allocation with its whole stack (hundreds of bytes
 * each, tens of MB/s); sampled mode a few events per MB allocated. */
#define RUN_RING_EXACT_BYTES   (16u << 20)
#define RUN_RING_SAMPLED_BYTES (4u << 20)
/* Cached thread labels are revalidated at most this often (see drain in run_record.c). */
#define RUN_EPOCH_NS 10000000ll
/* The hook stops recording when memsnap's heartbeat is older than this (memsnap died). */
#define RUN_HEARTBEAT_TIMEOUT_MS 2000u
/* While job control holds the child (and memsnap) stopped, the heartbeat is set this far
 * ahead so the recording survives a Ctrl-Z; a memsnap killed meanwhile leaves the hook
 * recording for at most this long. */
#define RUN_HOLD_GRACE_NS (600ll * 1000000000ll)

struct run_record_options {
    uint64_t rate;        /* mean bytes between samples; 1 = every allocation */
    char *const *command; /* the command line, for the profile (NULL-terminated) */
};

/* What the one-line summary needs. */
struct run_record_summary {
    int64_t peak_heap;    /* bytes live at the peak (unbiased at rate > 1) */
    int64_t peak_time_ns; /* since recording began */
    uint64_t allocations; /* every allocation the hook saw, sampled or not */
    uint64_t dropped;     /* events the hook dropped */
};

struct run_record {
    pid_t pid;
    uint64_t rate;
    struct pyruntime rt;
    struct code_table *codes; /* fed by the hook's CODE / CODE_GONE records */
    struct session_resolve resolve;
    int resolve_ready;
    struct profile *profile;
    struct collector *collector;
    struct ring_reader ring;
    int ring_open;
    int ring_broken; /* the ring broke a rule: never read again */
    struct timeline timeline;
    int timeline_open;
    int timeline_done;     /* RSS can no longer be read */
    int64_t start_ns;      /* CLOCK_MONOTONIC when recording began */
    int64_t start_unix_ns; /* the same instant, wall clock */
    int64_t next_point_ns; /* next timeline sample (monotonic) */
    int64_t next_epoch_ns; /* next revalidation of cached thread labels */
    uint64_t peak_seq;     /* the collector's peak allocation number at the last poll */
    int64_t peak_time_ns;
    struct mshook_shared counters; /* the hook's header, copied at the end */
    int stopped;                   /* recording ended early; problem says why */
    ms_error problem;              /* empty when none */
};

/* See the top of this file. pid's main thread (tid == pid) must be in a ptrace-stop of the
 * caller's at Py_RunMain. Returns 0, or -1 with err (rr then holds nothing). */
int run_record_begin(struct run_record *rr, pid_t pid, const struct run_record_options *o,
                     ms_error *err);

/* One round of work while the child lives. Returns the number of events drained (0 when the
 * recording has stopped). */
int run_record_poll(struct run_record *rr);

/* Before the child (and memsnap with it) is stopped by job control. */
void run_record_hold(struct run_record *rr);

/* The child is dead; peak_rss in bytes (0 if unknown). Builds the profile. Returns 0, or -1
 * with err on ENOMEM. */
int run_record_end(struct run_record *rr, int64_t peak_rss, ms_error *err);

/* The built profile (after run_record_end; owned by rr) and its summary. */
struct profile *run_record_profile(const struct run_record *rr);
void run_record_summary(const struct run_record *rr, struct run_record_summary *out);

/* Why the recording ended before the child did, or NULL. */
const char *run_record_problem(const struct run_record *rr);

void run_record_free(struct run_record *rr);

#endif
