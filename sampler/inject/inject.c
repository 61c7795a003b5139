/*
 * inject.c - the ptrace mechanics of running a function inside one thread of a live process:
 * seize one thread, save and normalise its context, point it at a self-restoring call stub,
 * catch the stub's marker syscall, restore, detach. The why of each step is in inject.h.
 */
#include "inject.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include "remote.h"

/* Kernel-internal errno values a syscall interrupted by a stop leaves in rax. */
#define ERESTARTSYS           512
#define ERESTARTNOINTR        513
#define ERESTARTNOHAND        514
#define ERESTART_RESTARTBLOCK 516

#define MARKER_SYSCALL SYS_getpid
/* Offset of the instruction after the marker's `syscall` (where rip is at its stops). */
#define STUB_MARKER_END 9
/* The save block sits just below the 128-byte red zone: 15 GPRs, rflags, then rip, whose
 * slot ends 128 bytes below the saved rsp so that `ret $128` lands exactly on it. */
#define RED_ZONE        128
#define BLOCK_SLOTS     17
#define BLOCK_BELOW_RSP (RED_ZONE + 8 * BLOCK_SLOTS)
/* Room left between the scratch area and the call's stack pointer. */
#define CALL_GAP 256
/* Where the XSAVE header's XCOMP_BV lives; non-zero means the compacted format, which the
 * stub's standard-form xrstor cannot load. */
#define XSAVE_XCOMP_BV_OFFSET 520

/*
 * The stub (47 bytes, position independent, identical in every session):
 *
 *   0  ff d0          call  *%rax          fn(rdi, rsi, rdx, rcx, r8, r9)
 *   2  48 97          xchg  %rax, %rdi     result where memsnap reads it at the marker
 *   4  6a 27          push  $39
 *   6  58             pop   %rax
 *   7  0f 05          syscall              marker: getpid; memsnap stops here (entry)
 *   9  83 c8 ff       or    $-1, %eax      restore tail, run only when memsnap is gone:
 *  12  99             cltd                 edx:eax = all components
 *  13  48 0f ae 2b    xrstor64 (%rbx)      rbx = the saved XSAVE image (callee-saved)
 *  17  4c 89 e4       mov   %r12, %rsp     r12 = the save block (callee-saved)
 *  20  41 5f .. 58    pop   r15 .. r8, rdi, rsi, rbp, rbx, rdx, rcx, rax
 *  43  9d             popfq
 *  44  c2 80 00       ret   $128           rip from the block; rsp = saved rsp
 *
 * xrstor runs while rsp is still below the image, so a signal arriving in the tail cannot
 * overwrite the image before it is loaded; after `mov %r12, %rsp` every slot a signal frame
 * could land on has been consumed already.
 */
static const uint8_t stub_code[INJECT_STUB_LEN] = {
    0xff, 0xd0, 0x48, 0x97, 0x6a, 0x27, 0x58, 0x0f, 0x05, 0x83, 0xc8, 0xff, 0x99, 0x48, 0x0f, 0xae,
    0x2b, 0x4c, 0x89, 0xe4, 0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x41, 0x5b, 0x41, 0x5a,
    0x41, 0x59, 0x41, 0x58, 0x5f, 0x5e, 0x5d, 0x5b, 0x5a, 0x59, 0x58, 0x9d, 0xc2, 0x80, 0x00,
};

