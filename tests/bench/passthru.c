/*
 * passthru.c - the floor under any profiler that wraps CPython's allocator domains.
 *
 * A shared library for the benchmarks (scripts/bench.d/run.sh): passthru_install() puts
 * wrappers on the same functions memsnap's sampled mode wraps - malloc, calloc and realloc of
 * the memory and object domains, and the raw domain's free - and each wrapper does nothing but
 * call the function it replaced. What the program then loses is the cost of being wrapped at
 * all: an indirect call per allocation, and on a PGO build (Debian's python3) the inlined copy
 * of pymalloc that CPython's own callers use only while the default allocator is installed.
 * No sampling profiler built on PyMem_SetAllocator can cost less; the benchmark prints it
 * beside memsnap's sampled mode so the part that is memsnap's own can be read off.
 *
 * Loaded with ctypes.PyDLL (the GIL held, as PyMem_SetAllocator requires) by
 * tests/py/passthru_run.py. CPython's functions are looked up at run time, as the hook looks
 * them up (sampler/hook/hook_python.h), so the library builds without Python headers and
 * loads into 3.8 - 3.13 alike.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

#include "hook/hook_python.h" /* struct hook_allocator: PyMemAllocatorEx's layout */

static struct hook_allocator orig[3];

static void *pass_malloc(void *ctx, size_t size)
{
    const struct hook_allocator *o = ctx;
    return o->malloc(o->ctx, size);
}

static void *pass_calloc(void *ctx, size_t nelem, size_t elsize)
{
    const struct hook_allocator *o = ctx;
    return o->calloc(o->ctx, nelem, elsize);
}

static void *pass_realloc(void *ctx, void *ptr, size_t size)
{
    const struct hook_allocator *o = ctx;
    return o->realloc(o->ctx, ptr, size);
}

static void pass_free(void *ctx, void *ptr)
{
    const struct hook_allocator *o = ctx;
    o->free(o->ctx, ptr);
}

/* Returns 0, or -1 when CPython's allocator functions cannot be found. */
int passthru_install(void)
{
    void (*get)(int, struct hook_allocator *) =
        (void (*)(int, struct hook_allocator *))dlsym(RTLD_DEFAULT, "PyMem_GetAllocator");
    void (*set)(int, struct hook_allocator *) =
        (void (*)(int, struct hook_allocator *))dlsym(RTLD_DEFAULT, "PyMem_SetAllocator");
    const char *(*name)(void) =
        (const char *(*)(void))dlsym(RTLD_DEFAULT, "_PyMem_GetCurrentAllocatorName");
    /* Only with CPython's default allocators (no PYTHONMALLOC), whose functions ignore their
     * ctx, as memsnap's sampled mode requires too: so the functions left unwrapped can be
     * installed beside a ctx that is ours. */
    if (!get || !set || !name || !name() || strcmp(name(), "pymalloc") != 0)
        return -1;
    get(HOOK_DOMAIN_RAW, &orig[HOOK_DOMAIN_RAW]);
    struct hook_allocator raw = orig[HOOK_DOMAIN_RAW];
    raw.ctx = &orig[HOOK_DOMAIN_RAW];
    raw.free = pass_free; /* the raw domain: only free is wrapped, as memsnap wraps it */
    set(HOOK_DOMAIN_RAW, &raw);
    for (int d = HOOK_DOMAIN_MEM; d <= HOOK_DOMAIN_OBJ; d++) {
        get(d, &orig[d]);
        /* free stays pymalloc's: memsnap's sampled mode keeps it in these domains. */
        struct hook_allocator mine = {.ctx = &orig[d],
                                      .malloc = pass_malloc,
                                      .calloc = pass_calloc,
                                      .realloc = pass_realloc,
                                      .free = orig[d].free};
        set(d, &mine);
    }
    return 0;
}
