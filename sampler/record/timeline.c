/*
 * timeline.c - RSS/heap sampling with bounded memory (see timeline.h).
 */
#include "timeline.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int timeline_open(struct timeline *tl, pid_t pid, ms_error *err)
{
    *tl = (struct timeline){.statm_fd = -1};
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    tl->statm_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (tl->statm_fd < 0)
        return ms_error_errno(err, errno, "opening %s", path);
    tl->page_bytes = sysconf(_SC_PAGESIZE);
    tl->interval_ns = TIMELINE_INTERVAL_NS;
    tl->points = malloc(TIMELINE_MAX_POINTS * sizeof *tl->points);
    if (!tl->points) {
        timeline_close(tl);
        return ms_error_errno(err, ENOMEM, "allocating the timeline");
    }
    return 0;
}

void timeline_close(struct timeline *tl)
{
    if (tl->statm_fd >= 0)
        close(tl->statm_fd);
    tl->statm_fd = -1;
    free(tl->points);
    tl->points = NULL;
    tl->n_points = 0;
    free(tl->mincore_vec);
    tl->mincore_vec = NULL;
    tl->excluded = NULL;
    tl->excluded_bytes = 0;
}

int timeline_exclude(struct timeline *tl, const void *map, size_t bytes, ms_error *err)
{
    free(tl->mincore_vec);
    tl->mincore_vec = NULL;
    tl->excluded = NULL;
    tl->excluded_bytes = 0;
    tl->excluded_rss = 0;
    if (!map || bytes == 0)
        return 0;
    size_t pages = (bytes + (size_t)tl->page_bytes - 1) / (size_t)tl->page_bytes;
    tl->mincore_vec = malloc(pages);
    if (!tl->mincore_vec)
        return ms_error_errno(err, ENOMEM, "preparing the RSS correction");
    tl->excluded = map;
    tl->excluded_bytes = bytes;
    return 0;
}

int64_t timeline_excluded_now(struct timeline *tl)
{
    if (!tl->excluded)
        return 0;
    size_t pages = (tl->excluded_bytes + (size_t)tl->page_bytes - 1) / (size_t)tl->page_bytes;
    if (mincore((void *)tl->excluded, tl->excluded_bytes, tl->mincore_vec) != 0)
        return 0;
    size_t resident = 0;
    for (size_t i = 0; i < pages; i++)
        resident += tl->mincore_vec[i] & 1;
    return (int64_t)resident * tl->page_bytes;
}

/* statm: "size resident shared text lib data dt", in pages. */
static int64_t statm_resident_pages(int fd)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return -1;
    if (size == 0) /* a zombie: the address space is gone */
        return -1;
    return (int64_t)resident;
}

int64_t timeline_rss_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int64_t pages = statm_resident_pages(fd);
    close(fd);
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

/* Halves the number of points, keeping each pair's maxima at the first one's time. */
static void timeline_decimate(struct timeline *tl)
{
    size_t out = 0;
    for (size_t i = 0; i < tl->n_points; i += 2, out++) {
        struct profile_point pt = tl->points[i];
        if (i + 1 < tl->n_points) {
            const struct profile_point *b = &tl->points[i + 1];
            if (b->rss > pt.rss)
                pt.rss = b->rss;
            if (b->heap > pt.heap)
                pt.heap = b->heap;
        }
        tl->points[out] = pt;
    }
    tl->n_points = out;
    tl->interval_ns *= 2;
}

int timeline_sample(struct timeline *tl, int64_t t_ns, int64_t heap, ms_error *err)
{
    int64_t pages = statm_resident_pages(tl->statm_fd);
    if (pages < 0)
        return ms_error_set(err, "the process has exited (its RSS can no longer be read)");
    /* The region's pages were read after the RSS: a page the hook touched in between is
     * subtracted without having been counted, so clamp at 0. */
    tl->excluded_rss = timeline_excluded_now(tl);
    tl->rss = pages * tl->page_bytes - tl->excluded_rss;
    if (tl->rss < 0)
        tl->rss = 0;
    if (tl->rss > tl->peak_rss) {
        tl->peak_rss = tl->rss;
        tl->peak_rss_ns = t_ns;
    }
    if (heap > tl->peak_heap) {
        tl->peak_heap = heap;
        tl->peak_heap_ns = t_ns;
    }
    /* Samples between kept points fold into the next one as maxima, so a short spike is
     * still drawn. */
    if (tl->rss > tl->pending_rss)
        tl->pending_rss = tl->rss;
    if (heap > tl->pending_heap)
        tl->pending_heap = heap;
    if (t_ns < tl->next_ns)
        return 0;
    if (tl->n_points == TIMELINE_MAX_POINTS)
        timeline_decimate(tl);
    tl->points[tl->n_points++] = (struct profile_point){t_ns, tl->pending_rss, tl->pending_heap};
    tl->pending_rss = tl->pending_heap = 0;
    tl->next_ns = t_ns + tl->interval_ns;
    return 0;
}

int timeline_to_profile(const struct timeline *tl, struct profile *p, ms_error *err)
{
    for (size_t i = 0; i < tl->n_points; i++)
        if (profile_add_point(p, tl->points[i].t_ns, tl->points[i].rss, tl->points[i].heap) < 0)
            return ms_error_errno(err, ENOMEM, "adding the timeline to the profile");
    return 0;
}
