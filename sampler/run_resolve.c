/*
 * run_resolve.c - remembering what each code object address held (see run_resolve.h).
 *
 * One open-addressing table (linear probing, power-of-two size, grown at 3/4 load) from code
 * address to the last successful answer and the epoch of the last failure. Entries are never
 * deleted, so probing needs no tombstones.
 */
#include "run_resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct run_resolve_slot {
    uint64_t addr; /* 0 = empty (no code object lives at address 0) */
    struct stacks_code known;
    int has_known;
    uint32_t failed_epoch; /* 0 = never failed */
};

#define INITIAL_CAP 4096u

static uint32_t addr_hash(uint64_t a)
{
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    a ^= a >> 33;
    return (uint32_t)a;
}

static struct run_resolve_slot *slot_find(struct run_resolve *rv, uint64_t addr)
{
    uint32_t mask = rv->cap - 1;
    for (uint32_t j = addr_hash(addr) & mask;; j = (j + 1) & mask) {
        if (rv->slots[j].addr == addr)
            return &rv->slots[j];
        if (!rv->slots[j].addr)
            return NULL;
    }
}

static int table_grow(struct run_resolve *rv)
{
    uint32_t cap = rv->cap * 2;
    struct run_resolve_slot *s = calloc(cap, sizeof *s);
    if (!s)
        return -1;
    for (uint32_t i = 0; i < rv->cap; i++) {
        if (!rv->slots[i].addr)
            continue;
        uint32_t j = addr_hash(rv->slots[i].addr) & (cap - 1);
        while (s[j].addr)
            j = (j + 1) & (cap - 1);
        s[j] = rv->slots[i];
    }
    free(rv->slots);
    rv->slots = s;
    rv->cap = cap;
    return 0;
}

/* A new slot for addr (not in the table), or NULL when full or out of memory. */
static struct run_resolve_slot *slot_add(struct run_resolve *rv, uint64_t addr)
{
    if (rv->used >= RUN_RESOLVE_MAX)
        return NULL;
    if ((rv->used + 1) * 4 > rv->cap * 3 && table_grow(rv) < 0)
        return NULL;
    uint32_t mask = rv->cap - 1;
    uint32_t j = addr_hash(addr) & mask;
    while (rv->slots[j].addr)
        j = (j + 1) & mask;
    rv->used++;
    rv->slots[j].addr = addr;
    return &rv->slots[j];
}

static int remembering_code(void *ctx, uint64_t code_addr, struct stacks_code *out)
{
    struct run_resolve *rv = ctx;
    struct run_resolve_slot *s = code_addr ? slot_find(rv, code_addr) : NULL;
    if (s && s->failed_epoch == rv->epoch) {
        if (!s->has_known)
            return -1;
        *out = s->known;
        return 0;
    }
    if (rv->inner.code(rv->inner.ctx, code_addr, out) == 0) {
        if (!s && code_addr)
            s = slot_add(rv, code_addr);
        if (s) {
            s->known = *out;
            s->has_known = 1;
        }
        return 0;
    }
    if (!s && code_addr)
        s = slot_add(rv, code_addr);
    if (!s)
        return -1;
    s->failed_epoch = rv->epoch;
    if (!s->has_known)
        return -1;
    *out = s->known;
    return 0;
}

static int passthrough_line(void *ctx, const struct stacks_code *code, uint64_t code_addr,
                            uint64_t raw_lasti)
{
    struct run_resolve *rv = ctx;
    if (!rv->inner.line)
        return -1;
    return rv->inner.line(rv->inner.ctx, code, code_addr, raw_lasti);
}

static const char *passthrough_thread(void *ctx, uint64_t tstate)
{
    struct run_resolve *rv = ctx;
    return rv->inner.thread ? rv->inner.thread(rv->inner.ctx, tstate) : NULL;
}

int run_resolve_init(struct run_resolve *rv, const struct stacks_resolver *inner, ms_error *err)
{
    memset(rv, 0, sizeof *rv);
    if (!inner->code)
        return ms_error_set(err, "run_resolve: the inner resolver cannot resolve code objects");
    rv->inner = *inner;
    rv->epoch = 1;
    rv->cap = INITIAL_CAP;
    rv->slots = calloc(rv->cap, sizeof *rv->slots);
    if (!rv->slots)
        return ms_error_errno(err, ENOMEM, "creating the code object memory");
    return 0;
}

struct stacks_resolver run_resolve_resolver(struct run_resolve *rv)
{
    struct stacks_resolver r = {rv, remembering_code, passthrough_line, passthrough_thread};
    return r;
}

void run_resolve_epoch(struct run_resolve *rv)
{
    rv->epoch++;
    if (rv->epoch == 0) /* after 2^32 epochs: 0 means "never failed" */
        rv->epoch = 1;
}

void run_resolve_free(struct run_resolve *rv)
{
    free(rv->slots);
    rv->slots = NULL;
    rv->cap = rv->used = 0;
}
