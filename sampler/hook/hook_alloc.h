/*
 * hook_alloc.h - the allocator wrappers and their installation with PyMem_SetAllocator.
 *
 * Each wrapped domain gets a slot holding the allocator it wraps; the wrappers call that
 * original for every request (so block layout never changes) and report to the recorder
 * while the slot is recording. Slots live in static storage for the life of the process,
 * because a slot may have to stay in the allocator chain as a pass-through when someone else
 * wrapped us after we installed (PyMem_SetAllocator has no "remove from the middle"): such a
 * slot is retired and never reused; a slot that we could unhook cleanly is reused by a later
 * session.
 *
 * Routing (hook_alloc_can_route_raw): at sampled rates, when every domain holds CPython's
 * default pymalloc, the object and memory domains keep pymalloc's own free and a sampled
 * request is made big enough that pymalloc serves it from raw memory; frees of sampled blocks
 * are then seen by a wrapper of the raw domain's free alone. The program's hot frees run
 * CPython's inlined fast path untouched (wrapping them cost ~3-5% of an allocation-heavy
 * program's time, see README), at the price of sampled blocks of 513+ bytes and of no longer
 * seeing code objects die (the stack walk then fingerprints them: hook_stack.h). Without
 * routing the wrappers call the original with the request as it came, so no block changes.
 *
 * install/uninstall need the GIL (the domains are swapped under it, race-free); disable and
 * the fork handler do not take it and leave our wrappers in place as pass-throughs.
 */
#ifndef MEMSNAP_HOOK_ALLOC_H
#define MEMSNAP_HOOK_ALLOC_H

#include <stdint.h>

#include "hook_abi.h"
#include "hook_python.h"

/* 1 when sampled blocks may be routed through the raw domain: every domain holds CPython's
 * default allocators with pymalloc (_PyMem_GetCurrentAllocatorName() says "pymalloc"; not with
 * PYTHONMALLOC=malloc or debug hooks, nor when someone else wrapped a domain). GIL held. */
int hook_alloc_can_route_raw(const struct hook_python *api);

/* Wraps every domain named in domains (MSHOOK_DOMAIN_* bits), routing sampled blocks through
 * the raw domain when route_raw (which hook_alloc_can_route_raw must have allowed). GIL held. While
 * recording, the wrappers call tick() every few thousand calls, with the GIL held, before
 * forwarding the call; tick may end the session (hook_alloc_uninstall or hook_alloc_disable) and
 * may not allocate through the wrapped domains. Returns 0, or -1 when no slot is free (nothing
 * stays installed then). */
int hook_alloc_install(const struct hook_python *api, uint32_t domains, int route_raw,
                       void (*tick)(void));

/* Stops recording and restores each domain's original allocator when our wrapper is still on
 * top, else retires it as a pass-through. GIL held. */
void hook_alloc_uninstall(const struct hook_python *api);

/* Finds where each wrapped domain's PyMemAllocatorEx lives (the interpreter keeps them in
 * static memory of the object that defines PyMem_SetAllocator: _PyMem/_PyObject/_PyMem_Raw up
 * to 3.11, _PyRuntime.allocators.standard since 3.12) by searching that object's writable
 * segments for the ctx and malloc our wrapper just put there, and writes each address with
 * that pair into shared->alloc_* so that memsnap can tell when the target replaces the
 * allocator (docs/hook-safety.md). Reads with hook_safe_read (after hook_safe_begin). GIL
 * held, right after hook_alloc_install. */
void hook_alloc_locate(const struct hook_python *api, struct mshook_shared *shared);

/* Stops recording without the GIL (finalizing interpreter, fork child): every installed
 * wrapper becomes a pass-through for good. */
void hook_alloc_disable(void);

#endif
