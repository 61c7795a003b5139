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
    int32_t owner_cstack; /* -1: no shim frames */
    int32_t object_type;
    const void *code_type; /* &PyCode_Type: frames whose code is not a code object are skipped */
};

/* Copies the layout fields out of a validated config. */
void hook_stack_layout_from(struct hook_stack_layout *l, const struct mshook_config *cfg,
                            const void *code_type);

/* 0 when every offset the model needs is present and plausible, else -1. */
int hook_stack_layout_check(const struct hook_stack_layout *l);

/* Walks tstate's frames innermost first into out[0 .. max). Returns the count; *truncated is
 * set to 1 when frames were left out because of max. tstate may be NULL (0 frames). *hash
 * receives a 64-bit hash of the frames kept, their count and *truncated, well mixed in every
 * bit (hook_slots.h uses its low bits as a slot number). */
uint32_t hook_stack_capture(const struct hook_stack_layout *l, const void *tstate,
                            struct mshook_frame *out, uint32_t max, int *truncated, uint64_t *hash);

#endif
