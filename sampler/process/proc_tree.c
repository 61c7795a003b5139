/*
 * proc_tree.c - a process's descendants (see proc_tree.h).
 *
 * /proc lists thread-group leaders only (tasks live under /proc/N/task), so each entry is a
 * process. The fourth field of /proc/N/stat is its parent; the command name before it is in
 * parentheses and may itself contain spaces and ')', so the fields are read after the LAST
 * ')'. The tree is built from one pass over /proc and walked breadth-first from root.
 */
#include "proc_tree.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pid_t proc_tree_parent(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ' || !rp[2] || rp[3] != ' ')
        return 0;
    long ppid = strtol(rp + 4, NULL, 10);
    return ppid > 0 && ppid <= 4194304 ? (pid_t)ppid : 0;
}

struct link {
    pid_t pid, ppid;
};

static int by_ppid(const void *a, const void *b)
{
    const struct link *x = a, *y = b;
    return x->ppid < y->ppid ? -1 : x->ppid > y->ppid;
}

/* The first link whose ppid is p in the sorted array, or n. */
static size_t first_child(const struct link *l, size_t n, pid_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l[mid].ppid < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int proc_tree_descendants(pid_t root, pid_t *out, size_t cap, ms_error *err)
{
    DIR *d = opendir("/proc");
    if (!d)
        return ms_error_errno(err, errno, "cannot list /proc");
    struct link *links = NULL;
    size_t n = 0, room = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0 || pid > 4194304)
            continue;
        pid_t ppid = proc_tree_parent((pid_t)pid);
        if (!ppid)
            continue;
        if (n == room) {
            size_t r = room ? room * 2 : 256;
            struct link *l = realloc(links, r * sizeof *l);
            if (!l) {
                free(links);
                closedir(d);
                return ms_error_errno(err, ENOMEM, "listing processes");
            }
            links = l, room = r;
        }
        links[n++] = (struct link){(pid_t)pid, ppid};
    }
    closedir(d);
    qsort(links, n, sizeof *links, by_ppid);

    /* Breadth-first; the queue is the output itself plus a private overflow past cap. A
     * pid is its parent's child once, and parent links cannot cycle (a parent is older),
     * but a reused pid read mid-scan could: the walk is bounded by n. */
    pid_t *queue = malloc((n + 1) * sizeof *queue);
    if (!queue) {
        free(links);
        return ms_error_errno(err, ENOMEM, "listing processes");
    }
    size_t head = 0, tail = 0;
    queue[tail++] = root;
    while (head < tail) {
        pid_t p = queue[head++];
        for (size_t i = first_child(links, n, p); i < n && links[i].ppid == p && tail <= n; i++)
            if (links[i].pid != root)
                queue[tail++] = links[i].pid;
    }
    size_t count = tail - 1;
    for (size_t i = 0; i < count && i < cap; i++)
        out[i] = queue[i + 1];
    free(queue);
    free(links);
    return (int)count;
}
