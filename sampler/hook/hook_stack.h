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

struct hook_code_layout;

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
 * first one die (its fingerprint): its own address, the addresses of its name, file name and
 * line table objects, its first line, and the line table's length and first and last 8 bytes.
 * All are set when the object is made and never change. Two code objects that agree on all of
 * them name the same function, in the same file, from the same line, with line tables of one
 * length that agree at both ends: at worst a frame of the later one would get a line of the
 * earlier one. hook_safe.c computes it, from memory it proved readable first. */

/* Copies the layout fields out of a validated config (fingerprint off). */
void hook_stack_layout_from(struct hook_stack_layout *l, const struct mshook_config *cfg,
                            const void *code_type, const void *bytes_type);

/* 0 when every offset the model needs is present and plausible, else -1. */
int hook_stack_layout_check(const struct hook_stack_layout *l);

/* Walks tstate's frames innermost first into out[0 .. max), with each code's fingerprint in
 * idents. Returns the count. *flags receives MSHOOK_STACK_TRUNCATED when frames were left out
 * because of max, MSHOOK_STACK_INVALID (and the walk stops there) at a frame whose code the
 * hook could not prove readable (hook_safe.h), or at a chain that loops. tstate may be NULL
 * (0 frames). epoch: the allocation counter >> 16 (hook_safe_code). *hash receives a 64-bit
 * hash of the frames kept, their count and *flags, well mixed in every bit (hook_slots.h uses
 * its low bits as a slot number). */
uint32_t hook_stack_capture(const struct hook_stack_layout *l, const struct hook_code_layout *cl,
                            const void *tstate, uint32_t epoch, struct mshook_frame *out,
                            uint64_t *idents, uint32_t max, uint32_t *flags, uint64_t *hash);

#endif
