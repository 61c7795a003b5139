/*
 * cmd_dump.c - `memsnap dump <pid> [--json] [--stats]`: every Python thread's stack, read from
 * memory only (no injection).
 *
 * Text output, one block per thread, oldest (main) thread first, frames innermost first:
 *
 *     Thread 4242 "python3" (main) (holds the GIL): running
 *         handle_request (/srv/app/views.py:88)
 *     Thread 4250 "uploader": idle
 *         ...
 *
 * The thread is named by its kernel tid when known, else by its pthread_t in hex; then the
 * kernel's name for it (comm: what prctl/pthread_setname_np or /proc/self/task/TID/comm set,
 * else the program's name; bytes outside printable ASCII shown as '?'), and what it is
 * doing, from the kernel's scheduler state read just before the walk (proc_tasks.h):
 * "running" (on a CPU or runnable), "idle" (waiting: a lock, I/O, a sleep), "stopped", or
 * "unknown" when the tid is not known. --json prints the same as one array of objects
 * ("name", "state"). --stats adds one line to stderr with the walk's
 * cost (wall time, how long the threads were stopped, attempts), which the benchmark reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "proc_tasks.h"
#include "pycode.h"
#include "pyruntime.h"
#include "pythreads.h"

static const char dump_usage[] = "usage: memsnap dump <pid> [--json] [--stats]\n"
                                 "  print every thread's Python stack (reads memory only)\n"
                                 "  --json   one JSON array of threads instead of text\n"
                                 "  --stats  report on stderr how long the process was stopped\n";

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Writes s as a JSON string; s is valid UTF-8 (pystr_to_utf8 guarantees it). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void print_json(FILE *f, const struct pythreads *ts, const struct proc_task *tasks,
                       int n_tasks)
{
    fputs("[", f);
    for (int i = 0; i < ts->count; i++) {
        const struct pythread *t = &ts->threads[i];
        char name[17];
        const char *activity = dump_thread_info(t, tasks, n_tasks, name);
        fprintf(
            f,
            "%s\n  {\"tid\": %d, \"pthread_id\": \"0x%llx\", \"name\": \"%s\", \"state\": \"%s\", "
            "\"main\": %s, \"holds_gil\": %s, \"truncated\": %s, \"frames\": [",
            i ? "," : "", (int)t->native_tid, (unsigned long long)t->pthread_id, name, activity,
            t->is_main ? "true" : "false", t->holds_gil ? "true" : "false",
            t->truncated ? "true" : "false");
        for (int k = 0; k < t->nframes; k++) {
            const struct pyframe *fr = &t->frames[k];
            fputs(k ? ",\n    " : "\n    ", f);
            fputs("{\"function\":", f);
            json_string(f, fr->code ? fr->code->name : "<unreadable>");
            fputs(",\"file\":", f);
            json_string(f, fr->code ? fr->code->filename : "");
            fprintf(f, ",\"line\":%d}", fr->line);
        }
        fputs(t->nframes ? "]}" : "]}", f);
    }
    fputs(ts->count ? "\n]\n" : "]\n", f);
}

/* A pid argument: decimal digits only, 1 .. INT_MAX. */
static int parse_pid(const char *s, pid_t *out)
{
    if (!*s)
        return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 0x7fffffff)
            return -1;
    }
    if (v <= 0)
        return -1;
    *out = (pid_t)v;
    return 0;
}

int cmd_dump(int argc, char **argv)
{
    int json = 0, stats = 0;
    const char *pid_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(dump_usage, stdout);
            return MS_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "memsnap: dump: unknown option '%s'\n%s", argv[i], dump_usage);
            return MS_EXIT_USAGE;
        } else if (pid_arg) {
            fprintf(stderr, "memsnap: dump takes one pid\n%s", dump_usage);
            return MS_EXIT_USAGE;
        } else {
            pid_arg = argv[i];
        }
    }
    pid_t pid;
    if (!pid_arg) {
        fputs(dump_usage, stderr);
        return MS_EXIT_USAGE;
    }
    if (parse_pid(pid_arg, &pid)) {
        fprintf(stderr, "memsnap: dump: '%s' is not a process id\n", pid_arg);
        return MS_EXIT_USAGE;
    }

    long long t0 = now_ns();
    ms_error err;
    struct pyruntime rt;
    if (pyruntime_locate(pid, &rt, &err)) {
        ms_report(err.msg);
        return MS_EXIT_FAIL;
    }
    struct pycode_cache *cc = pycode_cache_new(&rt);
    if (!cc) {
        ms_report("out of memory");
        return MS_EXIT_FAIL;
    }
    /* The kernel's states before the walk, which may stop the threads (3.8-3.10). */
    struct proc_task *tasks = NULL;
    int n_tasks = proc_tasks_read(pid, &tasks);
    struct pythreads ts;
    int rc = pythreads_snapshot(&rt, cc, &ts, &err);
    long long t1 = now_ns();
    if (rc) {
        ms_error_prefix(&err, "dump %d", (int)pid);
        ms_report(err.msg);
        pycode_cache_free(cc);
        free(tasks);
        return MS_EXIT_FAIL;
    }
    if (json)
        print_json(stdout, &ts, tasks, n_tasks);
    else
        dump_print_text(stdout, &ts, tasks, n_tasks);
    free(tasks);
    if (stats)
        fprintf(stderr,
                "memsnap: dump stats: python %d.%d.%d, %d threads, wall %.3f ms, stopped %.3f ms "
                "(%s), %d attempt(s)\n",
                rt.major, rt.minor, rt.micro, ts.count, (double)(t1 - t0) / 1e6,
                (double)ts.stop_ns / 1e6, ts.stopped ? "threads stopped" : "read live",
                ts.attempts);
    pythreads_free(&ts);
    pycode_cache_free(cc);
    if (fflush(stdout) != 0) {
        ms_report("dump: writing the output failed");
        return MS_EXIT_FAIL;
    }
    return MS_EXIT_OK;
}