void inject_stub_bytes(uint8_t out[INJECT_STUB_LEN])
{
    memcpy(out, stub_code, sizeof stub_code);
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Writes n ranges (remote[i], local[i], len[i]) in one process_vm_writev when they are all
 * writable memory; else one by one through the session's /proc/PID/mem descriptor. */
static int thread_writev(struct inject_thread *t, const uint64_t *remote, const void *const *local,
                         const size_t *len, int n, ms_error *err)
{
    struct iovec lv[4], rv[4];
    size_t total = 0;
    for (int i = 0; i < n && i < 4; i++) {
        lv[i] = (struct iovec){(void *)local[i], len[i]};
        rv[i] = (struct iovec){(void *)(uintptr_t)remote[i], len[i]};
        total += len[i];
    }
    if (n <= 4 &&
        process_vm_writev(t->pid, lv, (unsigned long)n, rv, (unsigned long)n, 0) == (ssize_t)total)
        return 0;
    if (!t->mem_fd_open) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", (int)t->pid);
        t->mem_fd = open(path, O_RDWR | O_CLOEXEC);
        if (t->mem_fd < 0)
            return ms_error_errno(err, errno, "opening %s", path);
        t->mem_fd_open = 1;
    }
    for (int i = 0; i < n; i++) {
        for (size_t done = 0; done < len[i];) {
            ssize_t k = pwrite(t->mem_fd, (const char *)local[i] + done, len[i] - done,
                               (off_t)(remote[i] + done));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return ms_error_errno(err, k < 0 ? errno : EIO,
                                      "writing %zu bytes at 0x%llx of process %d", len[i],
                                      (unsigned long long)remote[i], (int)t->pid);
            done += (size_t)k;
        }
    }
    return 0;
}

int inject_write(struct inject_thread *t, uint64_t addr, const void *buf, size_t len, ms_error *err)
{
    return thread_writev(t, &addr, &buf, &len, 1, err);
}

static void mem_fd_close(struct inject_thread *t)
{
    if (t->mem_fd_open)
        close(t->mem_fd);
    t->mem_fd_open = 0;
}

void inject_regs_normalise(struct user_regs_struct *regs)
{
    if ((long long)regs->orig_rax >= 0) {
        long long rax = (long long)regs->rax;
        if (rax == -ERESTARTSYS || rax == -ERESTARTNOINTR || rax == -ERESTARTNOHAND) {
            regs->rip -= 2; /* back onto the 2-byte syscall instruction */
            regs->rax = regs->orig_rax;
        } else if (rax == -ERESTART_RESTARTBLOCK) {
            regs->rip -= 2;
            regs->rax = SYS_restart_syscall;
        }
    }
    regs->orig_rax = (unsigned long long)-1;
}

/* ---- /proc checks ---- */

/* Reads "Key:\tvalue" from /proc/PID[/task/TID]/status into val. 0 or -1 (ESRCH in errno). */
static int status_field(const char *path, const char *key, char *val, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[512];
    size_t klen = strlen(key);
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            const char *v = line + klen + 1;
            v += strspn(v, " \t");
            snprintf(val, n, "%s", v);
            val[strcspn(val, "\n")] = 0;
            found = 0;
            break;
        }
    }
    fclose(f);
    if (found < 0)
        errno = ENOENT;
    return found;
}

static void read_comm(pid_t pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "re");
    out[0] = 0;
    if (f) {
        if (!fgets(out, (int)n, f))
            out[0] = 0;
        fclose(f);
    }
    out[strcspn(out, "\n")] = 0;
    if (!out[0])
        snprintf(out, n, "?");
}

int inject_target_check(pid_t pid, ms_error *err)
{
    if (pid <= 0)
        return ms_error_set(err, "%d is not a process id", (int)pid);
    char path[64], val[128];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (status_field(path, "Tgid", val, sizeof val) < 0)
        return ms_error_set(err, "no process with pid %d", (int)pid);
    if (atoi(val) != pid)
        return ms_error_set(err, "%d is a thread of process %s, not a process; give the process id",
                            (int)pid, val);
    if (status_field(path, "State", val, sizeof val) == 0) {
        if (val[0] == 'T')
            return ms_error_set(err,
                                "process %d is stopped (Ctrl-Z?); resume it with `kill -CONT %d` "
                                "first",
                                (int)pid, (int)pid);
        if (val[0] == 'Z' || val[0] == 'X')
            return ms_error_set(err, "process %d has exited (zombie)", (int)pid);
    }
    /* Any traced thread means a debugger (or another memsnap) is working on the process;
     * two tracers hijacking threads of one process would fight over the stub. */
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return ms_error_errno(err, errno, "reading %s", dir);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char tpath[320];
        snprintf(tpath, sizeof tpath, "%s/%s/status", dir, e->d_name);
        if (status_field(tpath, "TracerPid", val, sizeof val) < 0)
            continue; /* the thread exited meanwhile */
        pid_t tracer = (pid_t)atoi(val);
        if (tracer != 0) {
            char comm[64];
            read_comm(tracer, comm, sizeof comm);
            rc = ms_error_set(err,
                              "process %d is already being traced by pid %d (%s); detach the "
                              "debugger first",
                              (int)pid, (int)tracer, comm);
            break;
        }
    }
    closedir(d);
    return rc;
}

