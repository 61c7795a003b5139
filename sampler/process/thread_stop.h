/*
 * thread_stop.h - freezing every thread of a process for a consistent read, then letting go.
 *
 * CPython 3.8-3.10 frames are heap objects recycled through free lists: reading a running
 * process gives torn stacks about a third of the time, so memsnap stops the threads for the
 * few milliseconds a walk takes. Every task is PTRACE_SEIZEd and PTRACE_INTERRUPTed (never
 * SIGSTOP: nothing is left pending, no job-control state changes), each stop is waited for,
 * and thread_stop_release() PTRACE_DETACHes every one, re-delivering any signal that arrived
 * meanwhile. If memsnap dies while the threads are held, the kernel detaches them and they
 * simply continue. While stopped, each task's fs_base (its pthread_t on x86_64 glibc) is
 * recorded, which maps CPython thread states (that only know the pthread_t before 3.11) to
 * kernel thread ids.
 *
 * A process whose every thread is already stopped (Ctrl-Z, SIGSTOP) is left untouched:
 * thread_stop_all succeeds with `already_stopped` set and no task seized.
 */
#ifndef MEMSNAP_THREAD_STOP_H
#define MEMSNAP_THREAD_STOP_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct thread_stop_task {
    pid_t tid;
    uint64_t fs_base; /* pthread_t of the thread (0 if unknown) */
    int seized;       /* we are its tracer and must detach it */
    int stopped;      /* its stop was reported to us */
    int pending_sig;  /* a signal that stopped it; given back at detach */
};

struct thread_stop {
    pid_t pid;
    struct thread_stop_task *tasks;
    int count, cap;
    int already_stopped; /* the process was stopped before us: nothing seized */
    long long stop_ns;   /* from the first interrupt to the last detach (after release) */
    long long t_first;   /* private */
};

/* Stops every thread of pid. On failure every task already seized is released before
 * returning (the process is never left stopped). Errors: the process exited, is already
 * traced ("process 123 is already being traced by pid 456 (gdb)"), permission (how to allow
 * ptrace), or a thread that did not stop within 2 s. */
int thread_stop_all(pid_t pid, struct thread_stop *ts, ms_error *err);

/* Detaches every seized task (in any state) and frees the task array. Safe to call twice and
 * after a failed thread_stop_all. */
void thread_stop_release(struct thread_stop *ts);

/* Kernel tid of the stopped thread whose pthread_t is pthread_id, or 0. */
pid_t thread_stop_tid_of(const struct thread_stop *ts, uint64_t pthread_id);

#endif
