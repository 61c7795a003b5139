/*
 * proc_tasks.h - what the kernel says about each thread of a process: its scheduler state
 * and its name (/proc/PID/task/TID/stat and comm), read without touching the process.
 *
 * `memsnap dump` reads these before its walk (which may stop threads on 3.8-3.10 and would
 * show them as stopped) to say which thread is running and which is waiting, and to show the
 * names a process gives its threads (prctl(PR_SET_NAME), pthread_setname_np, or writing
 * /proc/self/task/TID/comm; CPython's threading module sets none before 3.14).
 */
#ifndef MEMSNAP_PROC_TASKS_H
#define MEMSNAP_PROC_TASKS_H

#include <sys/types.h>

struct proc_task {
    pid_t tid;
    char state;    /* the stat state letter: R running, S/D waiting, T/t stopped, ... */
    char name[17]; /* comm, at most 15 bytes plus NUL; "" when unreadable */
};

/* Lists every thread of pid into *out (malloc'd, free()); returns the count, or -1 when the
 * process is gone. Threads that exit meanwhile are left out. */
int proc_tasks_read(pid_t pid, struct proc_task **out);

/* The entry of `tid` among n tasks, or NULL. */
const struct proc_task *proc_tasks_find(const struct proc_task *tasks, int n, pid_t tid);

/* "running" (R), "idle" (S, D, I: waiting for a lock, I/O, a timer), "stopped" (T, t), or
 * "unknown". */
const char *proc_task_activity(char state);

#endif