/* ---- waiting for stops ---- */

/* Waits for the next wait status of tid until deadline_ns (CLOCK_MONOTONIC). waitpid has no
 * timeout and signal-based timeouts would disturb the rest of memsnap, so this sleeps in
 * sigtimedwait for the SIGCHLD that every ptrace-stop of a tracee sends its tracer (blocked
 * meanwhile, so it is consumed here and never delivered). Sleeping rather than spinning on
 * sched_yield matters on a busy machine: a yield hands the CPU to whatever else is runnable
 * for a whole time slice, milliseconds during which the target thread stays stopped, while
 * a sleeper woken by the signal is scheduled at once. A wait is capped at 1 ms in case the
 * signal was consumed elsewhere. Returns 1 with *status, 0 on timeout, -1 on error (errno). */
static int wait_status(pid_t tid, int *status, long long deadline_ns)
{
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, &old);
    int rc;
    for (;;) {
        pid_t r = waitpid(tid, status, __WALL | WNOHANG);
        if (r == tid) {
            rc = 1;
            break;
        }
        if (r < 0 && errno != EINTR) {
            rc = -1;
            break;
        }
        long long left = deadline_ns - now_ns();
        if (left <= 0) {
            rc = 0;
            break;
        }
        struct timespec ts = {0, left < 1000000 ? left : 1000000};
        sigtimedwait(&chld, NULL, &ts);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return rc;
}

static void hold_signal(struct inject_thread *t, int sig)
{
    for (int i = 0; i < t->nheld; i++)
        if (t->held[i] == sig && sig < SIGRTMIN)
            return; /* standard signals do not queue: one pending instance is the truth */
    if (t->nheld < INJECT_MAX_HELD_SIGNALS)
        t->held[t->nheld++] = sig;
}

/* Re-sends the signals that arrived while the thread was ours. tgkill rather than the
 * PTRACE_DETACH argument because the kernel ignores that argument at event stops. */
static void redeliver_held(struct inject_thread *t)
{
    for (int i = 0; i < t->nheld; i++)
        syscall(SYS_tgkill, t->pid, t->tid, t->held[i]);
    t->nheld = 0;
}

static void note_stop(struct inject_thread *t, long long since)
{
    long long d = now_ns() - since;
    if (d > t->timing.longest_stop_ns)
        t->timing.longest_stop_ns = d;
    t->timing.stops++;
}

/* select, pselect6 and ppoll restart with the remaining timeout the kernel wrote back to
 * user memory when the thread stopped, so time spent stopped would lengthen them (Python
 * 3.8-3.10 sleep in select). Subtract the time we held the thread, as if it had run on. The
 * other sleeps restart against an absolute deadline and need nothing. */
