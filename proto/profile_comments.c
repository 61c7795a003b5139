/*
 * profile_comments.c - memsnap's metadata and timeline written as, and read back from, pprof
 * comments ("memsnap.<key>=<value>", the list is in profile.h).
 *
 * They used to live in Profile fields 1000 and 1001, which readers that take every field
 * tag for one byte (npm's pprof-format) cannot skip: the whole file was then misread.
 * Comments are plain pprof, so every reader passes them through, and a human reading
 * `go tool pprof -comments` sees what the recording was. A comment is a file's string, so
 * what is parsed here is hostile text: numbers are checked digit by digit and against their
 * range, a timeline chunk is validated whole before any of it is kept, and nothing that
 * fails is an error: the comment is simply ignored.
 */
#include "profile_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timeline points per comment: ~60 bytes each, so a comment stays around 16 KB. */
#define POINTS_PER_COMMENT 256

/* Where a number key goes, and the smallest and largest value it may take. */
struct number_key {
    const char *name;
    size_t offset; /* of the int64_t in struct profile_meta */
    int64_t min, max;
};

static const struct number_key number_keys[] = {
    {"pid", offsetof(struct profile_meta, pid), 1, INT32_MAX},
    {"start_unix_ns", offsetof(struct profile_meta, start_unix_ns), 0, INT64_MAX},
    {"duration_ns", offsetof(struct profile_meta, duration_ns), 0, INT64_MAX},
    {"rate", offsetof(struct profile_meta, rate), 1, INT64_MAX},
    {"dropped_events", offsetof(struct profile_meta, dropped_events), 0, INT64_MAX},
    {"dropped_bytes", offsetof(struct profile_meta, dropped_bytes), 0, INT64_MAX},
    {"peak_rss", offsetof(struct profile_meta, peak_rss), 0, INT64_MAX},
    {"peak_heap", offsetof(struct profile_meta, peak_heap), 0, INT64_MAX},
    {"peak_time_ns", offsetof(struct profile_meta, peak_time_ns), 0, INT64_MAX},
    {"total_alloc_bytes", offsetof(struct profile_meta, total_alloc_bytes), 0, INT64_MAX},
    {"total_alloc_count", offsetof(struct profile_meta, total_alloc_count), 0, INT64_MAX},
};

struct string_key {
    const char *name;
    size_t offset; /* of the uint32_t string index in struct profile_meta */
};

static const struct string_key string_keys[] = {
    {"command", offsetof(struct profile_meta, command)},
    {"python_version", offsetof(struct profile_meta, python_version)},
    {"mode", offsetof(struct profile_meta, mode)},
};

#define N_NUMBER_KEYS (sizeof number_keys / sizeof number_keys[0])
#define N_STRING_KEYS (sizeof string_keys / sizeof string_keys[0])

/* --- writing --- */

static int texts_add(struct comment_texts *t, size_t *cap, char *text)
{
    if (!text || profile_array_reserve((void **)&t->texts, cap, t->n + 1, sizeof *t->texts)) {
        free(text);
        return -1;
    }
    t->texts[t->n++] = text;
    return 0;
}

static int meta_is_zero(const struct profile_meta *m)
{
    static const struct profile_meta zero;
    return memcmp(m, &zero, sizeof zero) == 0;
}

