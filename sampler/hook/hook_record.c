/*
 * hook_record.c - the sampled-event slow paths and the session's counters; see hook_record.h.
 */
#include "hook_record.h"

#include <sched.h>
#include <time.h>

#include "hook_safe.h"

struct hook_recorder hook_recorder;

static int lock_try(void)
{
    return __atomic_exchange_n(&hook_recorder.lock, 1, __ATOMIC_ACQUIRE) == 0;
}

static void lock_release(void)
{
    __atomic_store_n(&hook_recorder.lock, 0, __ATOMIC_RELEASE);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t counter_get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* With the region mapped. Only the session's tick (every few thousand wrapped calls) and the
 * end publish: stores into the header's cache lines, which memsnap reads, on every sampled
 * event would cost a cache-line transfer each at rate 1. */
static void counters_copy_out(void)
{
    const struct hook_counters *c = &hook_recorder.counters;
    struct mshook_shared *s = hook_recorder.ring.shared;
    __atomic_store_n(&s->alloc_count, counter_get(&c->alloc_count), __ATOMIC_RELAXED);
    __atomic_store_n(&s->alloc_bytes, hook_sampler_bytes(&hook_recorder.sampler), __ATOMIC_RELAXED);
    __atomic_store_n(&s->free_count, counter_get(&c->free_count), __ATOMIC_RELAXED);
    __atomic_store_n(&s->sampled_allocs, counter_get(&c->sampled_allocs), __ATOMIC_RELAXED);
    __atomic_store_n(&s->sampled_frees, counter_get(&c->sampled_frees), __ATOMIC_RELAXED);
    __atomic_store_n(&s->live_sampled_bytes, counter_get(&c->live_sampled_bytes), __ATOMIC_RELAXED);
    __atomic_store_n(&s->dropped_events, counter_get(&c->dropped_events), __ATOMIC_RELAXED);
    __atomic_store_n(&s->dropped_bytes, counter_get(&c->dropped_bytes), __ATOMIC_RELAXED);
    __atomic_store_n(&s->truncated_stacks, counter_get(&c->truncated_stacks), __ATOMIC_RELAXED);
    __atomic_store_n(&s->invalid_stacks, counter_get(&c->invalid_stacks), __ATOMIC_RELAXED);
}

int hook_recorder_begin(const struct mshook_config *cfg, struct mshook_shared *shared,
                        unsigned char *ring, void *slot_table,
                        const struct hook_stack_layout *layout,
                        const struct hook_code_layout *code_layout, void *(*tstate_get)(void))
{
    struct hook_recorder *r = &hook_recorder;
    if (hook_live_begin() != 0)
        return -1;
    if (hook_code_set_begin() != 0) {
        hook_live_reset();
        return -1;
    }
    r->counters = (struct hook_counters){0};
    hook_safe_reset();
    hook_sampler_init(&r->sampler, cfg->rate, cfg->seed);
    r->max_frames = cfg->max_frames;
    r->exact = cfg->rate <= 1;
    r->layout = *layout;
    r->code_layout = *code_layout;
    /* A CODE record must fit the ring with room to spare (records never exceed a quarter of
     * it); the name and file name caps come first. */
    uint64_t room = cfg->ring_bytes / 4 - sizeof(struct mshook_code) - MSHOOK_CODE_NAME_MAX -
                    MSHOOK_CODE_FILENAME_MAX - 8;
    r->code_table_max = room < MSHOOK_CODE_TABLE_MAX ? (uint32_t)room : MSHOOK_CODE_TABLE_MAX;
    r->tstate_get = tstate_get;
    uint64_t wait_ns =
        (cfg->flags & MSHOOK_F_WAIT_WHEN_FULL) ? (uint64_t)cfg->heartbeat_timeout_ms * 1000000u : 0;
    /* Exact mode batches head stores (1 KiB: a few dozen records); sampled events are rare
     * enough to publish one by one, so attach's memsnap sees each at its next drain. */
    hook_ring_init(&r->ring, shared, ring, cfg->ring_bytes, wait_ns, r->exact ? 1024 : 0);
    hook_slots_begin(slot_table, cfg->stack_slots);
    __atomic_store_n(&r->lock, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->active, 1, __ATOMIC_RELEASE);
    return 0;
}

void hook_recorder_publish(void)
{
    /* No lock: publishing and unmapping the region both happen in the session's ticks,
     * under the GIL, and the counters are read with relaxed loads. Taking the producers' try-lock
     * here made them drop an event whenever the two met (a few dozen per million at rate 1). */
    if (!__atomic_load_n(&hook_recorder.active, __ATOMIC_ACQUIRE))
        return;
    counters_copy_out();
    /* The head, only if no slow path is writing (a thread breaking the GIL rule): it will. */
    if (lock_try()) {
        if (__atomic_load_n(&hook_recorder.active, __ATOMIC_ACQUIRE))
            hook_ring_flush(&hook_recorder.ring);
        lock_release();
    }
}

void hook_recorder_end(void)
{
    __atomic_store_n(&hook_recorder.active, 0, __ATOMIC_RELEASE);
    /* A slow path that took the lock before `active` dropped may still be writing: wait for
     * it (slow paths hold the lock for a bounded copy, never for a syscall). */
    while (!lock_try())
        sched_yield();
    counters_copy_out();
    hook_ring_flush(&hook_recorder.ring);
    __atomic_store_n(&hook_recorder.ring.shared->stop_ns, now_ns(), __ATOMIC_RELAXED);
    hook_live_reset();
    hook_code_set_end();
    hook_slots_end();
    lock_release();
}

void hook_recorder_forget(void)
{
    __atomic_store_n(&hook_recorder.active, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hook_recorder.lock, 0, __ATOMIC_RELAXED);
    hook_live_reset();
    hook_code_set_end();
    hook_slots_end();
}

static void drop(size_t size)
{
    hook_counter_add(&hook_recorder.counters.dropped_events, 1);
    hook_counter_add(&hook_recorder.counters.dropped_bytes, size);
}

/* Under the lock: the FREE record of a sampled block of size bytes. */
static void block_freed(uint64_t addr, uint64_t size)
{
    struct hook_counters *c = &hook_recorder.counters;
    hook_counter_add(&c->live_sampled_bytes, -size);
    if (hook_ring_put_free(&hook_recorder.ring, addr) == 0)
        hook_counter_add(&c->sampled_frees, 1);
    else
        drop(0);
}

/* Under the lock: a CODE record for each code object of the stack not yet announced (idents:
 * the fingerprints the walk proved them with). Returns 0, or -1 when one could not be written
 * (the ring is full): the caller drops the ALLOC, and the code objects not announced stay so,
 * to be announced with a later stack. */
static int stack_announce(const struct mshook_frame *frames, const uint64_t *idents,
                          uint32_t nframes)
{
    struct hook_recorder *r = &hook_recorder;
    for (uint32_t i = 0; i < nframes; i++) {
        uint64_t code = frames[i].code;
        if (hook_code_set_contains(code, idents[i]))
            continue;
        /* The walk proved this object, its name, file name and line table readable within
         * the bounds the describer reads (hook_safe.h), under the GIL we still hold. */
        struct hook_code_desc desc;
        hook_code_describe(&r->code_layout, (const void *)(uintptr_t)code, r->code_table_max,
                           &desc);
        if (hook_ring_put_code(&r->ring, code, &desc) != 0)
            return -1;
        hook_counter_add(&r->counters.code_records, 1);
        hook_code_set_add(code, idents[i]); /* full: announced again next time */
    }
    return 0;
}

/* Under the lock: the slot that names this stack, defined first (with CODE records for code
 * objects not yet announced, then a STACK record) unless it holds the stack already. Returns
 * 0, or -1 when a record could not be written (the ring is full): the caller drops the ALLOC,
 * and the slot keeps what it held, in the hook's table as in memsnap's. */
static int stack_slot(uint64_t tstate, const struct mshook_frame *frames, const uint64_t *idents,
                      uint32_t nframes, uint32_t flags, uint64_t hash, uint32_t *slot)
{
    if (hook_slots_find(hash, tstate, nframes, slot))
        return 0;
    if (stack_announce(frames, idents, nframes) != 0)
        return -1;
    if (hook_ring_put_stack(&hook_recorder.ring, *slot, tstate, flags, frames, nframes) != 0)
        return -1;
    hook_slots_define(*slot, hash, tstate, nframes);
    return 0;
}

void hook_record_sampled_alloc(void *ptr, size_t size, uint32_t flags)
{
    struct hook_recorder *r = &hook_recorder;
    struct mshook_frame frames[MSHOOK_MAX_FRAMES];
    uint64_t idents[MSHOOK_MAX_FRAMES];
    uint32_t stack_flags = 0;
    uint64_t hash;
    if (!r->exact)
        hook_live_prefetch((uint64_t)(uintptr_t)ptr); /* loads while we walk the stack */
    const void *tstate = r->tstate_get();
    uint32_t epoch = (uint32_t)(__atomic_load_n(&r->counters.alloc_count, __ATOMIC_RELAXED) >> 16);
    uint32_t nframes = hook_stack_capture(&r->layout, &r->code_layout, tstate, epoch, frames,
                                          idents, r->max_frames, &stack_flags, &hash);
    int truncated = (stack_flags & MSHOOK_STACK_TRUNCATED) != 0;
    if (stack_flags & MSHOOK_STACK_INVALID)
        hook_counter_add(&r->counters.invalid_stacks, 1);
    if (!lock_try()) {
        drop(size);
        return;
    }
    if (!__atomic_load_n(&r->active, __ATOMIC_ACQUIRE)) {
        lock_release();
        return;
    }
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    uint32_t slot;
    if (stack_slot((uint64_t)(uintptr_t)tstate, frames, idents, nframes, stack_flags, hash,
                   &slot) != 0) {
        drop(size);
        lock_release();
        return;
    }
    if (r->exact) {
        if (hook_ring_put_alloc(&r->ring, addr, size, slot, flags) == 0) {
            hook_counter_add(&r->counters.sampled_allocs, 1);
            if (truncated)
                hook_counter_add(&r->counters.truncated_stacks, 1);
        } else {
            drop(size);
        }
        lock_release();
        return;
    }
    uint64_t stale;
    int added = hook_live_insert(addr, size, &stale);
    if (added == 1) /* still in the table: its free went by unseen (another allocator) */
        block_freed(addr, stale);
    if (added < 0) {
        drop(size);
    } else if (hook_ring_put_alloc(&r->ring, addr, size, slot, flags) != 0) {
        uint64_t ignored;
        hook_live_remove(addr, &ignored);
        drop(size);
    } else {
        hook_counter_add(&r->counters.sampled_allocs, 1);
        hook_counter_add(&r->counters.live_sampled_bytes, size);
        if (truncated)
            hook_counter_add(&r->counters.truncated_stacks, 1);
    }
    lock_release();
}

void hook_record_sampled_free(void *ptr)
{
    /* No lock-free look at the table first: the filter rarely lies, and the probe is the
     * expensive part (a cache miss in a big table), so it is done once, under the lock. */
    if (!lock_try()) {
        drop(0);
        return;
    }
    uint64_t addr = (uint64_t)(uintptr_t)ptr, size;
    if (!__atomic_load_n(&hook_recorder.active, __ATOMIC_ACQUIRE)) {
        lock_release();
        return;
    }
    if (hook_recorder.exact) {
        if (hook_ring_put_free(&hook_recorder.ring, addr) == 0)
            hook_counter_add(&hook_recorder.counters.sampled_frees, 1);
        else
            drop(0);
    } else if (hook_live_remove(addr, &size) == 0) {
        block_freed(addr, size);
    }
    lock_release();
}

/* The lock is held by another thread for a bounded copy at most (a slow path of a thread that
 * allocates without the GIL, or the session's end): wait for it rather than lose a CODE_GONE,
 * whose loss would let memsnap name a later code object at this address after the dead one. */
static int lock_wait(void)
{
    for (int spins = 0; !lock_try(); spins++) {
        if (spins >= 1000000)
            return -1;
        if (spins >= 64)
            sched_yield();
    }
    return 0;
}

void hook_record_code_free(void *ptr)
{
    if (lock_wait() != 0) {
        drop(0);
        return;
    }
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    if (__atomic_load_n(&hook_recorder.active, __ATOMIC_ACQUIRE)) {
        /* Every death, announced or not (a full announced set forgets some): no cached stack
         * may name the address for its next code object. */
        hook_slots_invalidate();
        hook_safe_forget(addr);
        if (hook_code_set_remove(addr) == 0 &&
            hook_ring_put_code_gone(&hook_recorder.ring, addr) != 0)
            drop(0); /* memsnap keeps the old name until the address is announced again */
    }
    lock_release();
}
