/*
 * proc_tasks.c - per-thread state and name from /proc (see proc_tasks.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc_tasks.h"

/* Reads a small /proc file into buf (NUL-terminated); -1 when it cannot be opened. */
static int read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

int proc_tasks_read(pid_t pid, struct proc_task **out)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    *out = NULL;
    if (!d)
        return -1;
    int n = 0, cap = 16;
    struct proc_task *v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long tid = strtol(e->d_name, NULL, 10);
        if (tid <= 0 || tid > 0x7fffffff)
            continue;
        char buf[512];
        snprintf(path, sizeof path, "/proc/%d/task/%ld/stat", (int)pid, tid);
        if (read_small(path, buf, sizeof buf) < 0)
            continue;                 /* exited meanwhile */
        char *rp = strrchr(buf, ')'); /* comm may contain anything, even ')' */
        if (!rp || rp[1] != ' ' || !rp[2])
            continue;
        if (n == cap) {
            struct proc_task *w = realloc(v, (size_t)cap * 2 * sizeof *v);
            if (!w)
                break;
            v = w;
            cap *= 2;
        }
        struct proc_task *t = &v[n++];
        t->tid = (pid_t)tid;
        t->state = rp[2];
        t->name[0] = '\0';
        snprintf(path, sizeof path, "/proc/%d/task/%ld/comm", (int)pid, tid);
        if (read_small(path, buf, sizeof t->name) == 0) {
            buf[strcspn(buf, "\n")] = '\0';
            memcpy(t->name, buf, strlen(buf) + 1);
        }
    }
    closedir(d);
    if (!v)
        return -1;
    *out = v;
    return n;
}

const struct proc_task *proc_tasks_find(const struct proc_task *tasks, int n, pid_t tid)
{
    for (int i = 0; i < n; i++)
        if (tasks[i].tid == tid)
            return &tasks[i];
    return NULL;
}

const char *proc_task_activity(char state)
{
    switch (state) {
    case 'R':
        return "running";
    case 'S':
    case 'D':
    case 'I':
        return "idle";
    case 'T':
    case 't':
        return "stopped";
    default:
        return "unknown";
    }
}
