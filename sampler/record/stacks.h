/*
 * stacks.h - interning the raw stacks the hook records into profile locations and stack ids.
 *
 * The hook captures a stack as raw (code object address, raw lasti) pairs, innermost first.
 * Those addresses are only meaningful while the code objects live: the collector resolves
 * each new pair promptly (at drain time) into a profile location (function, line) and
 * interns stacks by their resolved locations plus their thread label, so two different code
 * objects that reused one address never share a stack.
 *
 * Resolution goes through a caller-supplied resolver (the session wires code objects to the
 * code table the hook feeds through the ring, code_table.h, and thread labels to the thread
 * states; unit tests use a table). A cache maps (code, lasti) to its location and the
 * identity of the code object it was computed for; every use asks the resolver for the
 * address's current identity (a hash lookup in memsnap's memory) and recomputes when it
 * changed, because the target may have freed the code object and reused its address.
 * Thread labels are cached per epoch: after stacks_epoch() each is looked up again once.
 *
 * Slots: the hook sends each stack once, in a STACK record that defines a slot number, and
 * names the slot in every ALLOC (hook/hook_slots.h). stacks_define() resolves the frames at
 * once (the code objects they name are the ones announced so far) and remembers the slot's
 * stack id; stacks_slot() answers the id in O(1), re-labelling the thread once per epoch.
 *
 * Bounds: at most STACKS_MAX distinct stacks; past that, new stacks collapse into a single
 * "<stack table full>" stack so a hostile or pathological target cannot grow memsnap
 * without limit. Frames whose code object cannot be read become one "<unknown>" location.
 * A stack the hook truncated gets a "<truncated>" caller frame; one it cut at a frame it could
 * not prove readable (a corrupted interpreter, docs/hook-safety.md) gets
 * "<unreadable frame: stack cut>".
 *
 * Not thread-safe; one instance per profiled process.
 */
#ifndef MEMSNAP_STACKS_H
#define MEMSNAP_STACKS_H

#include <stdint.h>

#include "error.h"
#include "hook/hook_abi.h"
#include "profile.h"

#define STACKS_MAX (1u << 20)

/* What the resolver says about one code object. `identity` is any pointer that stays the
 * same while the address holds the same code object, and changes when it is reused
 * (code_table: a generation number). Strings need only stay valid until the resolver's next
 * change (they are copied into the profile at once). */
struct stacks_code {
    const void *identity;
    const char *name;
    const char *filename;
    int firstlineno;
};

struct stacks_resolver {
    void *ctx;
    /* 0 and *out filled, or -1 when the address is not a readable code object. */
    int (*code)(void *ctx, uint64_t code_addr, struct stacks_code *out);
    /* The line of the frame, or -1 when unknown (the function's first line is used). */
    int (*line)(void *ctx, const struct stacks_code *code, uint64_t code_addr, uint64_t raw_lasti);
    /* The "thread" label of a thread state ("MainThread", "thread 1234"); NULL = no label. */
    const char *(*thread)(void *ctx, uint64_t tstate);
};

struct stacks;

/* A new interner adding functions, locations and strings to `p` (borrowed; must outlive the
 * interner), with `slots` stack slots (0 for none; at most MSHOOK_STACK_SLOTS_MAX). The
 * resolver is copied. NULL on ENOMEM or too many slots. */
struct stacks *stacks_new(struct profile *p, const struct stacks_resolver *r, uint32_t slots);
void stacks_free(struct stacks *s);

/* Marks every cached thread label as needing revalidation. O(1). */
void stacks_epoch(struct stacks *s);

/* `truncated` of stacks_intern / stacks_define: 0, or these bits. */
#define STACKS_CUT_DEPTH   1 /* cut at the hook's depth limit: "<truncated>" */
#define STACKS_CUT_INVALID 2 /* cut at an unreadable frame: "<unreadable frame: stack cut>" */

/* Resolves and interns one stack; *stack_id is a dense index (0, 1, ...). frames are
 * innermost first; nframes may be 0 (an allocation outside any Python frame). Returns 0, or
 * -1 on ENOMEM with err filled. */
int stacks_intern(struct stacks *s, uint64_t tstate, const struct mshook_frame *frames,
                  uint32_t nframes, int truncated, uint32_t *stack_id, ms_error *err);

/* Interns the stack of a STACK record and makes slot `slot` name it until redefined.
 * Returns 0, or -1 with err filled on ENOMEM or a slot out of range. */
int stacks_define(struct stacks *s, uint32_t slot, uint64_t tstate,
                  const struct mshook_frame *frames, uint32_t nframes, int truncated,
                  ms_error *err);

/* The stack id slot `slot` names now: the one it was defined with, under the thread's current
 * label; a slot never defined (only a broken or hostile hook sends that) names an
 * "<unknown stack>" stack. Returns 0, or -1 with err filled on ENOMEM or a slot out of
 * range. */
int stacks_slot(struct stacks *s, uint32_t slot, uint32_t *stack_id, ms_error *err);

uint32_t stacks_count(const struct stacks *s);

/* The profile location indexes (leaf first) and thread label string index (0 = none) of a
 * stack. The pointer is valid until the next stacks_intern. */
void stacks_get(const struct stacks *s, uint32_t stack_id, const uint32_t **locs, uint32_t *nlocs,
                uint32_t *thread);

#endif
