/*
 * remote.c - process_vm_readv / /proc/PID/mem access to a target's memory; see remote.h.
 *
 * process_vm_readv stops at the first remote range it cannot read and reports how many bytes
 * it moved, so after a short transfer we know exactly which range stopped it, and we go on
 * from there: the error then names the first unreadable address. Whether the syscall is
 * permitted at all is remembered process-wide (a seccomp denial does not change at run time).
 */
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* 0 unknown / works, 1 process_vm_readv is denied here: use /proc/PID/mem directly. */
static atomic_int vm_readv_denied;

/* The test seam of remote.h: set by tests only, before any read. */
static remote_source_fn source_fn;
static void *source_ctx;
static remote_observer_fn observer_fn;
static void *observer_ctx;

void remote_set_source(remote_source_fn fn, void *ctx)
{
    source_fn = fn;
    source_ctx = ctx;
}

void remote_set_observer(remote_observer_fn fn, void *ctx)
{
    observer_fn = fn;
    observer_ctx = ctx;
}

const char *remote_permission_hint(void)
{
    return "run memsnap as root or give it CAP_SYS_PTRACE (in a container: "
           "--cap-add=SYS_PTRACE), and allow ptrace of non-children with "
           "'sysctl kernel.yama.ptrace_scope=0' if Yama is enabled";
}

/* 1 if this process has CAP_SYS_PTRACE in its effective set (/proc/self/status CapEff). */
static int have_cap_sys_ptrace(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long eff = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    return (eff >> 19) & 1; /* CAP_SYS_PTRACE */
}

const char *remote_permission_hint_for(pid_t pid)
{
    static _Thread_local char buf[400];
    if (geteuid() != 0)
        return remote_permission_hint();
    if (!have_cap_sys_ptrace())
        return "memsnap runs as root but without CAP_SYS_PTRACE (in a container: "
               "--cap-add=SYS_PTRACE)";
    int scope = -1;
    FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
    if (f) {
        if (fscanf(f, "%d", &scope) != 1)
            scope = -1;
        fclose(f);
    }
    if (scope == 3) {
        snprintf(buf, sizeof buf,
                 "kernel.yama.ptrace_scope is 3, which forbids ptrace to everyone, root "
                 "included, until reboot");
        return buf;
    }
    snprintf(buf, sizeof buf,
             "memsnap already runs as root with CAP_SYS_PTRACE, so process %d is protected from "
             "tracing by the system (%sa non-dumpable process, another user namespace, or a "
             "security module such as AppArmor or SELinux) and cannot be profiled",
             (int)pid, pid == 1 ? "pid 1 of its namespace, " : "");
    return buf;
}

static int fail(ms_error *err, int e, pid_t pid, const char *what, uint64_t addr, size_t len)
{
    if (e == ESRCH) {
        ms_error_set(err, "process %d exited while memsnap was reading it", (int)pid);
    } else if (e == EFAULT || e == EIO || e == ENOMEM) {
        ms_error_set(err, "%s %zu bytes at 0x%" PRIx64 " of process %d: address not mapped", what,
                     len, addr, (int)pid);
        e = EFAULT;
    } else if (e == EPERM || e == EACCES) {
        ms_error_set(err, "not allowed to access the memory of process %d: %s", (int)pid,
                     remote_permission_hint_for(pid));
        e = EPERM;
    } else {
        ms_error_errno(err, e, "%s %zu bytes at 0x%" PRIx64 " of process %d", what, len, addr,
                       (int)pid);
    }
    errno = e;
    return -1;
}

/* The errno of a failed /proc/PID/mem transfer that returned k: an unmapped address reads as
 * EOF (0 bytes) or EIO/EFAULT, and so does a process that died, so ask whether it exists. */
static int mem_io_errno(pid_t pid, ssize_t k)
{
    int e = k < 0 ? errno : EFAULT;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        e = ESRCH;
    return e;
}

/* /proc/PID/mem, range by range. */
static int mem_readv(pid_t pid, const struct remote_iov *iov, int n, ms_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno == ENOENT ? ESRCH : errno;
        return fail(err, e, pid, "reading", n ? iov[0].addr : 0, n ? iov[0].len : 0);
    }
    for (int i = 0; i < n; i++) {
        size_t done = 0;
        while (done < iov[i].len) {
            if (iov[i].addr + done > (uint64_t)INT64_MAX) {
                close(fd);
                return fail(err, EFAULT, pid, "reading", iov[i].addr, iov[i].len);
            }
            ssize_t k = pread(fd, (char *)iov[i].buf + done, iov[i].len - done,
                              (off_t)(iov[i].addr + done));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                int e = mem_io_errno(pid, k);
                close(fd);
                return fail(err, e, pid, "reading", iov[i].addr, iov[i].len);
            }
            done += (size_t)k;
        }
    }
    close(fd);
    return 0;
}

