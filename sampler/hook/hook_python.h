/*
 * hook_python.h - the few CPython C API entry points the hook uses, found at run time.
 *
 * The hook is built once, without Python.h, and must serve every CPython from 3.8 to 3.13,
 * including Debian's statically linked /usr/bin/python3 whose API lives in the executable's
 * .dynsym. So nothing is linked: hook_python_resolve() looks every symbol up with
 * dlsym(RTLD_DEFAULT) and the layouts we need are restated here.
 */
#ifndef MEMSNAP_HOOK_PYTHON_H
#define MEMSNAP_HOOK_PYTHON_H

#include <stddef.h>

/* PyMemAllocatorDomain: the numbers are fixed by CPython's public API. */
enum hook_domain {
    HOOK_DOMAIN_RAW = 0,
    HOOK_DOMAIN_MEM = 1,
    HOOK_DOMAIN_OBJ = 2,
};

/* Same layout as PyMemAllocatorEx (stable since 3.5). */
struct hook_allocator {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
};

struct hook_python {
    void (*get_allocator)(int domain, struct hook_allocator *out);
    void (*set_allocator)(int domain, struct hook_allocator *in);
    int (*gil_ensure)(void); /* returns a PyGILState_STATE, an enum */
    void (*gil_release)(int state);
    void *(*tstate_get)(void); /* never fails, NULL when the thread has no thread state */
    const void *code_type;     /* &PyCode_Type */
    const void *unicode_type;  /* &PyUnicode_Type */
    const void *bytes_type;    /* &PyBytes_Type */
    int (*is_initialized)(void);
    int (*is_finalizing)(void);
    /* _PyMem_GetCurrentAllocatorName (3.8+, exported though private): "pymalloc" while every
     * domain holds CPython's default pymalloc allocator. NULL when absent. */
    const char *(*allocator_name)(void);
    int major, minor; /* of the running interpreter */
};

/* Fills api with the running interpreter's entry points. Returns 0, or -1 with the name of the
 * first missing symbol (or "version") in *missing. Safe without the GIL: dlsym and reading
 * Py_Version / Py_GetVersion() only. */
int hook_python_resolve(struct hook_python *api, const char **missing);

#endif