static void compensate_timeout(struct inject_thread *t)
{
    const struct user_regs_struct *r = &t->raw;
    if ((long long)r->rax != -ERESTARTNOHAND)
        return;
    uint64_t addr;
    long long unit; /* nanoseconds per unit of the second field */
    if (r->orig_rax == SYS_select) {
        addr = r->r8;
        unit = 1000;
    } else if (r->orig_rax == SYS_pselect6) {
        addr = r->r8;
        unit = 1;
    } else if (r->orig_rax == SYS_ppoll) {
        addr = r->rdx;
        unit = 1;
    } else {
        return;
    }
    long long tv[2];
    if (!addr || remote_read(t->pid, addr, tv, sizeof tv, NULL) < 0 || tv[0] < 0 || tv[1] < 0)
        return;
    long long left = tv[0] * 1000000000LL + tv[1] * unit - (now_ns() - t->stop_started_ns);
    if (left < 0)
        left = 0;
    tv[0] = left / 1000000000LL;
    tv[1] = (left % 1000000000LL) / unit;
    remote_write(t->pid, addr, tv, sizeof tv, NULL);
}

/* Ends the session. An adopted thread stays stopped and traced for its owner, so held
 * signals sent now stay pending until the owner lets it go; its stop was the owner's, not an
 * interrupted syscall of ours, so no timeout needs compensating. */
static void finish_detach(struct inject_thread *t)
{
    if (!t->adopted) {
        if (!t->hijacked && !t->abandoned)
            compensate_timeout(t);
        ptrace(PTRACE_DETACH, t->tid, 0, 0);
    }
    t->seized = 0;
    t->timing.stopped_ns = now_ns() - t->stop_started_ns;
    redeliver_held(t);
    mem_fd_close(t);
}

static int exited_error(struct inject_thread *t, int status, const char *doing, ms_error *err)
{
    t->seized = 0;
    t->hijacked = 0;
    if (WIFSIGNALED(status))
        return ms_error_set(err, "process %d was killed by signal %d (%s) while %s", (int)t->pid,
                            WTERMSIG(status), strsignal(WTERMSIG(status)), doing);
    return ms_error_set(err, "process %d exited (status %d) while %s", (int)t->pid,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1, doing);
}

/* ---- attach ---- */

static int seize_error(pid_t pid, pid_t tid, int e, ms_error *err)
{
    if (e == ESRCH)
        return ms_error_set(err, "thread %d of process %d no longer exists", (int)tid, (int)pid);
    if (e == EPERM)
        return ms_error_set(err, "not allowed to ptrace process %d: %s", (int)pid,
                            remote_permission_hint_for(pid));
    return ms_error_errno(err, e, "ptrace(PTRACE_SEIZE) of thread %d of process %d", (int)tid,
                          (int)pid);
}

/* The back half of attaching, at a stop: the registers as found, their normalised form and
 * the XSAVE image. On failure the session is ended (finish_detach). */
static int save_context(struct inject_thread *t, ms_error *err)
{
    pid_t tid = t->tid;
    if (ptrace(PTRACE_GETREGS, tid, 0, &t->raw) < 0) {
        int e = errno;
        finish_detach(t);
        return ms_error_errno(err, e, "reading the registers of thread %d", (int)tid);
    }
    t->norm = t->raw;
    inject_regs_normalise(&t->norm);
    if (!t->xstate && !(t->xstate = malloc(INJECT_XSTATE_MAX))) {
        finish_detach(t);
        return ms_error_set(err, "out of memory");
    }
    struct iovec iov = {t->xstate, INJECT_XSTATE_MAX};
    if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0) {
        int e = errno;
        finish_detach(t);
        return ms_error_errno(err, e,
                              "reading the XSAVE state of thread %d (a CPU without XSAVE is not "
                              "supported)",
                              (int)tid);
    }
    t->xstate_len = iov.iov_len;
    return 0;
}

