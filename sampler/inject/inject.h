/*
 * inject.h - run functions inside one thread of a live process with raw ptrace.
 *
 * One struct inject_thread is one hijack session of one thread. Life of a session:
 *
 *   inject_target_check(pid)        refuse stopped / already traced / absent processes
 *   inject_attach(&t, pid, tid)     PTRACE_SEIZE + PTRACE_INTERRUPT that thread only; save its
 *                                   registers and XSAVE state; other threads keep running
 *   (safepoint.c inspects the stopped thread here and may inject_release() it instead)
 *   inject_begin(&t, stub, ...)     lay out the save area on the thread's stack, write the stub
 *   inject_scratch_put(&t, ...)     copy argument bytes (paths, configs) below the save area
 *   inject_call(&t, fn, args, ...)  run fn(args...) in the thread; any number of times
 *   inject_finish(&t)               put every register and the stub bytes back; detach
 *
 * A thread memsnap already traces for another reason (`memsnap run` holds its child stopped
 * at Py_RunMain) enters through inject_adopt instead of inject_attach; its session ends with
 * the thread restored but still stopped and traced, and the caller detaches it.
 *
 * Why it is safe at every instant, including memsnap being SIGKILLed (the kernel then detaches
 * the thread and it runs on):
 *   - The saved context is NORMALISED: a thread stopped inside an interrupted syscall is
 *     rewritten to the plain user-space state the kernel itself would produce when restarting
 *     it (rip back onto the syscall instruction, rax = the syscall number or restart_syscall,
 *     orig_rax = -1), so it can be resumed from any later stop, or from user space.
 *   - The call stub is SELF-RESTORING: after fn returns it executes a marker syscall (getpid,
 *     where memsnap catches it and restores everything itself), then reloads the XSAVE image
 *     and every register from the save area on the thread's own stack and jumps back to the
 *     saved rip. A thread whose tracer died finishes the call and returns to its own code.
 *   - The save area and the stub are written before the registers are pointed at them, and
 *     on the way back the registers are restored before anything else.
 *   - The stub bytes are identical in every session, so a leftover from a killed session (or a
 *     session abandoned after a timeout, whose thread may still be inside its call) is
 *     compatible with a new one; such a leftover is left in place rather than restored, because
 *     a thread returning into restored libc bytes would crash. The stub's home (libc's ELF
 *     entry point, by default) is code that nothing in a running process executes.
 *
 * Signals that arrive for the hijacked thread during a call are held and re-delivered at
 * detach. A synchronous fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS) inside a call fails
 * the call, restores the thread and detaches. A call that does not return before its timeout
 * is NOT rolled back (the thread may hold the loader lock): the thread is detached and the
 * stub completes the call and restores it on its own.
 *
 * Every function returns 0 or -1 with one sentence in err. After any failure of inject_attach,
 * inject_begin or inject_call the thread has already been released (restored and detached)
 * when memsnap could do so; inject_finish and inject_release are then no-ops. Not thread safe:
 * one session is driven by the one memsnap thread that attached it (ptrace's rule).
 */
#ifndef MEMSNAP_INJECT_H
#define MEMSNAP_INJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "error.h"

/* Bytes of the call stub (see inject.c for its instructions). */
#define INJECT_STUB_LEN 47
/* Largest XSAVE image accepted (AMX machines report about 11 KiB). */
#define INJECT_XSTATE_MAX 16384
/* Signals held during a session; more are re-delivered in order, duplicates merged. */
#define INJECT_MAX_HELD_SIGNALS 16

struct inject_timing {
    long long stopped_ns;      /* interrupt-stop to detach: the hijacked thread ran none of
                                * its own code during this time (other threads ran on) */
    long long longest_stop_ns; /* longest single ptrace-stop (memsnap's own work at a stop) */
    long long calls_ns;        /* time spent executing injected calls */
    int stops;                 /* ptrace-stops taken, syscall stops included */
};

struct inject_thread {
    pid_t pid, tid;
    int seized;     /* we are the tracer of tid */
    int hijacked;   /* tid's registers may point into the stub */
    int abandoned;  /* a call timed out; the thread was left to finish it on its own */
    int stub_owned; /* we wrote the stub and must restore the original bytes */
    int at_marker;  /* stopped at the marker's syscall-entry (registers are the stub's) */
    int adopted;    /* the caller traced tid before us and detaches it (inject_adopt) */
    struct user_regs_struct raw;  /* as found at the interrupt-stop */
    struct user_regs_struct norm; /* raw, normalised to a plain user-space context */
    uint8_t *xstate;              /* XSAVE image as the kernel reported it (malloc'd) */
    size_t xstate_len;
    uint64_t stub_addr;
    uint8_t stub_orig[INJECT_STUB_LEN]; /* the bytes the stub replaced */
    uint64_t block_addr, xsave_addr, scratch_lo, scratch_hi, scratch_next, call_rsp;
    int held[INJECT_MAX_HELD_SIGNALS];
    int nheld;
    int mem_fd; /* /proc/PID/mem while mem_fd_open: kept for the session */
    int mem_fd_open;
    long long stop_started_ns; /* CLOCK_MONOTONIC of the interrupt-stop */
    struct inject_timing timing;
};

