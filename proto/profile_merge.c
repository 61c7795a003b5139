/*
 * profile_merge.c - one profile of several processes (see profile_merge in profile.h).
 *
 * A service is many processes: `attach --children` and `run --follow-fork` record each in its
 * own session and merge the results here, so that render and stats see one tree whose samples
 * carry a "pid" label. Frames are re-interned, so the same function in two workers is one
 * node of the flame graph. What stays per process travels in process entries (memsnap.process
 * comments): command, recorded time, peaks, totals, how it ended.
 *
 * The timelines are step functions (each point holds until the next); the merged one is their
 * sum in absolute time, a process contributing nothing before its first point or after its
 * last, thinned to PROFILE_MERGED_POINTS by keeping each bucket's largest values.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile_internal.h"

static const char *str_of(const struct profile *p, uint32_t i)
{
    return i < p->n_strings ? p->strings[i] : "";
}

/* dst's index of each of src's sample types, or -1 with err. dst without types takes src's. */
static int types_map(struct profile *dst, const struct profile *src, size_t *map, ms_error *err)
{
    int adopt = dst->n_sample_types == 0;
    for (size_t i = 0; i < src->n_sample_types; i++) {
        const char *type = str_of(src, src->sample_types[i].type);
        int at = profile_find_sample_type(dst, type);
        if (at < 0 && (dst->n_samples || !adopt))
            return ms_error_set(err,
                                "cannot merge: the profile of process %lld has sample type "
                                "'%s', which the others lack",
                                (long long)src->meta.pid, type);
        if (at < 0) {
            uint32_t t = profile_add_sample_type(dst, type, str_of(src, src->sample_types[i].unit));
            if (t == PROFILE_NO_INDEX)
                return ms_error_errno(err, errno, "merging profiles");
            at = (int)t;
        }
        map[i] = (size_t)at;
    }
    if (adopt) {
        int def = (size_t)src->default_sample_type < src->n_sample_types
                      ? (int)map[src->default_sample_type]
                      : -1;
        if (def >= 0)
            dst->default_sample_type = (size_t)def;
        dst->period_type.type = profile_intern(dst, str_of(src, src->period_type.type));
        dst->period_type.unit = profile_intern(dst, str_of(src, src->period_type.unit));
        if (dst->period_type.type == PROFILE_NO_INDEX || dst->period_type.unit == PROFILE_NO_INDEX)
            return ms_error_errno(err, ENOMEM, "merging profiles");
        dst->period = src->period;
    }
    return 0;
}

/* dst's location for each of src's, built lazily. */
static uint32_t location_map(struct profile *dst, const struct profile *src, uint32_t *cache,
                             uint32_t loc)
{
    if (cache[loc] != PROFILE_NO_INDEX)
        return cache[loc];
    const struct profile_location *l = &src->locations[loc];
    struct profile_line lines[64];
    uint32_t n = l->n_lines < 64 ? l->n_lines : 64;
    /* Keep the caller end (the last lines) when a location has more than 64 inlined lines. */
    const struct profile_line *from = src->lines + l->first_line + (l->n_lines - n);
    for (uint32_t k = 0; k < n; k++) {
        const struct profile_function *f = &src->functions[from[k].function];
        uint32_t fn = profile_add_function(dst, str_of(src, f->name), str_of(src, f->filename),
                                           f->start_line);
        if (fn == PROFILE_NO_INDEX)
            return PROFILE_NO_INDEX;
        lines[k] = (struct profile_line){.function = fn, .line = from[k].line};
    }
    cache[loc] = profile_add_location(dst, lines, n);
    return cache[loc];
}

/* The value of a step timeline at absolute time t (0 outside its points). */
struct step {
    const struct profile_point *pts;
    size_t n, at;
    int64_t base; /* absolute time of t_ns 0 */
};

static void step_value(struct step *s, int64_t t, int64_t *rss, int64_t *heap)
{
    while (s->at < s->n && s->base + s->pts[s->at].t_ns <= t)
        s->at++;
    if (s->at == 0 || s->base + s->pts[s->n - 1].t_ns < t) {
        *rss = *heap = 0;
        return;
    }
    *rss = s->pts[s->at - 1].rss;
    *heap = s->pts[s->at - 1].heap;
}

