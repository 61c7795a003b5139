/*
 * remote.h - reading and writing another process's memory.
 *
 * Reads use process_vm_readv (no ptrace stop needed, many ranges per syscall), falling back
 * to /proc/PID/mem when that syscall is not permitted (seccomp profiles of containers often
 * deny it). Writes go through /proc/PID/mem, which the kernel lets a ptrace-capable writer
 * apply even to read-only text pages (the injector patches code this way).
 *
 * A read or write is all or nothing: a partial transfer is an error naming the first address
 * that could not be read. On failure errno is left at one of:
 *   ESRCH  the process no longer exists (exited, or a zombie without memory),
 *   EFAULT the address (or part of the range) is not mapped in the target,
 *   EPERM  the kernel refused access (ptrace permission), the message says how to allow it,
 *   other  unexpected errors, with strerror in the message.
 * so callers that walk volatile structures can tell "torn pointer" from "process gone".
 */
#ifndef MEMSNAP_REMOTE_H
#define MEMSNAP_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct remote_iov {
    uint64_t addr; /* address in the target */
    void *buf;     /* local destination of len bytes */
    size_t len;
};

/* Reads len bytes at addr of pid into buf. 0, or -1 with err and errno (see above). */
int remote_read(pid_t pid, uint64_t addr, void *buf, size_t len, ms_error *err);

/* Reads n ranges with as few syscalls as possible (IOV_MAX ranges per call). Every range must
 * be read completely; the error names the first that was not. Ranges of length 0 are
 * allowed. 0, or -1 with err and errno. */
int remote_readv(pid_t pid, const struct remote_iov *iov, int n, ms_error *err);

/* Writes len bytes from buf to addr of pid through /proc/PID/mem (works on read-only
 * mappings). The caller normally has the process stopped under ptrace. 0, or -1. */
int remote_write(pid_t pid, uint64_t addr, const void *buf, size_t len, ms_error *err);

/* The sentence memsnap uses to explain how to allow ptrace access (for EPERM). */
const char *remote_permission_hint(void);

/* The same, fitted to who memsnap is: an unprivileged user is told how to get the right;
 * root without CAP_SYS_PTRACE is told to add it; root with it (refused all the same: pid 1
 * of a namespace, a non-dumpable process, another user namespace, Yama scope 3, a security
 * module) is told that the process is protected, not to "run as root". Thread-local buffer. */
const char *remote_permission_hint_for(pid_t pid);

/* Test seam (tests/support/replay.c), never used by memsnap itself. A source, when set, serves
 * every remote_readv/remote_read instead of the target (a recording replayed: it must fail
 * with errno EFAULT on a range it does not hold); an observer, when set, is shown every range
 * a successful read returned (to record them). Both process-wide; NULL unsets. */
typedef int (*remote_source_fn)(void *ctx, pid_t pid, const struct remote_iov *iov, int n,
                                ms_error *err);
typedef void (*remote_observer_fn)(void *ctx, const struct remote_iov *iov, int n);
void remote_set_source(remote_source_fn fn, void *ctx);
void remote_set_observer(remote_observer_fn fn, void *ctx);

#endif
