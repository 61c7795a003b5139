/*
 * inject_lib.h - load a shared library into a live process and call its start function.
 *
 * The library travels as bytes (memsnap embeds the hook). Before stopping anything, memsnap
 * writes the image into an UNNAMED file (O_TMPFILE) of a directory of the target's own mount
 * namespace, /proc/PID/root/dev/shm (else .../tmp; skipping a noexec or read-only file
 * system; the directory resolved inside the target's root), mode 0500, owned by the target's
 * fs uid/gid when memsnap is root, and holds an exclusive flock on it for as long as it
 * lives. Then, in one hijack session of one thread at a safe point (safepoint.h), it calls
 * the target's own dlopen("/dev/shm/<stem>-<memsnap pid>-<16 hex>.so", RTLD_NOW) (glibc >=
 * 2.34 exports dlopen from libc; older ones __libc_dlopen_mode), stem being the library's
 * DT_SONAME without ".so". The file gets that name (linkat) only once the thread's registers
 * point at the dlopen (inject_call_armed), so from the instant it has a name the thread loads
 * it even if memsnap is killed; the hook's constructor then unlinks it (hook/hook_file.c),
 * and memsnap unlinks it as soon as dlopen returns (and on every error path). Then dlsym for
 * the start function and finally start(arg) with arg copied onto the hijacked thread's
 * stack. The mapping then shows as "/dev/shm/<stem>-<pid>-<hex>.so (deleted)". Without
 * O_TMPFILE the file is written under its name before the stop (locked the same way).
 *
 * Why not a memfd: gdb 13 resolves a "/memfd:..." mapping by opening every /proc/PID/fd/N
 * of the target and reading an ELF header from it, and blocks forever on a pipe or FIFO (a
 * gunicorn worker, a python fed by a pipe); a deleted regular file only earns a warning. The
 * memfd way (memfd_create(soname, MFD_CLOEXEC) in the target, written through
 * /proc/PID/fd/N, dlopen("/proc/self/fd/N"), close) remains the last resort when no file
 * could be written or loaded.
 *
 * Files named like ours that a killed memsnap left in those directories (dlopen failed after
 * it died, no O_TMPFILE, `run`'s child killed with it) are removed by the next injection:
 * "<stem>-<pid>-<hex>.so" at once when an exclusive flock can be taken on it (its memsnap is
 * dead; a live one's is locked and never touched), an older version's "<stem>-<hex>.so"
 * once older than a minute (regular files only, no symlink followed).
 *
 * A library already loaded by an earlier session (a mapping at offset 0 named
 * ".../<stem>-<pid>-<hex>.so", ".../<stem>-<hex>.so" or "/memfd:<soname>" whose bytes, read
 * through the mapping, equal the image; the file need not exist) is reused: no second copy,
 * only the start function is called.
 *
 * The thread's errno is saved before and restored after the calls, so the target cannot
 * notice them through errno either.
 */
#ifndef MEMSNAP_INJECT_LIB_H
#define MEMSNAP_INJECT_LIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct inject_result {
    int start_result;          /* what the start function returned (an int) */
    int reused;                /* 1 if an already-loaded copy was used */
    pid_t tid;                 /* the hijacked thread */
    uint64_t base;             /* load address of the library in the target */
    long long wall_ns;         /* inject_library's whole duration */
    long long stopped_ns;      /* how long the hijacked thread ran none of its own code */
    long long longest_stop_ns; /* longest single ptrace-stop inside that (memsnap's work) */
    long long safepoint_ns;    /* of wall_ns, spent choosing the thread */
    int candidates_refused;    /* threads refused as not at a safe point */
};

/* Loads image (len bytes of a shared object) into process pid unless a copy is loaded, then
 * calls start_symbol(arg) where arg points to a copy of arg_len bytes (arg may be NULL: the
 * function then receives NULL). Fills *res (may be NULL). Returns 0 when the start function
 * was called (whatever it returned), -1 with err otherwise: process absent, stopped or
 * traced, no permission, no safe point, dlopen failed (with the target's dlerror text),
 * seccomp, start symbol missing, the process exited meanwhile. The target is left running and
 * untraced in every case. */
int inject_library(pid_t pid, const void *image, size_t len, const char *start_symbol,
                   const void *arg, size_t arg_len, struct inject_result *res, ms_error *err);

/* The same on thread tid of pid, chosen by the caller, who vouches that it is at a safe point
 * (no malloc or loader lock held); tid 0 chooses like inject_library. For tests and for
 * callers that stopped a thread at a known point themselves. */
int inject_library_on_thread(pid_t pid, pid_t tid, const void *image, size_t len,
                             const char *start_symbol, const void *arg, size_t arg_len,
                             struct inject_result *res, ms_error *err);

/* The same on thread tid of pid that the CALLER already traces and holds in a ptrace-stop at
 * a safe point (`memsnap run`: the main thread at Py_RunMain, which holds the GIL and no
 * lock of libc's). The process is not checked for being traced (it is, by us); the thread is
 * taken over with inject_adopt and is left restored, stopped and traced: the caller detaches
 * it, in every case, success or not. */
int inject_library_adopted(pid_t pid, pid_t tid, const void *image, size_t len,
                           const char *start_symbol, const void *arg, size_t arg_len,
                           struct inject_result *res, ms_error *err);

#endif