/* dst's timeline (from dst_start) plus src's (from src_start), as a new array from start. */
static int timeline_sum(struct profile *dst, int64_t dst_start, const struct profile *src,
                        int64_t src_start, int64_t start)
{
    size_t n = dst->n_timeline + src->n_timeline;
    if (n == 0)
        return 0;
    struct profile_point *out = malloc(n * sizeof *out);
    if (!out)
        return -1;
    struct step a = {dst->timeline, dst->n_timeline, 0, dst_start};
    struct step b = {src->timeline, src->n_timeline, 0, src_start};
    size_t i = 0, j = 0, k = 0;
    while (i < a.n || j < b.n) {
        int64_t ta = i < a.n ? dst_start + a.pts[i].t_ns : INT64_MAX;
        int64_t tb = j < b.n ? src_start + b.pts[j].t_ns : INT64_MAX;
        int64_t t = ta < tb ? ta : tb;
        i += ta == t;
        j += tb == t;
        int64_t r1, h1, r2, h2;
        step_value(&a, t, &r1, &h1);
        step_value(&b, t, &r2, &h2);
        out[k++] = (struct profile_point){.t_ns = t - start, .rss = r1 + r2, .heap = h1 + h2};
    }
    /* Thin: each bucket of equal time keeps its first time and its largest values. */
    if (k > PROFILE_MERGED_POINTS) {
        int64_t span = out[k - 1].t_ns - out[0].t_ns + 1;
        size_t m = 0;
        int64_t bucket = -1;
        for (size_t x = 0; x < k; x++) {
            int64_t bk = (int64_t)((double)(out[x].t_ns - out[0].t_ns) / (double)span *
                                   PROFILE_MERGED_POINTS);
            if (bk != bucket) {
                out[m++] = out[x];
                bucket = bk;
            } else {
                if (out[x].rss > out[m - 1].rss)
                    out[m - 1].rss = out[x].rss;
                if (out[x].heap > out[m - 1].heap)
                    out[m - 1].heap = out[x].heap;
            }
        }
        k = m;
    }
    free(dst->timeline);
    dst->timeline = out;
    dst->n_timeline = k;
    if (dst->intern)
        dst->intern->cap_timeline = n;
    return 0;
}

/* The comment of a process's note, as "memsnap-note: process N: ..." */
static int comment_copy(struct profile *dst, const char *text, int64_t pid)
{
    static const char note[] = "memsnap-note: ";
    if (strncmp(text, note, sizeof note - 1) != 0 || strstr(text, "process "))
        return profile_add_comment(dst, text);
    char *t = NULL;
    if (asprintf(&t, "%sprocess %lld: %s", note, (long long)pid, text + sizeof note - 1) < 0)
        return -1;
    int rc = profile_add_comment(dst, t);
    free(t);
    return rc;
}

/* The process entry a one-process profile stands for. */
static struct profile_process process_of(const struct profile *src)
{
    const struct profile_meta *m = &src->meta;
    return (struct profile_process){.pid = m->pid,
                                    .start_unix_ns = m->start_unix_ns,
                                    .duration_ns = m->duration_ns,
                                    .peak_rss = m->peak_rss,
                                    .peak_heap = m->peak_heap,
                                    .total_alloc_bytes = m->total_alloc_bytes,
                                    .total_alloc_count = m->total_alloc_count};
}

