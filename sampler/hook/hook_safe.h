/*
 * hook_safe.h - fault-safe reads of the target's own memory, and the cache of code objects the
 * hook has proven readable.
 *
 * The hook runs inside the target on every sampled allocation, so a fault in it is the target's
 * death. Frames, code objects, their names and line tables live in memory a C extension or a
 * ctypes write may have corrupted, harmlessly to the program (a frame it never returns through)
 * but not to a reader that follows the garbage. So the hook dereferences a code object only
 * after it was proven once:
 *
 *   - hook_safe_read() copies bytes with process_vm_readv on our own pid: the kernel reports
 *     EFAULT for an unreadable range instead of delivering SIGSEGV, and no signal handler is
 *     installed in the target. It costs a syscall (about a microsecond), so it is the slow path.
 *   - hook_safe_code() proves a code object the first time a walk meets its address: its header
 *     is readable, its type is PyCode_Type, its line table is a bytes object of a sane size
 *     whose first and last bytes are readable, its name and file name are readable str objects
 *     (the bytes hook_code_describe() will copy, capped as it caps them). The verdict goes into
 *     a direct-mapped cache (one 64-byte line per entry, static memory, never unmapped); later
 *     walks pay a hash and a load per frame.
 *
 * How long a verdict lasts: a good entry names the object's fields as they were proven (name,
 * file name and line table pointers, first line, table length). Where the hook sees code
 * objects die (every free of the object domain is wrapped), hook_safe_forget() drops the entry
 * at the free and a hit needs no read of the object at all. Where it does not (fingerprint
 * mode, see hook_alloc.h), each hit re-reads the object's own fields (memory proven readable)
 * and the table's length, and any difference sends it back to the slow path: the bytes read
 * from the table (its ends) are always within the length that was proven. A bad entry (not
 * readable, not a code object, absurd sizes) lasts until the allocation counter crosses the
 * next 2^16 boundary, so a corrupted frame costs one syscall per 65536 allocations, not one
 * per sample, and a repaired address is proven again.
 *
 * Writers are the walks, under the GIL; the entry's address word is written last and read
 * twice, so a walk from a thread that broke the GIL rule sees a torn entry as a miss.
 */
#ifndef MEMSNAP_HOOK_SAFE_H
#define MEMSNAP_HOOK_SAFE_H

#include <stddef.h>
#include <stdint.h>

#include "hook_code.h"
#include "hook_stack.h"

/* Copies n bytes at addr into out: 0, or -1 when any of them cannot be read. Keeps errno. */
int hook_safe_read(const void *addr, void *out, size_t n);

/* Whether hook_safe_read works in this process (a seccomp filter may deny process_vm_readv):
 * 0, or a positive errno. Called once per session, before anything is wrapped; also notes the
 * pid (after fork the session is the parent's and the child forgets it). */
int hook_safe_begin(void);

/* A new session: every cached verdict is forgotten (without touching the cache's memory). */
void hook_safe_reset(void);

/* The outcome of proving a frame's code. */
enum hook_safe_verdict {
    HOOK_SAFE_CODE = 1, /* a code object, proven readable; *fingerprint is its identity */
    HOOK_SAFE_BAD = 2,  /* unreadable, not a code object, or absurd: cut the stack here */
};

/* The verdict for the code pointer code (plausible: non-NULL, 8-aligned, >= 4096). reread: the
 * hook does not see code objects die, so a cached good verdict is checked against the object's
 * current fields. epoch: the current allocation counter >> 16 (bad verdicts expire with it).
 * *fingerprint receives the code's fingerprint (hook_code_fingerprint's value) when good. */
int hook_safe_code(const struct hook_stack_layout *sl, const struct hook_code_layout *cl,
                   const void *code, int reread, uint32_t epoch, uint64_t *fingerprint);

/* A code object at addr was freed (the object domain's free wrapper saw it). */
void hook_safe_forget(uint64_t addr);

#endif