int comment_texts_format(const struct profile *p, struct comment_texts *out)
{
    *out = (struct comment_texts){0};
    size_t cap = 0;
    const struct profile_meta *m = &p->meta;
    if (!meta_is_zero(m)) {
        for (size_t i = 0; i < N_STRING_KEYS; i++) {
            uint32_t s = *(const uint32_t *)((const char *)m + string_keys[i].offset);
            if (s == 0 || s >= p->n_strings)
                continue;
            char *text = NULL;
            if (asprintf(&text, MEMSNAP_COMMENT_PREFIX "%s=%s", string_keys[i].name,
                         p->strings[s]) < 0)
                text = NULL;
            if (texts_add(out, &cap, text))
                goto nomem;
        }
        for (size_t i = 0; i < N_NUMBER_KEYS; i++) {
            int64_t v = *(const int64_t *)((const char *)m + number_keys[i].offset);
            /* Out-of-range values (a pid of 0, a negative count) are unknown: left out. */
            if (v < number_keys[i].min || v > number_keys[i].max)
                continue;
            char *text = NULL;
            if (asprintf(&text, MEMSNAP_COMMENT_PREFIX "%s=%" PRId64, number_keys[i].name, v) < 0)
                text = NULL;
            if (texts_add(out, &cap, text))
                goto nomem;
        }
    }
    for (size_t i = 0; i < p->n_processes; i++) {
        const struct profile_process *q = &p->processes[i];
        if (q->pid < 1 || q->pid > INT32_MAX)
            continue;
        const char *command = q->command < p->n_strings ? p->strings[q->command] : "";
        char *text = NULL;
        if (asprintf(&text,
                     MEMSNAP_COMMENT_PREFIX "process=%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64
                                            ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%d,%d,%s",
                     q->pid, q->start_unix_ns < 0 ? 0 : q->start_unix_ns,
                     q->duration_ns < 0 ? 0 : q->duration_ns, q->peak_rss < 0 ? 0 : q->peak_rss,
                     q->peak_heap < 0 ? 0 : q->peak_heap,
                     q->total_alloc_bytes < 0 ? 0 : q->total_alloc_bytes,
                     q->total_alloc_count < 0 ? 0 : q->total_alloc_count, q->exited ? 1 : 0,
                     q->signal > 0 && q->signal < 128 ? (int)q->signal : 0, command) < 0)
            text = NULL;
        if (texts_add(out, &cap, text))
            goto nomem;
    }
    for (size_t at = 0; at < p->n_timeline; at += POINTS_PER_COMMENT) {
        size_t n =
            p->n_timeline - at < POINTS_PER_COMMENT ? p->n_timeline - at : POINTS_PER_COMMENT;
        /* 3 numbers of at most 20 characters and 3 separators per point. */
        size_t size = sizeof MEMSNAP_COMMENT_PREFIX "timeline=" + n * 63;
        char *text = malloc(size);
        if (!text)
            goto nomem;
        size_t len = (size_t)snprintf(text, size, MEMSNAP_COMMENT_PREFIX "timeline=");
        for (size_t i = 0; i < n; i++) {
            const struct profile_point *pt = &p->timeline[at + i];
            len += (size_t)snprintf(text + len, size - len, "%s%" PRId64 ",%" PRId64 ",%" PRId64,
                                    i ? ";" : "", pt->t_ns, pt->rss, pt->heap);
        }
        if (texts_add(out, &cap, text))
            goto nomem;
    }
    return 0;
nomem:
    comment_texts_free(out);
    errno = ENOMEM;
    return -1;
}

void comment_texts_free(struct comment_texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->texts[i]);
    free(t->texts);
    *t = (struct comment_texts){0};
}

/* --- reading --- */

/* Parses a decimal in [min, max] at *s (digits only, at most 19), advancing *s past it. */
static int number_parse(const char **s, int64_t min, int64_t max, int64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 19)
            return -1;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (digits == 0 || v > (uint64_t)INT64_MAX || (int64_t)v < min || (int64_t)v > max)
        return -1;
    *s = p;
    *out = (int64_t)v;
    return 0;
}

/* The index of an entry equal to value, else a new entry pointing at value itself, else
 * PROFILE_NO_INDEX when no room is left. */
static uint32_t string_resolve(struct profile *p, const char *value, size_t *string_room)
{
    if (!*value)
        return 0;
    for (size_t i = 1; i < p->n_strings; i++)
        if (strcmp(p->strings[i], value) == 0)
            return (uint32_t)i;
    if (!*string_room)
        return PROFILE_NO_INDEX;
    (*string_room)--;
    p->strings[p->n_strings] = (char *)value;
    return (uint32_t)p->n_strings++;
}

/* A timeline chunk: every point is checked, and must follow the points already kept in
 * time, before any is appended. */
