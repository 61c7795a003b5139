/*
 * hook_config.c - fills struct mshook_config from an offsets row; see hook_config.h.
 *
 * The default rate, 512 KiB (Go's): on the allocation-heavy benchmark (scripts/bench.d/hook.sh,
 * tests/py/run_workload.py, Debian's python3, 18M allocations in ~1.5 s) the hook takes 2.5-2.8%
 * of the process's CPU samples at 512 KiB and 3.1% at 64 KiB; almost all of it is the wrappers'
 * fixed cost per call (about 2.3%), which no rate removes, so a smaller rate buys samples at a
 * cost that crosses the 3% budget near 64 KiB. 512 KiB still gives ~2,000 samples per second of
 * such a workload, enough for the heaviest stacks, and keeps the ring nearly idle.
 */
#include "hook_config.h"

#include <string.h>

uint32_t hook_config_default_slots(uint64_t rate)
{
    return rate == 1 ? HOOK_CONFIG_SLOTS_EXACT : HOOK_CONFIG_SLOTS_SAMPLED;
}

int hook_config_build(struct mshook_config *cfg, const struct py_offsets *o,
                      uint32_t py_version_hex, const struct hook_config_params *p, ms_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!o)
        return ms_error_set(err, "no offsets for this Python version");
    uint64_t ring = p->ring_bytes ? p->ring_bytes : MSHOOK_DEFAULT_RING_BYTES;
    if (ring < (64u << 10) || ring > (1ull << 30) || (ring & (ring - 1)) != 0)
        return ms_error_set(err, "ring size %llu is not a power of two in [64 KiB, 1 GiB]",
                            (unsigned long long)ring);
    if (p->rate == 0)
        return ms_error_set(err, "sampling rate must be at least 1 byte");
    uint32_t frames = p->max_frames ? p->max_frames : MSHOOK_MAX_FRAMES;
    if (frames > MSHOOK_MAX_FRAMES)
        return ms_error_set(err, "at most %d frames per stack", MSHOOK_MAX_FRAMES);
    uint32_t slots = p->stack_slots;
    if (!slots)
        slots = hook_config_default_slots(p->rate);
    if (slots < MSHOOK_STACK_SLOTS_MIN || slots > MSHOOK_STACK_SLOTS_MAX ||
        (slots & (slots - 1)) != 0)
        return ms_error_set(err, "%u stack slots is not a power of two in [%u, %u]", slots,
                            MSHOOK_STACK_SLOTS_MIN, MSHOOK_STACK_SLOTS_MAX);

    cfg->magic = MSHOOK_MAGIC;
    cfg->abi = MSHOOK_ABI;
    cfg->size = sizeof *cfg;
    cfg->rate = p->rate;
    cfg->ring_bytes = ring;
    cfg->domains = p->domains ? p->domains : (MSHOOK_DOMAIN_MEM | MSHOOK_DOMAIN_OBJ);
    cfg->heartbeat_timeout_ms =
        p->heartbeat_timeout_ms ? p->heartbeat_timeout_ms : HOOK_CONFIG_DEFAULT_TIMEOUT_MS;
    cfg->py_version_hex = py_version_hex;
    cfg->max_frames = frames;
    cfg->stack_slots = slots;
    cfg->seed = p->seed;
    cfg->memsnap_pid = p->memsnap_pid;
    cfg->flags = p->flags;
    cfg->frame_model = (uint32_t)o->frame_model;
    cfg->lasti_model = (uint32_t)o->lasti_model;
    cfg->object_type = o->object_type;
    cfg->cframe_current_frame = -1;
    cfg->frame_owner = -1;
    cfg->owner_cstack = -1;
    switch (o->frame_model) {
    case PY_FRAME_OBJECT:
        cfg->tstate_frame = o->tstate_frame;
        cfg->frame_back = o->frame_back;
        cfg->frame_code = o->frame_code;
        cfg->frame_lasti = o->frame_lasti;
        break;
    case PY_FRAME_CFRAME:
    case PY_FRAME_CURRENT:
        cfg->tstate_frame =
            o->frame_model == PY_FRAME_CFRAME ? o->tstate_cframe : o->tstate_current_frame;
        cfg->cframe_current_frame = o->cframe_current_frame;
        cfg->frame_back = o->iframe_previous;
        cfg->frame_code = o->iframe_code;
        cfg->frame_lasti = o->iframe_instr;
        cfg->frame_owner = o->iframe_owner;
        cfg->owner_cstack = o->owner_skip_from;
        cfg->code_tag_mask = o->code_tag_mask > 0 ? (uint32_t)o->code_tag_mask : 0;
        break;
    default:
        return ms_error_set(err, "Python %d.%d: unknown frame model %d", o->major, o->minor,
                            o->frame_model);
    }
    cfg->code_name = o->code_qualname >= 0 ? o->code_qualname : o->code_name;
    cfg->code_filename = o->code_filename;
    cfg->code_firstlineno = o->code_firstlineno;
    cfg->code_linetable = o->code_linetable >= 0 ? o->code_linetable : o->code_lnotab;
    cfg->unicode_length = o->unicode_length;
    cfg->unicode_state = o->unicode_state;
    cfg->unicode_ascii_size = o->unicode_ascii_size;
    cfg->unicode_compact_size = o->unicode_compact_size;
    cfg->unicode_data_ptr = o->unicode_data_ptr;
    cfg->bytes_size = o->varobject_size;
    cfg->bytes_sval = o->bytes_sval;
    if (cfg->code_name < 0 || cfg->code_filename < 0 || cfg->code_firstlineno < 0 ||
        cfg->code_linetable < 0 || cfg->unicode_length < 0 || cfg->unicode_state < 0 ||
        cfg->unicode_ascii_size <= 0 || cfg->unicode_compact_size <= 0 ||
        cfg->unicode_data_ptr < 0 || cfg->bytes_size < 0 || cfg->bytes_sval < 0)
        return ms_error_set(err, "Python %d.%d: the offsets table lacks a code or str field",
                            o->major, o->minor);
    if (cfg->tstate_frame < 0 || cfg->frame_back < 0 || cfg->frame_code < 0 ||
        cfg->frame_lasti < 0 || cfg->object_type < 0 ||
        (o->frame_model == PY_FRAME_CFRAME && cfg->cframe_current_frame < 0))
        return ms_error_set(err, "Python %d.%d: the offsets table lacks a frame field", o->major,
                            o->minor);
    return 0;
}
