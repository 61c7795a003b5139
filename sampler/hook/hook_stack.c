/*
 * hook_stack.c - the in-process frame walk; see hook_stack.h.
 *
 * Every pointer is checked for NULL and 8-byte alignment before it is followed, and the walk
 * is bounded, so a frame chain caught mid-update (a C extension misusing the allocator
 * without the GIL) ends the stack early instead of looping. Every frame's code pointer is
 * proven readable, and a code object, before anything reads through it (hook_safe.h): a
 * corrupted one (0xdead0000, another type, a line table of 2^40 bytes) cuts the stack there
 * with MSHOOK_STACK_INVALID, and so does a chain that loops. What is not proven: the frames
 * themselves, which come from the thread state and the previous frame (see
 * docs/hook-safety.md for why, and what that leaves).
 */
#include "hook_stack.h"

#include <stddef.h>

#include "hook_safe.h"

/* A walk longer than this is a cycle or garbage, not a stack: stop. */
#define STACK_WALK_LIMIT 4096

void hook_stack_layout_from(struct hook_stack_layout *l, const struct mshook_config *cfg,
                            const void *code_type, const void *bytes_type)
{
    l->frame_model = cfg->frame_model;
    l->lasti_model = cfg->lasti_model;
    l->tstate_frame = cfg->tstate_frame;
    l->cframe_current_frame = cfg->cframe_current_frame;
    l->frame_back = cfg->frame_back;
    l->frame_code = cfg->frame_code;
    l->frame_lasti = cfg->frame_lasti;
    l->frame_owner = cfg->frame_owner;
    l->owner_cstack = cfg->owner_cstack;
    l->object_type = cfg->object_type;
    l->code_type = code_type;
    l->code_name = cfg->code_name;
    l->code_filename = cfg->code_filename;
    l->code_firstlineno = cfg->code_firstlineno;
    l->code_linetable = cfg->code_linetable;
    l->bytes_size = cfg->bytes_size;
    l->bytes_sval = cfg->bytes_sval;
    l->bytes_type = bytes_type;
    l->fingerprint = 0;
    l->code_tag_mask = cfg->code_tag_mask;
}

static int offset_ok(int32_t off)
{
    return off >= 0 && off < 4096;
}

int hook_stack_layout_check(const struct hook_stack_layout *l)
{
    if (l->frame_model < 1 || l->frame_model > 3 || l->lasti_model < 1 || l->lasti_model > 4)
        return -1;
    if (!offset_ok(l->tstate_frame) || !offset_ok(l->frame_back) || !offset_ok(l->frame_code) ||
        !offset_ok(l->frame_lasti) || !offset_ok(l->object_type))
        return -1;
    if (!offset_ok(l->code_name) || !offset_ok(l->code_filename) ||
        !offset_ok(l->code_firstlineno) || !offset_ok(l->code_linetable) ||
        !offset_ok(l->bytes_size) || !offset_ok(l->bytes_sval) || !l->bytes_type)
        return -1;
    if (l->frame_model == 2 && !offset_ok(l->cframe_current_frame))
        return -1;
    if (l->frame_owner != -1 && !offset_ok(l->frame_owner))
        return -1;
    if (l->owner_cstack < -1 || l->owner_cstack > 255)
        return -1;
    if (!l->code_type || l->code_tag_mask > 7)
        return -1;
    return 0;
}

static const void *pointer_at(const void *base, int32_t off)
{
    return *(const void *const *)((const char *)base + off);
}

static int pointer_plausible(const void *p)
{
    return p && ((uintptr_t)p & 7) == 0 && (uintptr_t)p >= 4096;
}

/* The first frame, or NULL. */
static const void *frame_first(const struct hook_stack_layout *l, const void *tstate)
{
    const void *p = pointer_at(tstate, l->tstate_frame);
    if (l->frame_model == 2) { /* tstate->cframe->current_frame */
        if (!pointer_plausible(p))
            return NULL;
        p = pointer_at(p, l->cframe_current_frame);
    }
    return pointer_plausible(p) ? p : NULL;
}

static uint64_t rotate_left(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* The final avalanche of a 64-bit hash (every input bit reaches every output bit). */
static uint64_t hash_finish(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

uint32_t hook_stack_capture(const struct hook_stack_layout *l, const struct hook_code_layout *cl,
                            const void *tstate, uint32_t epoch, struct mshook_frame *out,
                            uint64_t *idents, uint32_t max, uint32_t *flags, uint64_t *hash)
{
    *flags = 0;
    *hash = hash_finish(0);
    if (!pointer_plausible(tstate))
        return 0;
    /* The hash folds each frame in as it is walked: its multiply chain runs beside the walk's
     * chain of dependent loads, so it costs next to nothing on top of the walk. */
    uint64_t h = 0x243f6a8885a308d3ull;
    uint32_t n = 0;
    const void *f = frame_first(l, tstate);
    /* Brent's cycle check: one compare per frame finds a chain that loops (f_back pointing
     * back into the chain) within twice its period. */
    const void *mark = f;
    uint32_t power = 1, since = 0;
    for (int steps = 0; f && steps < STACK_WALK_LIMIT; steps++) {
        int keep = 1;
        if (l->frame_owner >= 0 && l->owner_cstack >= 0 &&
            *((const unsigned char *)f + l->frame_owner) >= (unsigned char)l->owner_cstack)
            keep = 0; /* C entry shims (3.12+), interpreter entry frames (3.14): no code */
        /* 3.14's f_executable is a _PyStackRef: clear its tag bits. */
        const void *code =
            (const void *)((uintptr_t)pointer_at(f, l->frame_code) & ~(uintptr_t)l->code_tag_mask);
        if (keep && !code)
            keep = 0; /* no code at all: nothing to name */
        if (keep) {
            /* Every code pointer is proven before anything reads through it: once per code
             * object (hook_safe.h), after that a cache probe per frame. */
            uint64_t fp = 0;
            if (!pointer_plausible(code) ||
                hook_safe_code(l, cl, code, (int)l->fingerprint, epoch, &fp) != HOOK_SAFE_CODE) {
                *flags |= MSHOOK_STACK_INVALID;
                h ^= (uint64_t)(uintptr_t)code; /* this chain, cut here, is its own stack */
                break;
            }
            if (n == max) {
                *flags |= MSHOOK_STACK_TRUNCATED;
                break;
            }
            out[n].code = (uint64_t)(uintptr_t)code;
            if (l->lasti_model <= 2)
                out[n].lasti =
                    (uint64_t)(int64_t) * (const int32_t *)((const char *)f + l->frame_lasti);
            else
                out[n].lasti = (uint64_t)(uintptr_t)pointer_at(f, l->frame_lasti);
            idents[n] = fp;
            uint64_t ident = l->fingerprint ? fp : out[n].code;
            h = rotate_left(h ^ (ident * 0x9e3779b97f4a7c15ull) ^ out[n].lasti, 27) *
                0xbf58476d1ce4e5b9ull;
            n++;
        }
        const void *back = pointer_at(f, l->frame_back);
        f = pointer_plausible(back) ? back : NULL;
        if (f && f == mark) {
            *flags |= MSHOOK_STACK_INVALID | MSHOOK_STACK_TRUNCATED;
            break;
        }
        if (++since == power) {
            mark = f;
            power <<= 1;
            since = 0;
        }
    }
    *hash = hash_finish(h ^ ((uint64_t)n << 2) ^ (uint64_t)*flags);
    return n;
}
