/*
 * hook_live.h - the set of sampled blocks still alive: address -> requested size.
 *
 * Frees must be matched against sampled allocations without allocating (the hook may not use
 * the allocator it wraps) and without locking on the hot path. So: open addressing with linear
 * probing in anonymous mmap'd memory, deletion by backward shift (no tombstones), growth by
 * rehashing into a table twice the size.
 *
 * In front of the table sits a filter of 4096 one-byte counters indexed by the address's hash:
 * a free whose counter is 0 is not sampled, and that is the answer for nearly every free,
 * without touching the table at all (a probe of the table was a cache miss per free: 3.6% of
 * the allocation-heavy benchmark's time on its own). Frees read a 512-byte bitmap of which
 * counters are non-zero, not the counters. Counters saturate at 255 and then stay put, which
 * only costs a table probe.
 *
 * Concurrency: every mutation happens under the recorder's lock; hook_live_contains() is
 * lock-free for the free() fast path. Table memory is never unmapped while the library is
 * loaded, only emptied with MADV_DONTNEED (hook_live_reset) and reused by the next session, so
 * a racing lock-free reader always reads mapped memory (at worst a stale answer, which the
 * caller re-checks under the lock). Each capacity class is one mapping, reserved on first use.
 */
#ifndef MEMSNAP_HOOK_LIVE_H
#define MEMSNAP_HOOK_LIVE_H

#include <stdint.h>

/* Prepares an empty table for a session. Returns 0, or -1 when no memory could be mapped. */
int hook_live_begin(void);

/* Adds addr (non-zero) with its size in one probe. When addr is already present (its free went
 * by unseen) the size is replaced and the old one stored in *old_size. Returns 0 added,
 * 1 replaced, -1 when the table cannot grow (nothing changed). */
int hook_live_insert(uint64_t addr, uint64_t size, uint64_t *old_size);

/* Removes addr and stores its size in *size. Returns 0, or -1 when absent. */
int hook_live_remove(uint64_t addr, uint64_t *size);

#define HOOK_LIVE_FILTER_BITS 12

/* The filter the hot path reads: one bit per counter, set while the counter is not 0, so a
 * free touches one of 8 cache lines rather than one of 64 (the 4 KiB of counters evicted the
 * program's own hot data: about 2% of the allocation-heavy benchmark). */
extern uint64_t hook_live_filter_bits[(1u << HOOK_LIVE_FILTER_BITS) / 64];

/* The hot-path test: 0 when addr is certainly not in the table. Lock-free. */
static inline int hook_live_maybe(uint64_t addr)
{
    uint64_t h = ((addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - HOOK_LIVE_FILTER_BITS);
    return (int)((__atomic_load_n(&hook_live_filter_bits[h >> 6], __ATOMIC_RELAXED) >> (h & 63)) &
                 1);
}

/* Starts loading the table slot where addr would be, so the cache miss overlaps other work
 * (the stack walk, the original free). A hint only: safe at any time. */
void hook_live_prefetch(uint64_t addr);

/* Lock-free membership test; may be stale under concurrent mutation (re-check under the lock). */
int hook_live_contains(uint64_t addr);

/* Number of entries. */
uint64_t hook_live_count(void);

/* Ends a session: the table becomes empty and its pages go back to the kernel. */
void hook_live_reset(void);

#endif