int inject_attach(struct inject_thread *t, pid_t pid, pid_t tid, int timeout_ms, ms_error *err)
{
    uint8_t *keep = t->xstate;
    mem_fd_close(t);
    memset(t, 0, sizeof *t);
    t->xstate = keep;
    t->pid = pid;
    t->tid = tid;
    long long start = now_ns();
    if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACESYSGOOD) < 0)
        return seize_error(pid, tid, errno, err);
    t->seized = 1;
    if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0) {
        int e = errno;
        ptrace(PTRACE_DETACH, tid, 0, 0);
        t->seized = 0;
        return ms_error_errno(err, e, "ptrace(PTRACE_INTERRUPT) of thread %d", (int)tid);
    }
    long long deadline = start + (long long)timeout_ms * 1000000LL;
    for (;;) {
        int status;
        int w = wait_status(tid, &status, deadline);
        if (w < 0) {
            int e = errno;
            t->seized = 0;
            return ms_error_errno(err, e, "waiting for thread %d to stop", (int)tid);
        }
        if (w == 0) {
            /* Not stopped yet (uninterruptible sleep?); detaching needs a stop, so leave the
             * interrupt pending: the kernel drops it when we are gone or detach later. */
            int ws = 0;
            if (ptrace(PTRACE_DETACH, tid, 0, 0) < 0) {
                /* Not stopped: wait a little more for the stop, then detach. */
                if (wait_status(tid, &ws, now_ns() + 200000000LL) == 1 && WIFSTOPPED(ws))
                    ptrace(PTRACE_DETACH, tid, 0, 0);
            }
            t->seized = 0;
            redeliver_held(t);
            return ms_error_set(err, "thread %d of process %d did not stop within %d ms", (int)tid,
                                (int)pid, timeout_ms);
        }
        if (!WIFSTOPPED(status))
            return exited_error(t, status, "memsnap attached", err);
        int sig = WSTOPSIG(status);
        if (status >> 16 == PTRACE_EVENT_STOP) {
            if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
                /* Job control is stopping the process right now; leave it to it. */
                ptrace(PTRACE_DETACH, tid, 0, 0);
                t->seized = 0;
                redeliver_held(t);
                return ms_error_set(err,
                                    "process %d is being stopped (Ctrl-Z?); resume it with `kill "
                                    "-CONT %d` first",
                                    (int)pid, (int)pid);
            }
            break; /* our interrupt-stop */
        }
        /* A signal was about to be delivered: hold it, let the pending interrupt stop it. */
        hold_signal(t, sig);
        ptrace(PTRACE_CONT, tid, 0, 0);
    }
    t->stop_started_ns = now_ns();
    if (save_context(t, err) < 0)
        return -1;
    note_stop(t, start);
    return 0;
}

int inject_adopt(struct inject_thread *t, pid_t pid, pid_t tid, ms_error *err)
{
    uint8_t *keep = t->xstate;
    mem_fd_close(t);
    memset(t, 0, sizeof *t);
    t->xstate = keep;
    t->pid = pid;
    t->tid = tid;
    t->seized = 1;
    t->adopted = 1;
    t->stop_started_ns = now_ns();
    return save_context(t, err);
}

int inject_release(struct inject_thread *t, ms_error *err)
{
    if (!t->seized)
        return 0;
    if (t->hijacked)
        return inject_finish(t, err);
    finish_detach(t);
    return 0;
}

/* ---- the hijack ---- */

