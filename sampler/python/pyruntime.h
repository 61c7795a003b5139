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
 * has a table row for (3.8-3.14, every one tested live; anything newer is refused before
 * anything is injected); on 3.13+ the fields the interpreter's own _Py_DebugOffsets states are
 * taken from it (layouts move between patch releases) and the result is checked for
 * consistency; the table is cross-checked with the size of the _PyRuntime symbol when the file
 * carries it. Free-threaded builds are refused.
 *
 * Two steps, so that tests can replay a recorded process (tests/support/replay.c):
 * pyruntime_facts() reads /proc/PID/maps and the ELF file (where things are, which version),
 * pyruntime_finish() does everything else with remote reads only.
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
    const struct py_offsets *off; /* = &layout on success (never NULL then) */
    struct py_offsets layout;     /* the row for major.minor, with the live overlay (3.13+) */
    int layout_from_process;      /* 1: _Py_DebugOffsets supplied part of the layout */

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
    int replayed;            /* reads are served from a recording: never stop threads */
};

/* Locates the interpreter of pid into rt (pyruntime_facts, then pyruntime_finish). Errors are
 * one sentence for the user:
 *   "no process with pid 123 exists",
 *   "process 123 (nginx) is not a CPython process: no libpython or _PyRuntime found",
 *   "process 123 runs CPython 3.15, which is not supported; memsnap supports 3.8-3.14",
 *   "process 123 runs a free-threaded CPython build (3.13t/3.14t), which memsnap does not
 *    support; use a regular (GIL) build",
 *   permission errors saying how to allow ptrace access. */
int pyruntime_locate(pid_t pid, struct pyruntime *rt, ms_error *err);

/* Step 1: from the maps and the ELF file only (plus the Py_Version / sys.version read): fills
 * pid, comm, path, shared, load_bias, runtime_addr/size, the type addresses, major/minor/
 * micro, version_hex and version_source. 0, or -1 with err. */
int pyruntime_facts(pid_t pid, struct pyruntime *rt, ms_error *err);

/* Step 2: rt holds the facts; refuses unsupported versions and free-threaded builds, picks
 * the table row, overlays the live _Py_DebugOffsets (3.13+), checks sizes and that _PyRuntime
 * is readable. Remote reads only. 0, or -1 with err. */
int pyruntime_finish(struct pyruntime *rt, ms_error *err);

/* Address of the main interpreter (PyInterpreterState *), read from _PyRuntime and validated
 * (mapped, its thread list head is NULL or points back to it). 0, or -1 with err. */
int pyruntime_main_interp(const struct pyruntime *rt, uint64_t *interp, ms_error *err);

/* Parses the start of a sys.version string ("3.10.13 (main, ...") into major/minor/micro;
 * returns 0 or -1. Exposed for tests. */
int pyruntime_parse_version(const char *s, size_t len, int *major, int *minor, int *micro);

#endif
