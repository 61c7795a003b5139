/*
 * hook_stack.h - captures the calling thread's Python stack in-process, as raw pairs.
 *
 * The hook records (code object address, instruction field) per frame and leaves names and
 * line numbers to memsnap, which resolves them with remote reads outside the target's hot
 * path. The walk follows the frame model memsnap chose for this interpreter version (from its
 * offset table, passed in struct mshook_config) and reads the target's own memory directly:
 * it runs on a thread holding the GIL, inside an allocator call, where the chain is
 * consistent. It allocates nothing, takes no lock and calls nothing but memory reads.
 */
#ifndef MEMSNAP_HOOK_STACK_H
#define MEMSNAP_HOOK_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "hook_abi.h"

struct hook_stack_layout {
    uint32_t frame_model; /* enum py_frame_model: 1 object, 2 cframe, 3 current_frame */
    uint32_t lasti_model; /* enum py_lasti_model: 1, 2 int32 field; 3, 4 pointer */
    int32_t tstate_frame;
    int32_t cframe_current_frame;
    int32_t frame_back;
    int32_t frame_code;
    int32_t frame_lasti;
    int32_t frame_owner;  /* -1: no owner field */
    int32_t owner_cstack; /* frames with owner >= this are skipped; -1: none */
    int32_t object_type;
    const void *code_type; /* &PyCode_Type: frames whose code is not a code object are skipped */
    /* Where a code object keeps the fields of its fingerprint (hook_code_fingerprint), and
     * where a bytes object (its line table) keeps its size and bytes. */
    int32_t code_name, code_filename, code_firstlineno, code_linetable;
    int32_t bytes_size, bytes_sval;
    const void *bytes_type; /* &PyBytes_Type */
    /* 1: each frame's code enters the stack hash with its fingerprint, not its address alone
     * (set when the hook cannot see code objects die: see hook_alloc.h). */
    uint32_t fingerprint;
    uint32_t code_tag_mask; /* low bits of frame_code that are tags (3.14), else 0 */
};

/* What tells a code object from a later one at the same address when the hook cannot see the
 * first one die: its own address, the addresses of its name, file name and line table objects,
 * its first line, and the line table's length and first and last 8 bytes. All are set when the
 * object is made and never change; all are read from the live code object (a frame holds it)
 * and its live line table (the code holds it; read only when it is a bytes object). Two code
 * objects that agree on all of them name the same function, in the same file, from the same
 * line, with line tables of one length that agree at both ends: at worst a frame of the later
 * one would get a line of the earlier one. */
static inline uint64_t hook_code_fingerprint(const struct hook_stack_layout *l, const void *code)
{
    const char *c = code;
    uint64_t name = *(const uint64_t *)(c + l->code_name);
    uint64_t file = *(const uint64_t *)(c + l->code_filename);
    const char *table = *(const char *const *)(c + l->code_linetable);
    uint64_t line = (uint64_t)(uint32_t) * (const int32_t *)(c + l->code_firstlineno);
    uint64_t fp = (uint64_t)(uintptr_t)code ^ (name * 0x9e3779b97f4a7c15ull) ^
                  (file * 0xc2b2ae3d27d4eb4full) ^
                  ((uint64_t)(uintptr_t)table * 0x165667b19e3779f9ull) ^ (line << 32);
    if (table && ((uintptr_t)table & 7) == 0 &&
        *(const void *const *)(table + l->object_type) == l->bytes_type) {
        int64_t n = *(const int64_t *)(table + l->bytes_size);
        const unsigned char *bytes = (const unsigned char *)table + l->bytes_sval;
        uint64_t head = 0, tail = 0;
        if (n > 0) {
            size_t k = n < 8 ? (size_t)n : 8;
            for (size_t i = 0; i < k; i++) {
                head = head << 8 | bytes[i];
                tail = tail << 8 | bytes[(size_t)n - k + i];
            }
        }
        fp ^= ((uint64_t)n * 0xd6e8feb86659fd93ull) ^ (head * 0xa0761d6478bd642full) ^
              (tail * 0xe7037ed1a0b428dbull);
    }
    return fp;
}

/* Copies the layout fields out of a validated config (fingerprint off). */
void hook_stack_layout_from(struct hook_stack_layout *l, const struct mshook_config *cfg,
                            const void *code_type, const void *bytes_type);

/* 0 when every offset the model needs is present and plausible, else -1. */
int hook_stack_layout_check(const struct hook_stack_layout *l);

/* Walks tstate's frames innermost first into out[0 .. max). Returns the count; *truncated is
 * set to 1 when frames were left out because of max. tstate may be NULL (0 frames). *hash
 * receives a 64-bit hash of the frames kept, their count and *truncated, well mixed in every
 * bit (hook_slots.h uses its low bits as a slot number). */
uint32_t hook_stack_capture(const struct hook_stack_layout *l, const void *tstate,
                            struct mshook_frame *out, uint32_t max, int *truncated, uint64_t *hash);

#endif
