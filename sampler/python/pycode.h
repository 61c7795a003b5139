/*
 * pycode.h - a cache from code object addresses in the target to names, files and lines.
 *
 * Frames only give a code object address; turning it into "function (file:line)" takes
 * several dependent remote reads (the object, its name strings, their characters, the line
 * table), so results are cached. Code objects are immutable while alive, but their memory is
 * reused after they are freed, so each entry keeps a signature read from the object (type,
 * name/qualname/filename/linetable pointers, first line). pycode_cache_epoch() marks every
 * entry for revalidation: its next lookup re-reads the header (batched in
 * pycode_resolve_many) and re-resolves when the signature changed. A replaced entry is kept,
 * not freed, because callers may still hold its pointers.
 *
 * Trust: every pointer comes from the target. ob_type must be PyCode_Type (when that symbol is
 * unknown, the type's tp_name must be "code"), names are read at most 4 KiB of characters and
 * line tables at most 64 KiB, strings are decoded from any PEP 393 kind into UTF-8.
 *
 * Not thread-safe: one cache per thread of memsnap.
 */
#ifndef MEMSNAP_PYCODE_H
#define MEMSNAP_PYCODE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pyruntime.h"

/* Caps on what one code object may make us read. */
#define PYCODE_NAME_MAX      4096  /* bytes of characters of a name or file name */
#define PYCODE_LINETABLE_MAX 65536 /* bytes of line table */

struct pycode_cache;

struct pycode_info {
    const char *name;     /* co_qualname (3.11+) else co_name, UTF-8, never NULL */
    const char *filename; /* co_filename, UTF-8, never NULL */
    int firstlineno;
    /* private: what pycode_line needs */
    const uint8_t *linetable;
    size_t linetable_len;
};

/* A cache for the interpreter rt describes; rt must outlive it. NULL on out of memory. */
struct pycode_cache *pycode_cache_new(const struct pyruntime *rt);

/* Frees the cache and every pycode_info it returned. NULL is allowed. */
void pycode_cache_free(struct pycode_cache *c);

/* Marks every cached entry for revalidation on its next use (call once per sampling round or
 * after the target ran for a while). */
void pycode_cache_epoch(struct pycode_cache *c);

/* Resolves (and caches) one code object. *out stays valid until pycode_cache_free.
 * 0, or -1 with err (not a code object, unreadable, process gone: errno as in remote.h). */
int pycode_resolve(struct pycode_cache *c, uint64_t code_addr, const struct pycode_info **out,
                   ms_error *err);

/* Resolves n code objects with a few batched reads (three round trips for any number of new
 * objects). out[i] is NULL for an address that could not be resolved. Returns 0, or -1 with
 * err when the process is gone (errno ESRCH) or memory ran out; err is also filled with the
 * first per-address failure when some out[i] are NULL. */
int pycode_resolve_many(struct pycode_cache *c, const uint64_t *addrs, size_t n,
                        const struct pycode_info **out, ms_error *err);

/* The source line for a frame of this code whose raw instruction field is raw_lasti
 * (f_lasti for 3.8-3.10, prev_instr/instr_ptr for 3.11+), or -1 when unknown. */
int pycode_line(const struct pycode_cache *c, const struct pycode_info *ci, uint64_t code_addr,
                uint64_t raw_lasti);

/* Entries cached (for tests and statistics). */
size_t pycode_cache_size(const struct pycode_cache *c);

#endif