static int readv_target(pid_t pid, const struct remote_iov *iov, int n, ms_error *err);

int remote_readv(pid_t pid, const struct remote_iov *iov, int n, ms_error *err)
{
    if (n < 0)
        return ms_error_set(err, "reading process %d: negative range count", (int)pid);
    if (source_fn)
        return source_fn(source_ctx, pid, iov, n, err);
    int rc = readv_target(pid, iov, n, err);
    if (rc == 0 && observer_fn)
        observer_fn(observer_ctx, iov, n);
    return rc;
}

static int readv_target(pid_t pid, const struct remote_iov *iov, int n, ms_error *err)
{
    if (atomic_load_explicit(&vm_readv_denied, memory_order_relaxed))
        return mem_readv(pid, iov, n, err);
    struct iovec local[IOV_MAX], remote[IOV_MAX];
    int i = 0;
    size_t skip = 0; /* bytes of iov[i] already read */
    while (i < n) {
        int m = 0;
        size_t want = 0;
        for (int j = i; j < n && m < IOV_MAX; j++) {
            size_t off = j == i ? skip : 0;
            if (iov[j].len - off == 0)
                continue;
            if (want > SSIZE_MAX - (iov[j].len - off))
                break;
            local[m].iov_base = (char *)iov[j].buf + off;
            local[m].iov_len = iov[j].len - off;
            remote[m].iov_base = (void *)(uintptr_t)(iov[j].addr + off);
            remote[m].iov_len = iov[j].len - off;
            want += iov[j].len - off;
            m++;
        }
        if (m == 0)
            return 0;
        ssize_t k = process_vm_readv(pid, local, (unsigned long)m, remote, (unsigned long)m, 0);
        if (k < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EPERM || e == ENOSYS) {
                /* Denied by seccomp or not built: the mem file may still be allowed. */
                int rc = mem_readv(pid, iov + i, n - i, err);
                if (rc == 0)
                    atomic_store_explicit(&vm_readv_denied, 1, memory_order_relaxed);
                return rc; /* a partly read range is read again whole: harmless */
            }
            /* Failure on the very first byte: name the first non-empty range. */
            while (i < n && iov[i].len - skip == 0) {
                i++;
                skip = 0;
            }
            return fail(err, e, pid, "reading", i < n ? iov[i].addr + skip : 0,
                        i < n ? iov[i].len - skip : 0);
        }
        if ((size_t)k == want) {
            /* Advance past every range this call covered. */
            size_t left = want;
            while (i < n && left >= iov[i].len - skip) {
                left -= iov[i].len - skip;
                i++;
                skip = 0;
            }
            if (left) /* stopped by the SSIZE_MAX cap inside a range; cannot happen */
                skip += left;
            continue;
        }
        /* Partial: advance to the range that stopped it; the next call starts there and
         * fails on it (or succeeds if it was a transient race). A zero-progress partial
         * transfer cannot loop: process_vm_readv returns an error instead. */
        size_t left = (size_t)k;
        while (i < n && left >= iov[i].len - skip) {
            left -= iov[i].len - skip;
            i++;
            skip = 0;
        }
        skip += left;
        if (k == 0)
            return fail(err, EFAULT, pid, "reading", iov[i].addr + skip, iov[i].len - skip);
        /* The next call starts at the range that stopped this one: it either fails on its
         * first byte (reported with that address) or makes progress, so this terminates. */
    }
    return 0;
}

int remote_read(pid_t pid, uint64_t addr, void *buf, size_t len, ms_error *err)
{
    struct remote_iov v = {addr, buf, len};
    return remote_readv(pid, &v, 1, err);
}

int remote_write(pid_t pid, uint64_t addr, const void *buf, size_t len, ms_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno == ENOENT ? ESRCH : errno;
        return fail(err, e, pid, "writing", addr, len);
    }
    size_t done = 0;
    while (done < len) {
        if (addr + done > (uint64_t)INT64_MAX) {
            close(fd);
            return fail(err, EFAULT, pid, "writing", addr, len);
        }
        ssize_t k = pwrite(fd, (const char *)buf + done, len - done, (off_t)(addr + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = mem_io_errno(pid, k);
            close(fd);
            return fail(err, e, pid, "writing", addr, len);
        }
        done += (size_t)k;
    }
    close(fd);
    return 0;
}
