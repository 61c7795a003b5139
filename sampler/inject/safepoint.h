/*
 * safepoint.h - choosing a thread of a live process that may be hijacked for injected calls.
 *
 * An injected dlopen takes the loader lock and allocates with malloc. If the hijacked thread
 * was stopped while holding either lock (inside malloc, inside the loader), the injected call
 * deadlocks against its own thread. Other threads are never stopped, so a lock they hold is
 * released soon; only the hijacked thread matters.
 *
 * Policy: threads parked in a benign blocking syscall (clock_nanosleep, select, poll,
 * epoll_wait, read, accept, recvfrom, wait4, ...) first, then futex waiters, then running
 * threads, then threads in memory-management syscalls (mmap, brk, ...), the main thread first
 * within a class. Each candidate is attached (inject_attach) and its native stack unwound
 * (native_unwind.h: libunwind over caches warmed before the stop, by a rehearsal walk from the
 * stack pointer and pc that /proc shows for a blocked thread, so the stop stays short); it
 * is refused when any frame is in the dynamic loader or in a libc entry
 * point of the malloc family, the dl* family, fork or exit (a static helper shows up as the
 * exported function that called it, so the exported names suffice), or when the unwind does
 * not reach the outermost frame of a thread (clone3 / _start), because then an unsafe frame
 * could hide below. Refused candidates are released at once; the whole list is retried every
 * few milliseconds until the deadline.
 */
#ifndef MEMSNAP_SAFEPOINT_H
#define MEMSNAP_SAFEPOINT_H

#include <sys/types.h>

#include "error.h"
#include "inject.h"

struct safepoint_stats {
    int attempts;          /* candidates attached and inspected */
    int refused;           /* of which were refused */
    long long unwind_ns;   /* time spent unwinding the accepted thread (it was stopped) */
    char last_reason[160]; /* why the last refused candidate was refused */
};

/* Finds a thread of pid at a safe point within deadline_ms and returns it attached in *t
 * (inject_attach done; the caller continues with inject_begin, or inject_release). stats may
 * be NULL. Fails when the process cannot be traced (see inject_attach) or when no thread was
 * safe before the deadline (the message says what the last candidate was doing). */
int safepoint_acquire(pid_t pid, struct inject_thread *t, int deadline_ms,
                      struct safepoint_stats *stats, ms_error *err);

/* Classifies the first field of /proc/PID/task/TID/syscall ("running", "-1", or a syscall
 * number): 0 benign blocking syscall, 1 futex, 2 running or unknown, 3 memory management
 * (likely inside malloc). Exposed for the unit test. */
int safepoint_syscall_class(const char *syscall_line);

/* 1 if a frame in libc named name makes the thread unsafe to hijack, else 0. */
int safepoint_libc_frame_unsafe(const char *name);

#endif
