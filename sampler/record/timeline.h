/*
 * timeline.h - the memory-over-time chart of a recording: the target's RSS and the Python
 * heap, sampled at a fixed interval, plus their exact peaks.
 *
 * RSS comes from /proc/PID/statm (resident pages; the same number as VmRSS), read through a
 * descriptor opened once, which costs one small read per sample. The heap is whatever the
 * caller measures (the collector's unbiased live bytes, exact at rate 1).
 *
 * The hook's shared region (header + ring, up to 128 MiB in `memsnap run`'s exact mode) is
 * mapped in the target, and the pages the hook has written count in its RSS although they are
 * memsnap's, not the program's. timeline_exclude() names memsnap's own mapping of that memfd:
 * its resident pages (mincore) are the ones the target's mapping holds too, and each sample
 * subtracts them, so RSS and peak RSS describe the program alone.
 *
 * Points are kept at most every TIMELINE_INTERVAL_NS, each carrying the maxima of the samples
 * since the previous one. So that an hour-long recording stays
 * small, the buffer holds at most TIMELINE_MAX_POINTS: when it fills, neighbouring points are
 * merged pairwise (keeping the larger RSS and heap, so spikes survive) and the interval
 * doubles. Peaks are tracked on every sample, not only on kept points.
 */
#ifndef MEMSNAP_TIMELINE_H
#define MEMSNAP_TIMELINE_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "profile.h"

#define TIMELINE_INTERVAL_NS 10000000ll /* 10 ms */
#define TIMELINE_MAX_POINTS  4096

struct timeline {
    int statm_fd;
    long page_bytes;
    int64_t interval_ns; /* current spacing of kept points */
    int64_t next_ns;     /* time of the next kept point */
    struct profile_point *points;
    size_t n_points;
    int64_t rss;                       /* latest sample */
    int64_t pending_rss, pending_heap; /* maxima since the last kept point */
    int64_t peak_rss, peak_rss_ns;
    int64_t peak_heap, peak_heap_ns;
    const void *excluded; /* memsnap's mapping of the hook's region, or NULL */
    size_t excluded_bytes;
    unsigned char *mincore_vec; /* one byte per page of the excluded region */
    int64_t excluded_rss;       /* resident bytes of the region at the latest sample */
};

/* Opens /proc/PID/statm. -1 with err when the process does not exist or is unreadable. */
int timeline_open(struct timeline *tl, pid_t pid, ms_error *err);

/* Reads the RSS now (t_ns since the start of recording) and records `heap` beside it.
 * Returns 0, or -1 with err when RSS cannot be read (the process has exited). */
int timeline_sample(struct timeline *tl, int64_t t_ns, int64_t heap, ms_error *err);

/* From now on, subtract the resident pages of [map, map + bytes) (page-aligned, memsnap's own
 * mapping of memory the target maps too) from every RSS sample; NULL stops it (call before
 * unmapping). Returns 0, or -1 with err on ENOMEM. */
int timeline_exclude(struct timeline *tl, const void *map, size_t bytes, ms_error *err);

/* Resident bytes of the excluded region now (0 when none). */
int64_t timeline_excluded_now(struct timeline *tl);

/* Appends the kept points to the profile's timeline. -1 on ENOMEM. */
int timeline_to_profile(const struct timeline *tl, struct profile *p, ms_error *err);

void timeline_close(struct timeline *tl);

/* Resident bytes of pid now, from /proc/PID/statm; -1 on failure (tests, benchmarks). */
int64_t timeline_rss_of(pid_t pid);

#endif