int inject_begin(struct inject_thread *t, uint64_t stub_addr, const uint8_t *orig,
                 size_t scratch_len, ms_error *err)
{
    if (!t->seized)
        return ms_error_set(err, "thread %d is not attached", (int)t->tid);
    if (t->xstate_len < 576 || t->xstate_len > INJECT_XSTATE_MAX) {
        inject_release(t, NULL);
        return ms_error_set(err, "unexpected XSAVE image size %zu", t->xstate_len);
    }
    uint64_t xcomp_bv;
    memcpy(&xcomp_bv, t->xstate + XSAVE_XCOMP_BV_OFFSET, sizeof xcomp_bv);
    if (xcomp_bv != 0) {
        inject_release(t, NULL);
        return ms_error_set(err, "the kernel reported a compacted XSAVE image; not supported");
    }
    uint64_t rsp = t->norm.rsp;
    t->block_addr = rsp - BLOCK_BELOW_RSP;
    t->xsave_addr = (t->block_addr - t->xstate_len) & ~(uint64_t)63;
    t->scratch_hi = t->xsave_addr;
    t->scratch_lo = (t->scratch_hi - scratch_len) & ~(uint64_t)15;
    t->scratch_next = t->scratch_lo;
    t->call_rsp = (t->scratch_lo - CALL_GAP) & ~(uint64_t)15;
    if (t->call_rsp > rsp) {
        inject_release(t, NULL);
        return ms_error_set(err, "thread %d has an implausible stack pointer 0x%llx", (int)t->tid,
                            (unsigned long long)rsp);
    }

    /* The save block, in the stub's pop order. */
    const struct user_regs_struct *r = &t->norm;
    uint64_t block[BLOCK_SLOTS] = {
        r->r15, r->r14, r->r13, r->r12, r->r11, r->r10, r->r9,     r->r8,  r->rdi,
        r->rsi, r->rbp, r->rbx, r->rdx, r->rcx, r->rax, r->eflags, r->rip,
    };
    const uint64_t at[2] = {t->xsave_addr, t->block_addr};
    const void *what[2] = {t->xstate, block};
    const size_t len[2] = {t->xstate_len, sizeof block};
    if (thread_writev(t, at, what, len, 2, err) < 0) {
        inject_release(t, NULL);
        return ms_error_prefix(err, "writing the save area on the stack of thread %d", (int)t->tid);
    }

    uint8_t cur[INJECT_STUB_LEN];
    if (remote_read(t->pid, stub_addr, cur, sizeof cur, err) < 0) {
        inject_release(t, NULL);
        return ms_error_prefix(err, "reading the stub site");
    }
    t->stub_addr = stub_addr;
    memcpy(t->stub_orig, orig, INJECT_STUB_LEN);
    if (memcmp(cur, stub_code, sizeof cur) == 0) {
        t->stub_owned = 0; /* a leftover of an earlier session: reuse it, never restore it */
    } else if (memcmp(cur, orig, sizeof cur) == 0) {
        if (inject_write(t, stub_addr, stub_code, sizeof stub_code, err) < 0) {
            inject_release(t, NULL);
            return ms_error_prefix(err, "writing the call stub");
        }
        t->stub_owned = 1;
    } else {
        inject_release(t, NULL);
        return ms_error_set(err,
                            "the code at 0x%llx in process %d differs from its file on disk and "
                            "from memsnap's stub; refusing to overwrite it",
                            (unsigned long long)stub_addr, (int)t->pid);
    }
    return 0;
}

int inject_scratch_put(struct inject_thread *t, const void *data, size_t len, uint64_t *remote,
                       ms_error *err)
{
    uint64_t at = (t->scratch_next + 15) & ~(uint64_t)15;
    if (len > t->scratch_hi - t->scratch_lo || at + len > t->scratch_hi)
        return ms_error_set(err, "%zu bytes do not fit in the scratch area", len);
    if (inject_write(t, at, data, len, err) < 0)
        return ms_error_prefix(err, "writing call arguments");
    t->scratch_next = at + len;
    *remote = at;
    return 0;
}

/* Puts the raw saved context back at a stop where that is honoured (signal-delivery-stop,
 * syscall-exit-stop, event-stop), with the original orig_rax and rax, so the kernel applies
 * the real restart semantics (restart, or EINTR when a re-delivered signal has a handler). */
static int restore_context(struct inject_thread *t, ms_error *err)
{
    struct iovec iov = {t->xstate, t->xstate_len};
    if (ptrace(PTRACE_SETREGS, t->tid, 0, &t->raw) < 0)
        return ms_error_errno(err, errno, "restoring the registers of thread %d", (int)t->tid);
    t->hijacked = 0;
    t->at_marker = 0;
    if (ptrace(PTRACE_SETREGSET, t->tid, (void *)NT_X86_XSTATE, &iov) < 0)
        return ms_error_errno(err, errno, "restoring the XSAVE state of thread %d", (int)t->tid);
    return 0;
}

