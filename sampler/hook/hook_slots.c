/*
 * hook_slots.c - the hook's stack slot table; see hook_slots.h.
 */
#include "hook_slots.h"

static struct hook_slot *slots_table;
static uint32_t slots_mask;
static uint32_t slots_generation = 1; /* never 0, which marks a slot never defined */

size_t hook_slots_bytes(uint32_t slots)
{
    size_t bytes = (size_t)slots * sizeof(struct hook_slot);
    return (bytes + 4095) & ~(size_t)4095;
}

void hook_slots_begin(void *table, uint32_t slots)
{
    slots_table = table;
    slots_mask = slots - 1;
    slots_generation = 1;
}

void hook_slots_end(void)
{
    slots_table = NULL;
    slots_mask = 0;
}

int hook_slots_find(uint64_t hash, uint64_t tstate, uint32_t nframes, uint32_t *slot)
{
    /* The hash's low bits come out of a final avalanche (hook_stack.c): use them directly. */
    uint32_t i = (uint32_t)hash & slots_mask;
    const struct hook_slot *s = &slots_table[i];
    *slot = i;
    return s->hash == hash && s->tstate == tstate && s->nframes == nframes &&
           s->generation == slots_generation;
}

void hook_slots_define(uint32_t slot, uint64_t hash, uint64_t tstate, uint32_t nframes)
{
    struct hook_slot *s = &slots_table[slot & slots_mask];
    s->hash = hash;
    s->tstate = tstate;
    s->nframes = nframes;
    s->generation = slots_generation;
}

void hook_slots_invalidate(void)
{
    slots_generation++;
    if (slots_generation == 0) {
        /* After 2^32 deaths: a slot defined 2^32 generations ago must not come back. */
        for (uint32_t i = 0; i <= slots_mask && slots_table; i++)
            slots_table[i].generation = 0;
        slots_generation = 1;
    }
}
