/*
 * hook_live.h - the set of sampled blocks still alive: address -> requested size.
 *
 * Frees must be matched against sampled allocations without allocating (the hook may not use
 * the allocator it wraps) and without locking on the hot path. So: open addressing with linear
 * probing in anonymous mmap'd memory, deletion by backward shift (no tombstones), growth by
 * rehashing into a table twice the size.
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

/* Adds addr (non-zero, not present). Returns 0, or -1 when the table cannot grow. */
int hook_live_insert(uint64_t addr, uint64_t size);

/* Removes addr and stores its size in *size. Returns 0, or -1 when absent. */
int hook_live_remove(uint64_t addr, uint64_t *size);

/* Lock-free membership test; may be stale under concurrent mutation (re-check under the lock). */
int hook_live_contains(uint64_t addr);

/* Number of entries. */
uint64_t hook_live_count(void);

/* Ends a session: the table becomes empty and its pages go back to the kernel. */
void hook_live_reset(void);

#endif