static int timeline_parse(struct profile *p, const char *s, size_t *cap_timeline)
{
    size_t n = 1;
    for (const char *c = s; *c; c++)
        n += *c == ';';
    if (n > PROFILE_MAX_TIMELINE_POINTS - p->n_timeline)
        return 0;
    if (profile_array_reserve((void **)&p->timeline, cap_timeline, p->n_timeline + n,
                              sizeof *p->timeline))
        return -1;
    int64_t last = p->n_timeline ? p->timeline[p->n_timeline - 1].t_ns : 0;
    struct profile_point *pts = p->timeline + p->n_timeline;
    for (size_t i = 0; i < n; i++) {
        if (number_parse(&s, 0, INT64_MAX, &pts[i].t_ns) || *s++ != ',' ||
            number_parse(&s, 0, INT64_MAX, &pts[i].rss) || *s++ != ',' ||
            number_parse(&s, 0, INT64_MAX, &pts[i].heap) || *s != (i + 1 < n ? ';' : '\0'))
            return 0;
        s++;
        if (pts[i].t_ns < last)
            return 0;
        last = pts[i].t_ns;
    }
    p->n_timeline += n;
    return 0;
}

/* One process entry, checked whole before it is kept; the command (the rest of the text) is
 * a string of its own, pointing into the comment. */
static int process_parse(struct profile *p, const char *s, size_t *string_room,
                         size_t *cap_processes)
{
    struct profile_process q = {0};
    int64_t *fields[] = {&q.pid,       &q.start_unix_ns,     &q.duration_ns,       &q.peak_rss,
                         &q.peak_heap, &q.total_alloc_bytes, &q.total_alloc_count, &q.exited,
                         &q.signal};
    static const int64_t max[] = {INT32_MAX, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX,
                                  INT64_MAX, INT64_MAX, 1,         127};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (number_parse(&s, i == 0 ? 1 : 0, max[i], fields[i]) || *s++ != ',')
            return 0;
    size_t at = p->n_processes;
    for (size_t i = 0; i < p->n_processes; i++)
        if (p->processes[i].pid == q.pid)
            at = i;
    if (at == p->n_processes && p->n_processes >= PROFILE_MAX_PROCESSES)
        return 0;
    q.command = string_resolve(p, s, string_room);
    if (q.command == PROFILE_NO_INDEX)
        return 0;
    if (at == p->n_processes) {
        if (profile_array_reserve((void **)&p->processes, cap_processes, p->n_processes + 1,
                                  sizeof *p->processes))
            return -1;
        p->n_processes++;
    }
    p->processes[at] = q;
    return 0;
}

int comment_parse(struct profile *p, const char *text, size_t *string_room, size_t *cap_timeline,
                  size_t *cap_processes)
{
    if (strncmp(text, MEMSNAP_COMMENT_PREFIX, strlen(MEMSNAP_COMMENT_PREFIX)) != 0)
        return 0;
    const char *key = text + strlen(MEMSNAP_COMMENT_PREFIX);
    const char *eq = strchr(key, '=');
    if (!eq)
        return 0;
    size_t key_len = (size_t)(eq - key);
    const char *value = eq + 1;
    if (key_len == 8 && strncmp(key, "timeline", 8) == 0)
        return timeline_parse(p, value, cap_timeline);
    if (key_len == 7 && strncmp(key, "process", 7) == 0)
        return process_parse(p, value, string_room, cap_processes);
    for (size_t i = 0; i < N_NUMBER_KEYS; i++) {
        const struct number_key *k = &number_keys[i];
        if (strlen(k->name) != key_len || strncmp(key, k->name, key_len) != 0)
            continue;
        int64_t v;
        const char *s = value;
        if (number_parse(&s, k->min, k->max, &v) == 0 && *s == '\0')
            *(int64_t *)((char *)&p->meta + k->offset) = v;
        return 0;
    }
    for (size_t i = 0; i < N_STRING_KEYS; i++) {
        const struct string_key *k = &string_keys[i];
        if (strlen(k->name) != key_len || strncmp(key, k->name, key_len) != 0)
            continue;
        uint32_t s = string_resolve(p, value, string_room);
        if (s != PROFILE_NO_INDEX)
            *(uint32_t *)((char *)&p->meta + k->offset) = s;
        return 0;
    }
    return 0; /* a key of a later memsnap, or garbage: ignored */
}
