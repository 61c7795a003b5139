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
 * tests/py/passthru_run.py. CPython's functions are looked up at run time, so the library
 * builds without Python headers and loads into 3.8 - 3.13 alike.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <stddef.h>

/* PyMemAllocatorEx, the same layout on 3.8 - 3.13. */
struct allocator {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
};

enum { DOMAIN_RAW = 0, DOMAIN_MEM = 1, DOMAIN_OBJ = 2 };

static struct allocator orig[3];

static void *pass_malloc(void *ctx, size_t size)
{
    const struct allocator *o = ctx;
    return o->malloc(o->ctx, size);
}

static void *pass_calloc(void *ctx, size_t nelem, size_t elsize)
{
    const struct allocator *o = ctx;
    return o->calloc(o->ctx, nelem, elsize);
}

static void *pass_realloc(void *ctx, void *ptr, size_t size)
{
    const struct allocator *o = ctx;
    return o->realloc(o->ctx, ptr, size);
}

static void pass_free(void *ctx, void *ptr)
{
    const struct allocator *o = ctx;
    o->free(o->ctx, ptr);
}

/* Returns 0, or -1 when CPython's allocator functions cannot be found. */
int passthru_install(void)
{
    void (*get)(int, struct allocator *) =
        (void (*)(int, struct allocator *))dlsym(RTLD_DEFAULT, "PyMem_GetAllocator");
    void (*set)(int, struct allocator *) =
        (void (*)(int, struct allocator *))dlsym(RTLD_DEFAULT, "PyMem_SetAllocator");
    if (!get || !set)
        return -1;
    /* Only with CPython's default allocators (no PYTHONMALLOC), whose functions ignore their
     * ctx, as memsnap's sampled mode requires too: so the functions left unwrapped can be
     * installed beside a ctx that is ours. */
    get(DOMAIN_RAW, &orig[DOMAIN_RAW]);
    struct allocator raw = orig[DOMAIN_RAW];
    raw.ctx = &orig[DOMAIN_RAW];
    raw.free = pass_free; /* the raw domain: only free is wrapped, as memsnap wraps it */
    set(DOMAIN_RAW, &raw);
    for (int d = DOMAIN_MEM; d <= DOMAIN_OBJ; d++) {
        get(d, &orig[d]);
        /* free stays pymalloc's: memsnap's sampled mode keeps it in these domains. */
        struct allocator mine = {.ctx = &orig[d],
                                 .malloc = pass_malloc,
                                 .calloc = pass_calloc,
                                 .realloc = pass_realloc,
                                 .free = orig[d].free};
        set(d, &mine);
    }
    return 0;
}