static void restore_stub(struct inject_thread *t)
{
    if (t->stub_owned && !t->abandoned) {
        inject_write(t, t->stub_addr, t->stub_orig, INJECT_STUB_LEN, NULL);
        t->stub_owned = 0;
    }
}

/* A call did not come back in time: do not roll back (the thread may hold the loader or
 * malloc lock); stop it only long enough to detach, and let the stub finish on its own. */
static void abandon(struct inject_thread *t)
{
    int status;
    t->abandoned = 1;
    ptrace(PTRACE_INTERRUPT, t->tid, 0, 0);
    long long deadline = now_ns() + 500000000LL;
    for (;;) {
        int w = wait_status(t->tid, &status, deadline);
        if (w <= 0 || !WIFSTOPPED(status))
            break;
        if (status >> 16 == PTRACE_EVENT_STOP || (WSTOPSIG(status) & 0x80))
            break;
        hold_signal(t, WSTOPSIG(status));
        ptrace(PTRACE_CONT, t->tid, 0, 0); /* continue to the pending interrupt-stop */
    }
    finish_detach(t);
    t->hijacked = 0;
}

static int is_fault_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGSYS ||
           sig == SIGTRAP;
}

/* A synchronous fault inside the injected call: restore at this signal-delivery-stop. */
static int fail_fault(struct inject_thread *t, const char *what, int sig, ms_error *err)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si);
    ms_error ignored;
    restore_context(t, &ignored);
    restore_stub(t);
    finish_detach(t);
    if (sig == SIGSYS && si.si_code == 1 /* SYS_SECCOMP */)
        return ms_error_set(err,
                            "a seccomp filter in process %d forbids syscall %d, which %s needs; "
                            "memsnap cannot inject into it (the thread was restored)",
                            (int)t->pid, si.si_syscall, what);
    return ms_error_set(err,
                        "the injected call to %s crashed with %s at address 0x%llx in process "
                        "%d; the thread was restored",
                        what, strsignal(sig), (unsigned long long)(uintptr_t)si.si_addr,
                        (int)t->pid);
}

int inject_call(struct inject_thread *t, const char *what, uint64_t fn, const uint64_t *args,
                int nargs, int timeout_ms, uint64_t *ret, ms_error *err)
{
    return inject_call_armed(t, what, fn, args, nargs, timeout_ms, NULL, NULL, ret, err);
}

