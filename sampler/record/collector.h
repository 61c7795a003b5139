/*
 * collector.h - turns the hook's allocation and free events into per-stack totals, the live
 * set, an optional live-at-peak breakdown, and finally the samples of a pprof profile.
 *
 * Per stack (interned by stacks.h) it keeps, in sampled units: blocks and bytes allocated
 * during the window, and blocks and bytes of those still live. A live table maps each
 * sampled live address to (stack, size, allocation sequence number); a FREE event for an
 * address not in the table (allocated before the window, or its ALLOC was dropped) is
 * ignored, and an ALLOC for an address already in the table first retires the old block
 * (its FREE was dropped).
 *
 * The peak tracker (option track_peak, meant for exact mode, `memsnap run`): which stacks
 * held the memory at the moment total live bytes peaked, in O(1) amortised per event and
 * without ever copying the live set. Every allocation gets a sequence number; the latest
 * peak is remembered as (peak generation, sequence number of the allocation that set it).
 * Per stack, two "since the peak" counters - blocks allocated after the peak still live, and
 * blocks allocated before the peak freed after it - are reset lazily when a stack is first
 * touched in a new peak generation. Then at any time
 *     live_at_peak(stack) = live(stack) - allocated_since_peak_live + freed_since_peak
 * and a stack untouched since the last peak has live_at_peak == live.
 *
 * Every sampled block is weighed by 1/P(sampled | its size) (unbias.h) as it is counted, so
 * each per-stack sum - allocated, live, live at the peak - is an unbiased estimate of the real
 * blocks and bytes, whatever mix of sizes the stack allocates; the peak is the peak of the
 * estimated heap. Values in the profile are these sums, rounded (exact at rate 1). Sample types, in
 * this order: alloc_objects/count, alloc_space/bytes, inuse_objects/count, inuse_space/bytes, then
 * (track_peak) peak_objects/count, peak_space/bytes. Default type: inuse_space. Not thread-safe.
 *
 * Allocations and frees reach the live table a few events after they are given (their table
 * slots are prefetched meanwhile); collector_stats() and collector_finish() apply them all
 * first, so every answer covers every event given so far.
 */
#ifndef MEMSNAP_COLLECTOR_H
#define MEMSNAP_COLLECTOR_H

#include <stdint.h>

#include "error.h"
#include "hook/hook_abi.h"
#include "profile.h"
#include "stacks.h"

/* Past this many live sampled blocks, further blocks are counted as allocations but not
 * tracked as live (memsnap's memory stays bounded whatever the target does). */
#define COLLECTOR_MAX_LIVE (1u << 24)

struct collector_options {
    uint64_t rate;        /* the hook's sampling rate in bytes; 1 = every allocation */
    int track_peak;       /* keep the live-at-peak breakdown (peak_* sample types) */
    uint32_t stack_slots; /* the hook's stack slots (config.stack_slots) */
};

struct collector_stats {
    uint64_t alloc_events;    /* ALLOC events seen */
    uint64_t free_events;     /* FREE events that matched a live block */
    uint64_t ignored_frees;   /* FREE events for unknown addresses */
    uint64_t untracked;       /* allocations not tracked as live (live table cap) */
    uint64_t live_blocks;     /* sampled blocks live now */
    uint64_t live_bytes;      /* sampled bytes live now (raw, not unbiased) */
    double heap_estimate;     /* unbiased live bytes (exact at rate 1) */
    uint64_t peak_live_bytes; /* track_peak: raw live bytes at the peak (of heap_estimate) */
    uint64_t peak_seq;        /* track_peak: allocation number that set the peak */
};

struct collector;

/* A collector adding to profile `p` (borrowed) and resolving frames with `r` (copied).
 * NULL on ENOMEM or a rate of 0. */
struct collector *collector_new(struct profile *p, const struct stacks_resolver *r,
                                const struct collector_options *opt);
void collector_free(struct collector *c);

/* Revalidates cached thread labels on their next use: call once per drain. */
void collector_epoch(struct collector *c);

/* A STACK record: slot `slot` now names this stack (frames innermost first, nframes clamped
 * to MSHOOK_MAX_FRAMES; flags MSHOOK_STACK_*). Returns 0, or -1 on ENOMEM or a slot out of
 * range. */
int collector_stack(struct collector *c, uint32_t slot, uint64_t tstate,
                    const struct mshook_frame *frames, uint32_t nframes, uint32_t flags,
                    ms_error *err);

/* One sampled allocation whose stack slot `slot` names (see stacks_slot). Returns 0, or -1
 * on ENOMEM or a slot out of range. */
int collector_alloc(struct collector *c, uint64_t addr, uint64_t size, uint32_t slot,
                    ms_error *err);

/* One free of a sampled block; unknown addresses are ignored. */
void collector_release(struct collector *c, uint64_t addr);

/* The statistics so far (every event given to the collector applied). */
void collector_stats(struct collector *c, struct collector_stats *out);

/* Adds the sample types and one sample per stack (unbiased) to the profile, sets its
 * default sample type and period. Call once, at the end. Returns 0, or -1 on ENOMEM. */
int collector_finish(struct collector *c, ms_error *err);

#endif
