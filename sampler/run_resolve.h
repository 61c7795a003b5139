/*
 * run_resolve.h - a stacks.h resolver that remembers what each code object address held, for
 * `memsnap run`.
 *
 * A raw frame names a code object by address, and memsnap reads the object some time after
 * the hook recorded the frame. A module's top-level code object lives only while its import
 * runs, so during a program's startup many code objects are freed before the drain that
 * revalidates them; the inner resolver (session_resolve) then rightly finds no code object
 * there, and the frame would become "<unknown>" although it was resolved a moment earlier.
 * This wrapper keeps, per address, the last code object the inner resolver found there and
 * answers with it when the address no longer holds a readable code object: a frame recorded
 * at that address was that code object, unless another one took its place - which the inner
 * resolver sees, and then the new one is remembered. It also remembers failures for the
 * rest of an epoch, so an unreadable address costs one remote read per epoch instead of one
 * per event.
 *
 * Bounds: at most RUN_RESOLVE_MAX addresses are remembered; past that, new addresses go
 * straight to the inner resolver. Not thread-safe.
 */
#ifndef MEMSNAP_RUN_RESOLVE_H
#define MEMSNAP_RUN_RESOLVE_H

#include <stdint.h>

#include "error.h"
#include "stacks.h"

#define RUN_RESOLVE_MAX (1u << 20)

struct run_resolve_slot;

struct run_resolve {
    struct stacks_resolver inner; /* copied; its strings must outlive this resolver */
    uint32_t epoch;               /* starts at 1 */
    struct run_resolve_slot *slots;
    uint32_t cap, used;
};

/* Wraps inner. Returns 0, or -1 with err on ENOMEM. */
int run_resolve_init(struct run_resolve *rv, const struct stacks_resolver *inner, ms_error *err);

/* The resolver to hand to the collector. */
struct stacks_resolver run_resolve_resolver(struct run_resolve *rv);

/* Call beside the inner resolver's epoch: failures are retried from now on. */
void run_resolve_epoch(struct run_resolve *rv);

void run_resolve_free(struct run_resolve *rv);

#endif
