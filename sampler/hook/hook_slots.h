/*
 * hook_slots.h - the hook's stack slot table: which stack each slot number means to memsnap.
 *
 * Recording every allocation would otherwise copy the whole stack into the ring millions of
 * times, and memsnap would resolve and intern it again each time. Instead a stack is hashed
 * during its walk (hook_stack_capture), the hash picks a slot, and:
 *   - the slot already holds this stack (same hash, thread, depth, generation): the ALLOC
 *     record names the slot, nothing else is written;
 *   - otherwise: a STACK record redefines the slot, then the ALLOC names it.
 * The table is direct-mapped (one stack per slot, the newest wins), lives after the ring in
 * the shared region (memsnap leaves it out of the target's RSS, never reads it) and is written
 * under the recorder's lock only.
 *
 * Identity is the 64-bit hash: two different stacks of the same thread and depth with the same
 * hash in the same slot would be merged, a chance near 2^-64 per allocation, accepted for a
 * table that needs no copy of the frames.
 *
 * Code objects die and their addresses are reused: a cached stack naming a dead code object
 * must not be reused for its successor, whose CODE record memsnap applies to later STACK
 * records only. So every code object's death bumps the table's generation, which empties
 * every slot at once.
 */
#ifndef MEMSNAP_HOOK_SLOTS_H
#define MEMSNAP_HOOK_SLOTS_H

#include <stddef.h>
#include <stdint.h>

struct hook_slot {
    uint64_t hash;   /* of the frames, from hook_stack_capture */
    uint64_t tstate; /* the thread that ran it */
    uint32_t nframes;
    uint32_t generation; /* 0: never defined */
};

/* The bytes of a table of `slots` slots, a multiple of 4096. */
size_t hook_slots_bytes(uint32_t slots);

/* Starts a session over `table` (hook_slots_bytes(slots) zeroed bytes; slots a power of two). */
void hook_slots_begin(void *table, uint32_t slots);

/* Forgets the table (it belongs to a region about to be unmapped). */
void hook_slots_end(void);

/* The slot for a stack with this hash, and whether it holds that stack already (1) or must be
 * redefined (0). The table must have been begun. */
int hook_slots_find(uint64_t hash, uint64_t tstate, uint32_t nframes, uint32_t *slot);

/* Records that `slot` now holds the stack (its STACK record was written). */
void hook_slots_define(uint32_t slot, uint64_t hash, uint64_t tstate, uint32_t nframes);

/* A code object died: no slot may be reused until redefined. */
void hook_slots_invalidate(void);

#endif
