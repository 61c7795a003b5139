/*
 * pyruntime.h - finding a live CPython interpreter from outside the process.
 *
 * pyruntime_locate() answers, for a pid, without stopping or touching the process: which file
 * holds the interpreter (the executable itself, as in Debian's static non-PIE
 * /usr/bin/python3, or a shared libpython3.X.so), where it is loaded, where _PyRuntime is,
 * which CPython version runs (so which struct py_offsets row applies), and where PyCode_Type
 * and PyUnicode_Type are (to type-check pointers read from the target). Everything after this
 * (pycode.h, pythreads.h) only reads memory with the result.
 *
 * Trust: the ELF file and the target's memory are untrusted. The version must be one memsnap
 * has a table row for; the table is cross-checked with the size of the _PyRuntime symbol when
 * the file carries it, and on 3.13 with the interpreter's own _Py_DebugOffsets.
 */
#ifndef MEMSNAP_PYRUNTIME_H
#define MEMSNAP_PYRUNTIME_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "py_offsets.h"

struct pyruntime {
    pid_t pid;
    int major, minor, micro;
    uint32_t version_hex; /* PY_VERSION_HEX when read from Py_Version, else built from parts */
    const struct py_offsets *off; /* the table row for major.minor (never NULL on success) */

    uint64_t runtime_addr; /* &_PyRuntime in the target */
    uint64_t runtime_size; /* st_size of the _PyRuntime symbol, 0 when not known */
    uint64_t pycode_type;  /* &PyCode_Type, 0 when not found (pycode then checks tp_name) */
    uint64_t unicode_type; /* &PyUnicode_Type, 0 when not found (not checked then) */
    uint64_t bytes_type;   /* &PyBytes_Type, 0 when not found */
    uint64_t load_bias;    /* runtime address = link-time address + load_bias */

    int shared;              /* 1: libpython, 0: the executable holds the interpreter */
    char path[PATH_MAX];     /* that file, as the target names it */
    char comm[64];           /* the process name from /proc/PID/comm, for messages */
    char version_source[16]; /* "Py_Version", "sys.version", "file name" */
};

/* Locates the interpreter of pid into rt. Errors are one sentence for the user:
 *   "no process with pid 123 exists",
 *   "process 123 (nginx) is not a CPython process: no libpython or _PyRuntime found",
 *   "process 123 runs CPython 3.7, which is not supported; memsnap supports 3.8-3.13",
 *   permission errors saying how to allow ptrace access. */
int pyruntime_locate(pid_t pid, struct pyruntime *rt, ms_error *err);

/* Address of the main interpreter (PyInterpreterState *), read from _PyRuntime and validated
 * (mapped, its thread list head is NULL or points back to it). 0, or -1 with err. */
int pyruntime_main_interp(const struct pyruntime *rt, uint64_t *interp, ms_error *err);

/* Parses the start of a sys.version string ("3.10.13 (main, ...") into major/minor/micro;
 * returns 0 or -1. Exposed for tests. */
int pyruntime_parse_version(const char *s, size_t len, int *major, int *minor, int *micro);

#endif