/* The stub's bytes, for callers that want to recognise it. */
void inject_stub_bytes(uint8_t out[INJECT_STUB_LEN]);

/* Rewrites regs, captured at a ptrace-stop, into the equivalent plain user-space context
 * (see the top of this file). Pure function; exposed for the unit test. */
void inject_regs_normalise(struct user_regs_struct *regs);

/* Checks that pid is a live process that may be hijacked now: it exists, is not stopped by
 * job control (state T), and no thread of it is traced. The message says what to do. */
int inject_target_check(pid_t pid, ms_error *err);

/* Seizes thread tid of process pid and waits (up to timeout_ms) for its interrupt-stop, then
 * saves its registers and XSAVE state. Fills *t (which the caller zeroes or reuses). */
int inject_attach(struct inject_thread *t, pid_t pid, pid_t tid, int timeout_ms, ms_error *err);

/* Takes over thread tid of process pid, which the CALLER already traces (seized with
 * PTRACE_O_TRACESYSGOOD, which tells the stub's marker from signals) and which sits in a
 * ptrace-stop now: saves its registers and XSAVE state as inject_attach does, without the
 * checks that refuse a traced process. Every later step works as for an attached thread,
 * except that the session's end (inject_finish, inject_release, or a failure) does not
 * detach: the thread is left restored, stopped and traced, for the caller to let go. Signals
 * that arrived during the calls are re-sent with tgkill and stay pending until then.
 * Returns 0, or -1 with err (the thread is not stopped, or its state cannot be read). */
int inject_adopt(struct inject_thread *t, pid_t pid, pid_t tid, ms_error *err);

/* Detaches a thread that was attached but not hijacked (or finished); re-delivers held
 * signals. Safe to call twice. */
int inject_release(struct inject_thread *t, ms_error *err);

/* Prepares the hijack: stub_addr is where the stub goes (INJECT_STUB_LEN bytes of code that
 * nothing executes); orig holds the bytes that belong there (read from the file on disk, so
 * a leftover stub is recognised). Reserves scratch_len bytes of scratch on the thread's stack.
 * The memory at stub_addr must hold either orig or the stub; anything else is refused. */
int inject_begin(struct inject_thread *t, uint64_t stub_addr, const uint8_t *orig,
                 size_t scratch_len, ms_error *err);

/* Copies len bytes into the scratch area (16-byte aligned) and returns their address in the
 * target in *remote. The area lives until inject_finish. */
int inject_scratch_put(struct inject_thread *t, const void *data, size_t len, uint64_t *remote,
                       ms_error *err);

/* Writes len bytes at addr of the attached thread's process: with process_vm_writev (one
 * syscall) where the memory is writable, else through /proc/PID/mem, whose descriptor the
 * session keeps open (code: the stub). Each syscall counts while the thread is stopped. */
int inject_write(struct inject_thread *t, uint64_t addr, const void *buf, size_t len,
                 ms_error *err);

/* Calls fn(args[0..nargs-1]) (nargs <= 6, integer/pointer arguments) in the hijacked thread
 * and stores its rax in *ret. what names the function in messages ("dlopen"). On timeout
 * (timeout_ms) the thread is left to finish the call on its own and detached. */
int inject_call(struct inject_thread *t, const char *what, uint64_t fn, const uint64_t *args,
                int nargs, int timeout_ms, uint64_t *ret, ms_error *err);

/* inject_call, with armed(ctx) run after the thread's registers point at the call and before
 * it is resumed: from that instant the thread makes the call even if memsnap is killed (the
 * kernel detaches it as it is), so armed may create what the call consumes and cleans up
 * (inject_lib.c names the library file there, which the loaded hook then unlinks). */
int inject_call_armed(struct inject_thread *t, const char *what, uint64_t fn, const uint64_t *args,
                      int nargs, int timeout_ms, void (*armed)(void *ctx), void *ctx, uint64_t *ret,
                      ms_error *err);

/* Restores every register, the XSAVE state and the stub bytes, then detaches and re-delivers
 * held signals. Safe to call after a failure (then it does what is left). */
int inject_finish(struct inject_thread *t, ms_error *err);

/* Frees what inject_attach allocated (after inject_finish or inject_release). */
void inject_thread_free(struct inject_thread *t);

#endif