int inject_call_armed(struct inject_thread *t, const char *what, uint64_t fn, const uint64_t *args,
                      int nargs, int timeout_ms, void (*armed)(void *ctx), void *ctx, uint64_t *ret,
                      ms_error *err)
{
    if (!t->seized || !t->stub_addr)
        return ms_error_set(err, "calling %s: no hijack session", what);
    if (nargs < 0 || nargs > 6)
        return ms_error_set(err, "calling %s: %d arguments (at most 6)", what, nargs);
    struct user_regs_struct regs = t->norm;
    uint64_t a[6] = {0};
    for (int i = 0; i < nargs; i++)
        a[i] = args[i];
    regs.rdi = a[0];
    regs.rsi = a[1];
    regs.rdx = a[2];
    regs.rcx = a[3];
    regs.r8 = a[4];
    regs.r9 = a[5];
    regs.rax = fn;
    regs.rbx = t->xsave_addr;
    regs.r12 = t->block_addr;
    regs.rsp = t->call_rsp;
    regs.rip = t->stub_addr;
    regs.eflags &= ~((1ull << 10) | (1ull << 8)); /* DF (the ABI wants it clear), TF */
    regs.orig_rax = (unsigned long long)-1;       /* at the marker: skip its getpid */
    long long start = now_ns();
    if (ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0) {
        int e = errno;
        inject_finish(t, NULL);
        return ms_error_errno(err, e, "setting the registers of thread %d for %s", (int)t->tid,
                              what);
    }
    t->hijacked = 1;
    t->at_marker = 0;
    /* From here on the thread makes the call even if memsnap dies this instant (the kernel
     * detaches it with these registers): what armed does is always followed by the call. */
    if (armed)
        armed(ctx);
    long long deadline = start + (long long)timeout_ms * 1000000LL;
    long long resumed = start;
    int deliver = 0;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, t->tid, 0, (void *)(long)deliver) < 0) {
            int e = errno;
            inject_finish(t, NULL);
            return ms_error_errno(err, e, "resuming thread %d in %s", (int)t->tid, what);
        }
        note_stop(t, resumed);
        int status;
        int w = wait_status(t->tid, &status, deadline);
        resumed = now_ns();
        if (w < 0) {
            t->seized = 0;
            return ms_error_errno(err, errno, "waiting for thread %d in %s", (int)t->tid, what);
        }
        if (w == 0) {
            t->timing.calls_ns += now_ns() - start;
            abandon(t);
            return ms_error_set(err,
                                "the injected call to %s in process %d did not return within %d "
                                "ms; the thread was left to finish it and restore itself",
                                what, (int)t->pid, timeout_ms);
        }
        if (!WIFSTOPPED(status)) {
            char doing[128];
            snprintf(doing, sizeof doing, "memsnap was calling %s in it", what);
            return exited_error(t, status, doing, err);
        }
        int sig = WSTOPSIG(status);
        if (sig == (SIGTRAP | 0x80)) {
            struct user_regs_struct now;
            if (ptrace(PTRACE_GETREGS, t->tid, 0, &now) < 0)
                continue;
            if (now.rip == t->stub_addr + STUB_MARKER_END && now.orig_rax == MARKER_SYSCALL &&
                (long long)now.rax == -ENOSYS) {
                t->at_marker = 1;
                t->timing.calls_ns += now_ns() - start;
                *ret = now.rdi;
                return 0;
            }
            deliver = 0;
            continue;
        }
        if (status >> 16 != 0) {
            deliver = 0; /* an interrupt or group-stop: run on; detach honours job control */
            continue;
        }
        if (is_fault_signal(sig)) {
            siginfo_t si;
            if (ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si) == 0 && si.si_code > 0)
                return fail_fault(t, what, sig, err);
        }
        hold_signal(t, sig);
        deliver = 0;
    }
}

int inject_finish(struct inject_thread *t, ms_error *err)
{
    if (!t->seized)
        return 0;
    int rc = 0;
    if (t->at_marker) {
        /* Registers cannot carry a pending syscall restart out of a syscall-entry stop (the
         * kernel would run that syscall): skip the marker, step to its exit stop, and restore
         * the raw context there. */
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, t->tid, 0, &regs) == 0) {
            regs.orig_rax = (unsigned long long)-1;
            ptrace(PTRACE_SETREGS, t->tid, 0, &regs);
        }
        long long since = now_ns();
        int status;
        for (;;) {
            if (ptrace(PTRACE_SYSCALL, t->tid, 0, 0) < 0)
                break;
            int w = wait_status(t->tid, &status, now_ns() + 1000000000LL);
            if (w <= 0) {
                abandon(t);
                return ms_error_set(err, "thread %d did not reach the marker's exit", (int)t->tid);
            }
            if (!WIFSTOPPED(status))
                return exited_error(t, status, "memsnap was restoring it", err);
            if (WSTOPSIG(status) == (SIGTRAP | 0x80) || status >> 16 != 0)
                break;
            hold_signal(t, WSTOPSIG(status)); /* now at a signal stop: also fine to restore */
            break;
        }
        note_stop(t, since);
    }
    if (t->hijacked)
        rc = restore_context(t, err);
    restore_stub(t);
    finish_detach(t);
    return rc;
}

void inject_thread_free(struct inject_thread *t)
{
    mem_fd_close(t);
    free(t->xstate);
    t->xstate = NULL;
}
