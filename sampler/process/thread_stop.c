/*
 * thread_stop.c - PTRACE_SEIZE/INTERRUPT every task, wait, read fs_base, detach; see
 * thread_stop.h.
 *
 * Threads can be created while we seize (a running thread spawns one before we reach it), so
 * the task list is re-read after every round until a round finds no new task: once all known
 * tasks are stopped none can create more. Waiting uses WNOHANG polling with a deadline, so a
 * task stuck in the kernel (D state) makes us give up and release everything instead of
 * hanging with the rest of the process frozen.
 */
#include "thread_stop.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "remote.h"

#define STOP_TIMEOUT_NS 2000000000LL

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* State letter of a task from /proc/PID/task/TID/stat, 0 when gone. */
static char task_state(pid_t pid, pid_t tid)
{
    char path[96], buf[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')'); /* comm may contain anything, even ')' */
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* TracerPid of a task, 0 when none or unknown. */
static pid_t tracer_of(pid_t pid, pid_t tid)
{
    char path[96], line[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    int tracer = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "TracerPid: %d", &tracer) == 1)
            break;
    fclose(f);
    return tracer;
}

static void comm_of(pid_t pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    snprintf(out, n, "?");
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (fgets(out, (int)n, f))
        out[strcspn(out, "\n")] = 0;
    fclose(f);
    for (char *p = out; *p; p++)
        if (!isprint((unsigned char)*p))
            *p = '?';
}

/* Lists the task ids of pid into *tids (malloc'd). Returns the count or -1 (process gone). */
static int list_tasks(pid_t pid, pid_t **tids)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0, cap = 64;
    pid_t *v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (n == cap) {
            pid_t *w = realloc(v, (size_t)cap * 2 * sizeof *v);
            if (!w) {
                free(v);
                v = NULL;
                break;
            }
            v = w;
            cap *= 2;
        }
        v[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    *tids = v;
    return v ? n : -1;
}

static struct thread_stop_task *find_task(struct thread_stop *ts, pid_t tid)
{
    for (int i = 0; i < ts->count; i++)
        if (ts->tasks[i].tid == tid)
            return &ts->tasks[i];
    return NULL;
}

static struct thread_stop_task *add_task(struct thread_stop *ts, pid_t tid)
{
    if (ts->count == ts->cap) {
        int ncap = ts->cap ? ts->cap * 2 : 64;
        struct thread_stop_task *n = realloc(ts->tasks, (size_t)ncap * sizeof *n);
        if (!n)
            return NULL;
        ts->tasks = n;
        ts->cap = ncap;
    }
    struct thread_stop_task *t = &ts->tasks[ts->count++];
    memset(t, 0, sizeof *t);
    t->tid = tid;
    return t;
}

static int already_traced(pid_t pid, pid_t tracer, ms_error *err)
{
    char comm[64];
    comm_of(tracer, comm, sizeof comm);
    return ms_error_set(err,
                        "process %d is already being traced by pid %d (%s); detach that "
                        "debugger first",
                        (int)pid, (int)tracer, comm);
}

/* Waits until task t reports its stop (or exits). 0 stopped, 1 gone, -1 timeout. */
static int wait_stopped(struct thread_stop_task *t, long long deadline)
{
    long long nap = 20000; /* 20 us, doubling to 1 ms: most stops arrive within microseconds */
    for (;;) {
        int st;
        pid_t r = waitpid(t->tid, &st, __WALL | WNOHANG);
        if (r == t->tid) {
            if (WIFEXITED(st) || WIFSIGNALED(st)) {
                t->seized = 0;
                return 1;
            }
            if (WIFSTOPPED(st)) {
                if ((st >> 16) == 0)
                    t->pending_sig = WSTOPSIG(st); /* a real signal: give it back later */
                t->stopped = 1;
                return 0;
            }
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) { /* ECHILD: the task vanished without a report */
            t->seized = 0;
            return 1;
        }
        if (now_ns() > deadline)
            return -1;
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
        if (nap < 1000000)
            nap *= 2;
    }
}

static int all_stopped_already(pid_t pid, const pid_t *tids, int n)
{
    int live = 0;
    for (int i = 0; i < n; i++) {
        char s = task_state(pid, tids[i]);
        if (s == 0 || s == 'Z' || s == 'X')
            continue;
        if (s != 'T' && s != 't')
            return 0;
        live++;
    }
    return live > 0;
}

