/*
 * hook_ring_wait.h - waiting for the hook's shared region to be ready to map.
 *
 * memsnap_hook_start() returns the number of a memfd in the target before the region in it
 * exists: the hook's install thread sizes, seals and maps it after memsnap has let the
 * hijacked thread go, so that the thread's stop stays short (hook_abi.h, ABI 3). The header's
 * state becomes non-zero last; until then ring_reader_open() would find an empty file.
 */
#ifndef MEMSNAP_HOOK_RING_WAIT_H
#define MEMSNAP_HOOK_RING_WAIT_H

#include <sys/types.h>

#include "error.h"

/* Waits up to timeout_ms for descriptor remote_fd of process pid (a memfd named
 * MSHOOK_MEMFD_NAME) to hold a region whose header state is set. Returns 0 when it does
 * (the caller then maps it with ring_reader_open), or -1 with err: the descriptor is not the
 * hook's ring or went away (the hook could not make its region), the process is gone, or
 * the time ran out. Touches nothing in the target. */
int hook_ring_wait(pid_t pid, int remote_fd, int timeout_ms, ms_error *err);

#endif
