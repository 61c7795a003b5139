/*
 * hook_record.h - what happens to an allocation once a wrapper has seen it.
 *
 * The recorder owns one session's sampling state: the byte countdown, the counters, the stack
 * layout, the ring producer, and the lock that serialises ring writes and live-table changes.
 * The wrappers (hook_alloc.c) call the two inline functions below on every allocation and
 * free; only sampled events reach the out-of-line slow paths.
 *
 * Locking: MEM and OBJ allocators are called with the GIL held, so the hot path needs no
 * atomics of its own (counters use relaxed loads and stores only so the session's tick may
 * read them). The slow path takes a try-lock anyway, so a C extension that breaks the GIL rule
 * makes us drop an event, never corrupt the ring; a contended lock drops and counts.
 *
 * Exact mode (rate 1): every allocation is recorded, so every free while recording is of a
 * recorded block or of one allocated before the session, which memsnap ignores as an unknown
 * address. The live table, whose probes were half of the hook's cost at rate 1 (a cache miss
 * per allocation and per free in a table as big as the heap), is skipped: every free gets a
 * FREE record and live_sampled_bytes is not maintained (memsnap's own live set is exact).
 *
 * Stacks: an ALLOC record names its stack by slot (hook_slots.h); a stack the slot does not
 * hold yet is sent first in a STACK record.
 *
 * Code identity: before the STACK record of a sampled block, every code object of its stack
 * that is not in the announced set (hook_code.h) gets a CODE record; when one cannot be
 * written (ring full) the ALLOC is dropped too, so memsnap never sees a frame it cannot name.
 * Every free whose block is a code object (ob_type == PyCode_Type, one load of the block's
 * own header) goes to hook_record_code_free(), which writes CODE_GONE if it was announced.
 *
 * After hook_recorder_end() returns, nothing in the recorder touches the shared region again
 * (slow paths check `active` under the lock).
 */
#ifndef MEMSNAP_HOOK_RECORD_H
#define MEMSNAP_HOOK_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "hook_abi.h"
#include "hook_code.h"
#include "hook_live.h"
#include "hook_ring.h"
#include "hook_sample.h"
#include "hook_slots.h"
#include "hook_stack.h"

struct hook_counters {
    uint64_t alloc_count; /* also the wrappers' tick clock (hook_alloc.c) */
    uint64_t alloc_bytes; /* not counted: the sampler's countdown knows them */
    uint64_t free_count;  /* not counted (ABI 3): always 0 */
    uint64_t sampled_allocs;
    uint64_t sampled_frees;
    uint64_t live_sampled_bytes;
    uint64_t dropped_events;
    uint64_t dropped_bytes;
    uint64_t truncated_stacks;
    uint64_t code_records;   /* CODE records written (not published in the region) */
    uint64_t invalid_stacks; /* stacks cut at a frame the hook could not prove (hook_safe.h) */
};

struct hook_recorder {
    struct hook_sampler sampler; /* first: the hot path touches it on every allocation */
    struct hook_counters counters;
    uint32_t active; /* 1 while the ring may be written (read under the lock) */
    uint32_t lock;   /* try-lock for ring + live table */
    uint32_t max_frames;
    uint32_t exact; /* rate <= 1: every block is sampled, so no live table (see below) */
    struct hook_stack_layout layout;
    struct hook_code_layout code_layout;
    uint32_t code_table_max; /* longest line table a CODE record carries (<= ring / 4) */
    struct hook_ring ring;
    void *(*tstate_get)(void);
};

/* The one recorder (hidden inside the library). */
extern struct hook_recorder hook_recorder;

/* Starts a session: counters zeroed, sampler seeded from cfg, ring over the region, stack
 * slots over slot_table (hook_slots_bytes(cfg->stack_slots) zeroed bytes of the region), empty
 * live table and announced set, active. cfg was validated. Returns 0, or -1 when the live
 * table or the set cannot be mapped. */
int hook_recorder_begin(const struct mshook_config *cfg, struct mshook_shared *shared,
                        unsigned char *ring, void *slot_table,
                        const struct hook_stack_layout *layout,
                        const struct hook_code_layout *code_layout, void *(*tstate_get)(void));

/* Copies the counters into the region (the session's tick only, periodically). */
void hook_recorder_publish(void);

/* Ends the session: inactive, waits for an in-flight slow path, publishes the final counters
 * and stop time, empties the live table. The region may be unmapped afterwards. */
void hook_recorder_end(void);

/* After fork, in the child: forget the session without touching the region (the parent owns
 * it). */
void hook_recorder_forget(void);

/* Slow paths. */
void hook_record_sampled_alloc(void *ptr, size_t size, uint32_t flags);
void hook_record_sampled_free(void *ptr);
void hook_record_code_free(void *ptr);

/* Whether the block about to be freed holds a code object: its ob_type is PyCode_Type. Every
 * block the wrapped domains hand out is at least 16 bytes, so the load stays inside it. */
static inline int hook_record_is_code(const void *ptr)
{
    const struct hook_stack_layout *l = &hook_recorder.layout;
    return *(const void *const *)((const char *)ptr + l->object_type) == l->code_type;
}

static inline void hook_counter_add(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* An allocation of size bytes while recording, before it is made: 1 when it is to be
 * sampled (then the caller makes it and calls hook_record_sampled_alloc with the block).
 * Counting bytes here, before the allocation, keeps the wrappers' common path a tail call;
 * a failed allocation (rare: MemoryError) is counted all the same. */
static inline int hook_record_alloc_take(size_t size)
{
    return __builtin_expect(hook_sampler_take(&hook_recorder.sampler, size), 0);
}

/* A free of a non-NULL block while recording: 1 when the block may be a sampled one (then
 * the caller frees it and calls hook_record_sampled_free, which removes it from the table
 * and records the FREE; still under the GIL, so no other thread can have been given the
 * address meanwhile). The filter answers 0 for nearly every free without touching the
 * table. */
static inline int hook_record_free_maybe(const void *ptr)
{
    return hook_recorder.exact || hook_live_maybe((uint64_t)(uintptr_t)ptr);
}

#endif
