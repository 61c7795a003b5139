/*
 * hook_python.c - resolves the CPython C API with dlsym; see hook_python.h.
 *
 * Symbols that were renamed across versions are tried newest name first, so one build of the
 * hook finds the thread-state getter and the finalization test on 3.8 through 3.13.
 */
#include "hook_python.h"

#include <dlfcn.h>
#include <stdint.h>

static void *symbol_find(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

/* Py_Version (3.11+) is a uint32 PY_VERSION_HEX; older versions only have Py_GetVersion(),
 * whose string starts "3.10.13 (main, ...". */
static int version_find(int *major, int *minor)
{
    const uint32_t *hex = symbol_find("Py_Version");
    if (hex) {
        *major = (int)((*hex >> 24) & 0xff);
        *minor = (int)((*hex >> 16) & 0xff);
        return 0;
    }
    const char *(*get_version)(void) = (const char *(*)(void))symbol_find("Py_GetVersion");
    if (!get_version)
        return -1;
    const char *s = get_version();
    if (!s || s[0] < '0' || s[0] > '9' || s[1] != '.')
        return -1;
    int mi = 0, digits = 0;
    for (const char *p = s + 2; *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
        mi = mi * 10 + (*p - '0');
    if (digits == 0)
        return -1;
    *major = s[0] - '0';
    *minor = mi;
    return 0;
}

int hook_python_resolve(struct hook_python *api, const char **missing)
{
    struct {
        void **slot;
        const char *names[2];
    } wanted[] = {
        {(void **)&api->get_allocator, {"PyMem_GetAllocator", NULL}},
        {(void **)&api->set_allocator, {"PyMem_SetAllocator", NULL}},
        {(void **)&api->gil_ensure, {"PyGILState_Ensure", NULL}},
        {(void **)&api->gil_release, {"PyGILState_Release", NULL}},
        {(void **)&api->tstate_get, {"PyThreadState_GetUnchecked", "_PyThreadState_UncheckedGet"}},
        {(void **)&api->code_type, {"PyCode_Type", NULL}},
        {(void **)&api->unicode_type, {"PyUnicode_Type", NULL}},
        {(void **)&api->bytes_type, {"PyBytes_Type", NULL}},
        {(void **)&api->is_initialized, {"Py_IsInitialized", NULL}},
        {(void **)&api->is_finalizing, {"Py_IsFinalizing", "_Py_IsFinalizing"}},
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        void *p = symbol_find(wanted[i].names[0]);
        if (!p && wanted[i].names[1])
            p = symbol_find(wanted[i].names[1]);
        if (!p) {
            *missing = wanted[i].names[0];
            return -1;
        }
        *wanted[i].slot = p;
    }
    api->allocator_name = (const char *(*)(void))symbol_find("_PyMem_GetCurrentAllocatorName");
    if (version_find(&api->major, &api->minor) != 0) {
        *missing = "Py_Version";
        return -1;
    }
    return 0;
}
