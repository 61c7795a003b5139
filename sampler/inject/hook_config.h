/*
 * hook_config.h - builds the struct mshook_config memsnap hands to memsnap_hook_start.
 *
 * The hook walks Python stacks in-process with offsets memsnap supplies; this is the one place
 * that maps a version's struct py_offsets row onto the config's frame-walk fields, so the
 * attach path, `memsnap run` and the tests all describe an interpreter the same way.
 */
#ifndef MEMSNAP_HOOK_CONFIG_H
#define MEMSNAP_HOOK_CONFIG_H

#include <stdint.h>

#include "error.h"
#include "hook/hook_abi.h"
#include "py_offsets.h"

/* What a session should do; the rest of the config comes from the offsets row. */
struct hook_config_params {
    uint64_t rate;                 /* mean bytes between samples, >= 1 (1 = every allocation) */
    uint64_t ring_bytes;           /* 0 = MSHOOK_DEFAULT_RING_BYTES */
    uint32_t domains;              /* 0 = MSHOOK_DOMAIN_MEM | MSHOOK_DOMAIN_OBJ */
    uint32_t heartbeat_timeout_ms; /* 0 = HOOK_CONFIG_DEFAULT_TIMEOUT_MS */
    uint32_t max_frames;           /* 0 = MSHOOK_MAX_FRAMES */
    uint32_t flags;                /* MSHOOK_F_* */
    uint32_t stack_slots;          /* 0 = HOOK_CONFIG_SLOTS_EXACT at rate 1, else _SAMPLED */
    uint64_t seed;
    int32_t memsnap_pid;
};

/* The default sampling rate (bytes) of `memsnap attach`: see hook_config.c for the
 * measurement behind it. */
#define HOOK_CONFIG_DEFAULT_RATE       (512u << 10)
#define HOOK_CONFIG_DEFAULT_TIMEOUT_MS 1500u

/* Stack slots (hook/hook_slots.h): recording every allocation meets every distinct stack of
 * the program (a Django start-up has tens of thousands), so the table is big enough that
 * stacks seldom evict each other (1.5 MiB, in the region, outside the program's RSS); sampled,
 * a few thousand slots hold the hot stacks in 96 KiB. */
#define HOOK_CONFIG_SLOTS_EXACT   (1u << 16)
#define HOOK_CONFIG_SLOTS_SAMPLED (1u << 12)

/* The stack slots a session at `rate` gets when the parameters leave them at 0. */
uint32_t hook_config_default_slots(uint64_t rate);

/* Fills cfg for CPython py_version_hex (PY_VERSION_HEX of the target) described by o.
 * Returns 0, or -1 with a sentence in err when the parameters are out of range or the row
 * lacks a field its frame model needs. */
int hook_config_build(struct mshook_config *cfg, const struct py_offsets *o,
                      uint32_t py_version_hex, const struct hook_config_params *p, ms_error *err);

#endif
