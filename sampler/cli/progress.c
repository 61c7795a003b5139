/*
 * progress.c - drawing the status line (see progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

void progress_init(struct progress *pr, int quiet)
{
    pr->enabled = !quiet && isatty(STDERR_FILENO);
    pr->shown = 0;
    pr->last_ns = 0;
}

void progress_format_bytes(char *out, size_t n, int64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)(bytes < 0 ? 0 : bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%.0f B", v);
    else
        snprintf(out, n, "%.1f %s", v, units[u]);
}

void progress_show(struct progress *pr, int64_t now_ns, const struct progress_status *st, size_t n)
{
    if (!pr->enabled || n == 0)
        return;
    if (pr->shown && now_ns - pr->last_ns < 1000000000ll / PROGRESS_PER_SECOND)
        return;
    pr->last_ns = now_ns;
    char line[512];
    size_t len = 0;
    char heap[32], rss[32], when[48];
    if (st[0].remaining_s >= 0)
        snprintf(when, sizeof when, "%.1f s, %.1f s left", st[0].elapsed_s, st[0].remaining_s);
    else
        snprintf(when, sizeof when, "%.1f s (Ctrl-C to stop)", st[0].elapsed_s);
    len += (size_t)snprintf(line, sizeof line, "recording %s", when);
    for (size_t i = 0; i < n && i < 3 && len < sizeof line; i++) {
        progress_format_bytes(heap, sizeof heap, st[i].heap);
        progress_format_bytes(rss, sizeof rss, st[i].rss);
        if (!st[i].recording)
            len +=
                (size_t)snprintf(line + len, sizeof line - len, " | pid %d: installing", st[i].pid);
        else
            len += (size_t)snprintf(line + len, sizeof line - len,
                                    " | pid %d: %llu events, heap %s, RSS %s", st[i].pid,
                                    (unsigned long long)st[i].events, heap, rss);
    }
    if (n > 3 && len < sizeof line)
        snprintf(line + len, sizeof line - len, " | +%zu more", n - 3);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    pr->shown = 1;
}

void progress_clear(struct progress *pr)
{
    if (!pr->shown)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    pr->shown = 0;
}
