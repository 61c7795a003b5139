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
 * install/uninstall need the GIL (the domains are swapped under it, race-free); disable and
 * the fork handler do not take it and leave our wrappers in place as pass-throughs.
 */
#ifndef MEMSNAP_HOOK_ALLOC_H
#define MEMSNAP_HOOK_ALLOC_H

#include <stdint.h>

#include "hook_python.h"

/* Wraps every domain named in domains (MSHOOK_DOMAIN_* bits). GIL held. While recording, the
 * wrappers call tick() every few thousand calls, with the GIL held, before forwarding the call;
 * tick may end the session (hook_alloc_uninstall or hook_alloc_disable) and may not allocate
 * through the wrapped domains. Returns 0, or -1 when no slot is free (nothing stays installed
 * then). */
int hook_alloc_install(const struct hook_python *api, uint32_t domains, void (*tick)(void));

/* Stops recording and restores each domain's original allocator when our wrapper is still on
 * top, else retires it as a pass-through. GIL held. */
void hook_alloc_uninstall(const struct hook_python *api);

/* Stops recording without the GIL (finalizing interpreter, fork child): every installed
 * wrapper becomes a pass-through for good. */
void hook_alloc_disable(void);

#endif
