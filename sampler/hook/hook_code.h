/*
 * hook_code.h - code object identities, announced through the ring by the hook itself.
 *
 * memsnap used to name frames by reading code objects from the target's memory when it
 * drained the ring, by which time short-lived code objects (a module's top-level code, code
 * built by exec) were often gone. The hook sees every frame's code object alive, with the GIL
 * held, so it describes each one in a MSHOOK_REC_CODE record the first time a recorded stack
 * references it, remembers that it did in the announced set below, and writes
 * MSHOOK_REC_CODE_GONE when the allocator frees it (see hook_abi.h).
 *
 * The announced set: open addressing over code addresses (each with the fingerprint it was
 * announced with), linear probing, deletion by
 * backward shift, in anonymous mmap'd memory (never the allocator we wrap), created at
 * session start and unmapped at its end. Every call happens under the recorder's lock, so
 * the set needs no atomics and may be remapped when it grows.
 *
 * No filter sits in front of the set on the free path: a freed block is a code object only
 * if its ob_type still points at PyCode_Type (CPython never clears it before PyObject_Free,
 * and code objects are not GC objects on 3.8-3.13, so the block starts with the object), a
 * test that reads the block's own first cache line, which the allocator's free is about to
 * touch anyway. It has no false positives from stale bits and costs no memory, unlike a
 * bitmap; only code objects (or a block whose bytes happen to hold that pointer) reach the
 * set.
 */
#ifndef MEMSNAP_HOOK_CODE_H
#define MEMSNAP_HOOK_CODE_H

#include <stdint.h>

#include "hook_abi.h"

/* Where the fields of code, str and bytes objects are (from the config). */
struct hook_code_layout {
    int32_t name, filename, firstlineno, linetable;
    int32_t unicode_length, unicode_state, unicode_ascii_size, unicode_compact_size,
        unicode_data_ptr;
    int32_t bytes_size, bytes_sval;
    int32_t object_type;
    const void *unicode_type; /* &PyUnicode_Type */
    const void *bytes_type;   /* &PyBytes_Type */
};

void hook_code_layout_from(struct hook_code_layout *l, const struct mshook_config *cfg,
                           const void *unicode_type, const void *bytes_type);

/* 0 when every offset is in [0, 4096) and both types are known, else -1. */
int hook_code_layout_check(const struct hook_code_layout *l);

/* What one code object says about itself: pointers into the live objects, lengths capped. */
struct hook_code_desc {
    int32_t firstlineno;
    uint32_t flags; /* MSHOOK_CODE_* */
    const void *name, *filename, *table;
    uint32_t name_len, filename_len, table_len; /* characters, characters, bytes */
    uint8_t name_kind, filename_kind;
};

/* Describes the code object at code (whose type the caller checked), reading only memory its
 * fields point to after checking each object's type. A table longer than table_max bytes is
 * left out. With the GIL held. */
void hook_code_describe(const struct hook_code_layout *l, const void *code, uint32_t table_max,
                        struct hook_code_desc *out);

/* The announced set. begin: an empty set for a session (0, or -1 when nothing could be
 * mapped); end: unmaps it (safe when there is none). */
int hook_code_set_begin(void);
void hook_code_set_end(void);

/* 1 when addr is in the set with this fingerprint (hook_stack.h): a code object at addr with
 * another fingerprint is a later one, to be announced again. */
int hook_code_set_contains(uint64_t addr, uint64_t fingerprint);

/* Adds addr, or updates its fingerprint: 0, or -1 when the set cannot grow (the caller then
 * announces again next time). */
int hook_code_set_add(uint64_t addr, uint64_t fingerprint);

/* Removes addr: 0, or -1 when it was not there. */
int hook_code_set_remove(uint64_t addr);

#endif