int thread_stop_all(pid_t pid, struct thread_stop *ts, ms_error *err)
{
    memset(ts, 0, sizeof *ts);
    ts->pid = pid;
    pid_t *tids = NULL;
    int n = list_tasks(pid, &tids);
    if (n <= 0) {
        free(tids);
        return ms_error_set(err, "process %d exited", (int)pid);
    }
    if (all_stopped_already(pid, tids, n)) {
        ts->already_stopped = 1;
        free(tids);
        return 0;
    }
    long long deadline = now_ns() + STOP_TIMEOUT_NS;
    int rounds = 0, added;
    do {
        added = 0;
        for (int i = 0; i < n; i++) {
            if (find_task(ts, tids[i]))
                continue;
            char s = task_state(pid, tids[i]);
            if (s == 0 || s == 'Z' || s == 'X')
                continue; /* exiting: nothing to freeze */
            struct thread_stop_task *t = add_task(ts, tids[i]);
            if (!t) {
                ms_error_set(err, "out of memory stopping process %d", (int)pid);
                goto fail;
            }
            added++;
            if (ptrace(PTRACE_SEIZE, t->tid, 0, 0) != 0) {
                int e = errno;
                if (e == ESRCH)
                    continue; /* exited meanwhile */
                pid_t tracer = tracer_of(pid, t->tid);
                if (tracer)
                    already_traced(pid, tracer, err);
                else if (e == EPERM)
                    ms_error_set(err, "not allowed to ptrace process %d: %s", (int)pid,
                                 remote_permission_hint_for(pid));
                else
                    ms_error_errno(err, e, "stopping thread %d of process %d", (int)t->tid,
                                   (int)pid);
                goto fail;
            }
            t->seized = 1;
            if (!ts->t_first)
                ts->t_first = now_ns();
            if (ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) != 0 && errno != ESRCH) {
                ms_error_errno(err, errno, "interrupting thread %d of process %d", (int)t->tid,
                               (int)pid);
                goto fail;
            }
        }
        for (int i = 0; i < ts->count; i++) {
            struct thread_stop_task *t = &ts->tasks[i];
            if (!t->seized || t->stopped)
                continue;
            int w = wait_stopped(t, deadline);
            if (w < 0) {
                ms_error_set(err, "thread %d of process %d did not stop within 2 s", (int)t->tid,
                             (int)pid);
                goto fail;
            }
            if (w == 0) {
                struct user_regs_struct regs;
                if (ptrace(PTRACE_GETREGS, t->tid, 0, &regs) == 0)
                    t->fs_base = regs.fs_base;
            }
        }
        free(tids);
        tids = NULL;
        n = list_tasks(pid, &tids);
        if (n < 0) {
            ms_error_set(err, "process %d exited", (int)pid);
            goto fail;
        }
    } while (added && ++rounds < 64);
    free(tids);
    int alive = 0;
    for (int i = 0; i < ts->count; i++)
        alive += ts->tasks[i].seized;
    if (!alive) {
        thread_stop_release(ts);
        return ms_error_set(err, "process %d exited", (int)pid);
    }
    return 0;
fail:
    free(tids);
    thread_stop_release(ts);
    return -1;
}

void thread_stop_release(struct thread_stop *ts)
{
    for (int i = 0; i < ts->count; i++) {
        struct thread_stop_task *t = &ts->tasks[i];
        if (!t->seized)
            continue;
        /* PTRACE_DETACH needs a stopped tracee; one interrupted but not yet waited for
         * (an error path) stops within microseconds. */
        if (!t->stopped)
            wait_stopped(t, now_ns() + 200000000LL);
        if (t->seized)
            ptrace(PTRACE_DETACH, t->tid, 0, (void *)(long)t->pending_sig);
        t->seized = 0;
    }
    if (ts->t_first)
        ts->stop_ns = now_ns() - ts->t_first;
    ts->t_first = 0;
    free(ts->tasks);
    ts->tasks = NULL;
    ts->count = ts->cap = 0;
}

pid_t thread_stop_tid_of(const struct thread_stop *ts, uint64_t pthread_id)
{
    for (int i = 0; i < ts->count; i++)
        if (ts->tasks[i].fs_base == pthread_id && pthread_id)
            return ts->tasks[i].tid;
    return 0;
}