int profile_merge(struct profile *dst, const struct profile *src, ms_error *err)
{
    if (!dst || !src)
        return ms_error_set(err, "cannot merge: no profile");
    int first = dst->n_sample_types == 0 && dst->n_samples == 0 && dst->n_processes == 0 &&
                dst->meta.pid == 0;
    size_t *map = calloc(src->n_sample_types + 1, sizeof *map);
    uint32_t *cache = malloc((src->n_locations + 1) * sizeof *cache);
    uint32_t *locs = malloc(PROFILE_MAX_STACK_DEPTH * sizeof *locs);
    int64_t *vals = calloc(dst->n_sample_types + src->n_sample_types + 1, sizeof *vals);
    int rc = -1;
    if (!map || !cache || !locs || !vals) {
        ms_error_errno(err, ENOMEM, "merging profiles");
        goto out;
    }
    if (types_map(dst, src, map, err) < 0)
        goto out;
    memset(cache, 0xff, (src->n_locations + 1) * sizeof *cache);

    size_t nt = dst->n_sample_types;
    for (size_t i = 0; i < src->n_samples; i++) {
        const struct profile_sample *s = &src->samples[i];
        for (uint32_t k = 0; k < s->n_locs; k++) {
            locs[k] = location_map(dst, src, cache, src->stack_locs[s->first_loc + k]);
            if (locs[k] == PROFILE_NO_INDEX) {
                ms_error_errno(err, ENOMEM, "merging profiles");
                goto out;
            }
        }
        memset(vals, 0, nt * sizeof *vals);
        for (size_t t = 0; t < src->n_sample_types; t++)
            vals[map[t]] = src->values[i * src->n_sample_types + t];
        uint32_t thread = s->thread ? profile_intern(dst, str_of(src, s->thread)) : 0;
        if (thread == PROFILE_NO_INDEX ||
            profile_add_sample(dst, locs, s->n_locs, vals, thread, s->block_bytes) < 0) {
            ms_error_errno(err, errno ? errno : ENOMEM, "merging profiles");
            goto out;
        }
        int64_t pid = s->pid ? s->pid : src->meta.pid;
        dst->samples[dst->n_samples - 1].pid = pid > 0 && pid <= INT32_MAX ? pid : 0;
    }

    for (size_t i = 0; i < src->n_comments; i++)
        if (comment_copy(dst, str_of(src, src->comments[i]), src->meta.pid) < 0) {
            ms_error_errno(err, errno, "merging profiles");
            goto out;
        }

    /* Processes: src's own entries, else the one its meta describes. */
    const struct profile_meta *sm = &src->meta;
    if (src->n_processes) {
        for (size_t i = 0; i < src->n_processes; i++)
            if (profile_add_process(dst, &src->processes[i],
                                    str_of(src, src->processes[i].command)) < 0 &&
                errno != ENOSPC) {
                ms_error_errno(err, errno, "merging profiles");
                goto out;
            }
    } else if (sm->pid > 0) {
        struct profile_process q = process_of(src);
        if (profile_add_process(dst, &q, str_of(src, sm->command)) < 0 && errno != ENOSPC) {
            ms_error_errno(err, errno, "merging profiles");
            goto out;
        }
    }

    /* Meta and timeline: both spans, summed. */
    struct profile_meta *dm = &dst->meta;
    if (first) {
        int64_t start = sm->start_unix_ns;
        if (timeline_sum(dst, start, src, start, start) < 0) {
            ms_error_errno(err, ENOMEM, "merging profiles");
            goto out;
        }
        dm->pid = sm->pid;
        dm->command = profile_intern(dst, str_of(src, sm->command));
        dm->python_version = profile_intern(dst, str_of(src, sm->python_version));
        dm->mode = profile_intern(dst, str_of(src, sm->mode));
        if (dm->command == PROFILE_NO_INDEX || dm->python_version == PROFILE_NO_INDEX ||
            dm->mode == PROFILE_NO_INDEX) {
            ms_error_errno(err, ENOMEM, "merging profiles");
            goto out;
        }
        dm->start_unix_ns = sm->start_unix_ns;
        dm->duration_ns = sm->duration_ns;
        dm->rate = sm->rate;
        dm->dropped_events = sm->dropped_events;
        dm->dropped_bytes = sm->dropped_bytes;
        dm->peak_rss = sm->peak_rss;
        dm->peak_heap = sm->peak_heap;
        dm->peak_time_ns = sm->peak_time_ns;
        dm->total_alloc_bytes = sm->total_alloc_bytes;
        dm->total_alloc_count = sm->total_alloc_count;
        dst->time_nanos = src->time_nanos;
        dst->duration_nanos = src->duration_nanos;
    } else {
        int64_t start =
            dm->start_unix_ns < sm->start_unix_ns ? dm->start_unix_ns : sm->start_unix_ns;
        int64_t end_d = dm->start_unix_ns + dm->duration_ns;
        int64_t end_s = sm->start_unix_ns + sm->duration_ns;
        if (timeline_sum(dst, dm->start_unix_ns, src, sm->start_unix_ns, start) < 0) {
            ms_error_errno(err, ENOMEM, "merging profiles");
            goto out;
        }
        dm->start_unix_ns = start;
        dm->duration_ns = (end_d > end_s ? end_d : end_s) - start;
        dm->dropped_events += sm->dropped_events;
        dm->dropped_bytes += sm->dropped_bytes;
        dm->total_alloc_bytes += sm->total_alloc_bytes;
        dm->total_alloc_count += sm->total_alloc_count;
        int64_t peak_rss = 0, peak_heap = 0, peak_t = 0;
        for (size_t i = 0; i < dst->n_timeline; i++) {
            if (dst->timeline[i].rss > peak_rss)
                peak_rss = dst->timeline[i].rss;
            if (dst->timeline[i].heap > peak_heap)
                peak_heap = dst->timeline[i].heap, peak_t = dst->timeline[i].t_ns;
        }
        /* A process's own peak (VmHWM) may exceed what the sampled sum shows. */
        for (size_t i = 0; i < dst->n_processes; i++) {
            if (dst->processes[i].peak_rss > peak_rss)
                peak_rss = dst->processes[i].peak_rss;
            if (dst->processes[i].peak_heap > peak_heap)
                peak_heap = dst->processes[i].peak_heap;
        }
        dm->peak_rss = peak_rss;
        dm->peak_heap = peak_heap;
        dm->peak_time_ns = peak_t;
        dst->time_nanos = start;
        dst->duration_nanos = dm->duration_ns;
        if (sm->rate != dm->rate)
            dm->rate = dm->rate < sm->rate ? dm->rate : sm->rate;
    }
    rc = 0;
out:
    free(map);
    free(cache);
    free(locs);
    free(vals);
    return rc;
}
