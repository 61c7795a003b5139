/*
 * profile_write.c - writing a profile as a pprof file, atomically, in one streaming pass.
 *
 * A profile of a million samples would cost a million protobuf-c message structs (and twice
 * the file's size in memory) if it were converted to one Memsnap__Pprof__Profile and packed
 * whole. Protobuf messages concatenate, so instead every element of a repeated field
 * (a sample, a location, a function) is packed by protobuf-c on its own, from one reused
 * scratch struct, and framed by hand as "field tag, length, bytes" into a 1 MiB buffer that
 * is flushed through zlib (or straight) to the file. Memory stays constant whatever the size.
 *
 * The file appears complete or not at all: it is written to an unnamed O_TMPFILE (or, where
 * the filesystem lacks those, a hidden temporary name) in the destination's directory,
 * fsync'd, linked, and renamed over the destination. Any failure, ENOSPC included, removes
 * the temporary and leaves an existing destination untouched.
 */
#include "profile_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "profile.pb-c.h"

/* Raw output is written in 1 MiB pieces; gzip output in one 1 MiB block per core. */
#define SINK_BYTES (1u << 20)

/* Profile field numbers (proto/profile.proto). */
enum {
    F_SAMPLE_TYPE = 1,
    F_SAMPLE = 2,
    F_LOCATION = 4,
    F_FUNCTION = 5,
    F_STRING_TABLE = 6,
};

/* Where bytes go: a buffer, flushed through the parallel gzip compressor or straight to fd.
 * The first failure is remembered (err_errno) and turns every later call into a no-op. */
struct sink {
    int fd;
    int gzip;
    struct gzip_stream *gz;
    size_t gz_step; /* bytes handed to the compressor at once: one block per thread */
    uint8_t *buf;
    size_t len, cap;
    int err_errno;
    const char *err_what;
};

static void sink_fail(struct sink *s, int errnum, const char *what)
{
    if (!s->err_errno) {
        s->err_errno = errnum ? errnum : EIO;
        s->err_what = what;
    }
}

static void write_all(struct sink *s, const uint8_t *b, size_t n)
{
    while (n && !s->err_errno) {
        ssize_t w = write(s->fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            sink_fail(s, errno, "writing");
            return;
        }
        if (w == 0) {
            sink_fail(s, ENOSPC, "writing");
            return;
        }
        b += w;
        n -= (size_t)w;
    }
}

/* The compressor's output callback. */
static int sink_emit(void *ctx, const uint8_t *bytes, size_t n)
{
    struct sink *s = ctx;
    write_all(s, bytes, n);
    return s->err_errno ? -1 : 0;
}

/* Passes the buffer on; `last` ends the gzip stream. */
static void sink_drain(struct sink *s, int last)
{
    if (s->err_errno)
        return;
    if (!s->gzip) {
        write_all(s, s->buf, s->len);
    } else {
        /* The buffer can exceed gz_step after one huge element: feed it in steps. */
        size_t at = 0;
        do {
            size_t n = s->len - at < s->gz_step ? s->len - at : s->gz_step;
            if (gzip_stream_put(s->gz, s->buf + at, n, last && at + n == s->len, sink_emit, s)) {
                sink_fail(s, errno == ENOMEM ? ENOMEM : EIO, "compressing");
                break;
            }
            at += n;
        } while (at < s->len);
    }
    s->len = 0;
}

static void sink_flush(struct sink *s)
{
    if (s->len)
        sink_drain(s, 0);
}

static int sink_open(struct sink *s, int fd, int gzip)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->gzip = gzip;
    s->cap = SINK_BYTES;
    if (gzip) {
        s->gz_step = (size_t)gzip_stream_threads() * GZIP_BLOCK_BYTES;
        s->cap = s->gz_step;
        s->gz = calloc(1, sizeof *s->gz);
        if (!s->gz)
            return -1;
    }
    s->buf = malloc(s->cap);
    return s->buf ? 0 : -1;
}

static void sink_finish(struct sink *s)
{
    if (s->gzip)
        sink_drain(s, 1);
    else
        sink_flush(s);
}

static void sink_close(struct sink *s)
{
    free(s->buf);
    free(s->gz);
}

/* n contiguous bytes at the end of the buffer (growing it for one huge element), or NULL
 * after a failure. The caller fills them and adds n to s->len. */
static uint8_t *sink_reserve(struct sink *s, size_t n)
{
    if (s->err_errno)
        return NULL;
    if (s->cap - s->len < n)
        sink_flush(s);
    if (s->cap < n) {
        uint8_t *b = realloc(s->buf, n);
        if (!b) {
            sink_fail(s, ENOMEM, "allocating");
            return NULL;
        }
        s->buf = b;
        s->cap = n;
    }
    return s->err_errno ? NULL : s->buf + s->len;
}

static size_t varint_put(uint8_t *b, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return n;
}

/* Frames one length-delimited field: reserves room for its tag, length and `size` bytes,
 * writes tag and length, and returns where the payload goes (NULL after a failure). */
static uint8_t *field_begin(struct sink *s, uint32_t field, size_t size)
{
    uint8_t *b = sink_reserve(s, 20 + size);
    if (!b)
        return NULL;
    size_t h = varint_put(b, ((uint64_t)field << 3) | 2);
    h += varint_put(b + h, size);
    s->len += h + size;
    return b + h;
}

static void field_bytes(struct sink *s, uint32_t field, const void *data, size_t size)
{
    uint8_t *b = field_begin(s, field, size);
    if (b)
        memcpy(b, data, size);
}

/* Packs one protobuf-c message as an element of a repeated Profile field. */
static void field_message(struct sink *s, uint32_t field, const ProtobufCMessage *m)
{
    size_t size = protobuf_c_message_get_packed_size(m);
    uint8_t *b = field_begin(s, field, size);
    if (b)
        protobuf_c_message_pack(m, b);
}

/* --- consistency of what the caller built --- */

static int bad(ms_error *err, const char *fmt, size_t a, size_t b)
{
    ms_error_set(err, "the profile to write is inconsistent: ");
    size_t n = strlen(err ? err->msg : "");
    if (err)
        snprintf(err->msg + n, sizeof err->msg - n, fmt, a, b);
    return -1;
}

/* The builder keeps these invariants; checking them costs one pass and guarantees we never
 * write a file our own reader would refuse. */
static int profile_check(const struct profile *p, ms_error *err)
{
    size_t ns = p->n_strings;
    if (!ns || !p->strings || p->strings[0][0])
        return ms_error_set(err, "the profile to write has no string table starting with \"\"");
    if (!p->n_sample_types || p->default_sample_type >= p->n_sample_types)
        return ms_error_set(err, "the profile to write has no sample type or no default one");
    for (size_t i = 0; i < p->n_sample_types; i++)
        if (p->sample_types[i].type >= ns || p->sample_types[i].unit >= ns)
            return bad(err, "sample type %zu names string %zu", i, p->sample_types[i].type);
    if (p->period_type.type >= ns || p->period_type.unit >= ns)
        return bad(err, "the period type names string %zu of %zu", p->period_type.type, ns);
    const struct profile_meta *m = &p->meta;
    if (m->command >= ns || m->python_version >= ns || m->mode >= ns)
        return bad(err, "the metadata names a string past %zu (of %zu)", ns - 1, ns);
    for (size_t i = 0; i < p->n_comments; i++)
        if (p->comments[i] >= ns)
            return bad(err, "comment %zu names string %zu", i, p->comments[i]);
    for (size_t i = 0; i < p->n_functions; i++)
        if (p->functions[i].name >= ns || p->functions[i].filename >= ns)
            return bad(err, "function %zu names a string past %zu", i, ns - 1);
    for (size_t i = 0; i < p->n_lines; i++)
        if (p->lines[i].function >= p->n_functions)
            return bad(err, "line %zu refers to function %zu", i, p->lines[i].function);
    for (size_t i = 0; i < p->n_locations; i++) {
        const struct profile_location *l = &p->locations[i];
        if (l->first_line > p->n_lines || l->n_lines > p->n_lines - l->first_line)
            return bad(err, "location %zu has lines past %zu", i, p->n_lines);
    }
    if (p->n_samples && p->n_sample_types && !p->values)
        return ms_error_set(err, "the profile to write has samples but no values");
    for (size_t i = 0; i < p->n_samples; i++) {
        const struct profile_sample *s = &p->samples[i];
        if (s->first_loc > p->n_stack_locs || s->n_locs > p->n_stack_locs - s->first_loc)
            return bad(err, "sample %zu has locations past %zu", i, p->n_stack_locs);
        if (s->n_locs > PROFILE_MAX_STACK_DEPTH)
            return bad(err, "sample %zu is %zu frames deep", i, s->n_locs);
        if (s->thread >= ns)
            return bad(err, "sample %zu names thread string %zu", i, s->thread);
        const uint32_t *locs = p->stack_locs + s->first_loc;
        for (uint32_t k = 0; k < s->n_locs; k++)
            if (locs[k] >= p->n_locations)
                return bad(err, "sample %zu refers to location %zu", i, locs[k]);
    }
    return 0;
}

/* Index of string s in p, or PROFILE_NO_INDEX. */
static uint32_t string_find(const struct profile *p, const char *s)
{
    for (size_t i = 0; i < p->n_strings; i++)
        if (strcmp(p->strings[i], s) == 0)
            return (uint32_t)i;
    return PROFILE_NO_INDEX;
}

/* --- samples --- */

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Same as varint_size for ids below 2^32, without a loop: the hot path of big profiles. */
static size_t id_size(uint32_t v)
{
    return 1 + (v >= 1u << 7) + (v >= 1u << 14) + (v >= 1u << 21) + (v >= 1u << 28);
}

/* String indexes of the label keys (the "bytes" key doubles as the unit). */
struct sample_keys {
    uint32_t thread, bytes, pid;
};

/* Writes sample i as a Profile.sample field. Samples are the whole bulk of a big profile, so
 * they are framed by hand instead of packed by protobuf-c, which would need each stack copied
 * into a uint64_t array and walked twice (sizing, then packing) through its generic
 * descriptor-driven code: 5x slower over a million samples (scripts/bench.d/profile.sh). The
 * bytes are what protobuf-c writes for a Sample: location_id and value packed, then labels.
 * Tests decode them with Python's protobuf and with pprof-format. */
static void sample_put(struct sink *s, const struct profile *p, size_t i,
                       const struct sample_keys *keys)
{
    const struct profile_sample *ps = &p->samples[i];
    const uint32_t *locs = p->stack_locs + ps->first_loc;
    const int64_t *vals = p->values + i * p->n_sample_types;
    size_t nt = p->n_sample_types;

    size_t ids = 0, values = 0, thread = 0, bytes = 0, pid = 0;
    for (uint32_t k = 0; k < ps->n_locs; k++)
        ids += id_size(locs[k] + 1);
    for (size_t t = 0; t < nt; t++)
        values += varint_size((uint64_t)vals[t]);
    if (ps->thread) /* Label{key, str} */
        thread = 2 + varint_size(keys->thread) + varint_size(ps->thread);
    if (ps->block_bytes) /* Label{key, num, num_unit} */
        bytes = 3 + 2 * varint_size(keys->bytes) + varint_size((uint64_t)ps->block_bytes);
    if (ps->pid) /* Label{key, num} */
        pid = 2 + varint_size(keys->pid) + varint_size((uint64_t)ps->pid);
    size_t size =
        (ids ? 1 + varint_size(ids) + ids : 0) + (values ? 1 + varint_size(values) + values : 0) +
        (thread ? 1 + varint_size(thread) + thread : 0) +
        (bytes ? 1 + varint_size(bytes) + bytes : 0) + (pid ? 1 + varint_size(pid) + pid : 0);

    uint8_t *b = field_begin(s, F_SAMPLE, size);
    if (!b)
        return;
    if (ids) {
        *b++ = 1 << 3 | 2;
        b += varint_put(b, ids);
        for (uint32_t k = 0; k < ps->n_locs; k++) {
            uint32_t id = locs[k] + 1;
            while (id >= 0x80) {
                *b++ = (uint8_t)(id | 0x80);
                id >>= 7;
            }
            *b++ = (uint8_t)id;
        }
    }
    if (values) {
        *b++ = 2 << 3 | 2;
        b += varint_put(b, values);
        for (size_t t = 0; t < nt; t++)
            b += varint_put(b, (uint64_t)vals[t]);
    }
    if (thread) {
        *b++ = 3 << 3 | 2;
        b += varint_put(b, thread);
        *b++ = 1 << 3;
        b += varint_put(b, keys->thread);
        *b++ = 2 << 3;
        b += varint_put(b, ps->thread);
    }
    if (bytes) {
        *b++ = 3 << 3 | 2;
        b += varint_put(b, bytes);
        *b++ = 1 << 3;
        b += varint_put(b, keys->bytes);
        *b++ = 3 << 3;
        b += varint_put(b, (uint64_t)ps->block_bytes);
        *b++ = 4 << 3;
        b += varint_put(b, keys->bytes);
    }
    if (pid) {
        *b++ = 3 << 3 | 2;
        b += varint_put(b, pid);
        *b++ = 1 << 3;
        b += varint_put(b, keys->pid);
        *b++ = 3 << 3;
        b += varint_put(b, (uint64_t)ps->pid);
    }
}

/* --- the stream --- */

/* Streams p, with notes->texts as comments after p's own, in the order pprof lists fields. */
static int profile_stream_with(const struct profile *p, struct sink *s,
                               const struct comment_texts *notes)
{
    /* Label keys this profile may lack; appended after its own strings when missing. */
    size_t next_string = p->n_strings;
    uint32_t k_thread = string_find(p, "thread"), k_bytes = string_find(p, "bytes");
    uint32_t k_pid = string_find(p, "pid");
    int add_thread = k_thread == PROFILE_NO_INDEX, add_bytes = k_bytes == PROFILE_NO_INDEX;
    int add_pid = 0;
    if (add_thread)
        k_thread = (uint32_t)next_string++;
    if (add_bytes)
        k_bytes = (uint32_t)next_string++;
    if (k_pid == PROFILE_NO_INDEX)
        for (size_t i = 0; i < p->n_samples && !add_pid; i++)
            if (p->samples[i].pid)
                add_pid = 1, k_pid = (uint32_t)next_string++;

    for (size_t i = 0; i < p->n_sample_types; i++) {
        Memsnap__Pprof__ValueType vt = MEMSNAP__PPROF__VALUE_TYPE__INIT;
        vt.type = p->sample_types[i].type;
        vt.unit = p->sample_types[i].unit;
        field_message(s, F_SAMPLE_TYPE, &vt.base);
    }

    struct sample_keys keys = {.thread = k_thread, .bytes = k_bytes, .pid = k_pid};
    for (size_t i = 0; i < p->n_samples && !s->err_errno; i++)
        sample_put(s, p, i, &keys);

    Memsnap__Pprof__Line *line_msgs = NULL;
    Memsnap__Pprof__Line **line_ptrs = NULL;
    size_t line_cap = 0;
    for (size_t i = 0; i < p->n_locations && !s->err_errno; i++) {
        const struct profile_location *l = &p->locations[i];
        if (l->n_lines > line_cap) {
            free(line_msgs);
            free(line_ptrs);
            line_cap = l->n_lines;
            line_msgs = malloc(line_cap * sizeof *line_msgs);
            line_ptrs = malloc(line_cap * sizeof *line_ptrs);
            if (!line_msgs || !line_ptrs) {
                sink_fail(s, ENOMEM, "allocating");
                break;
            }
        }
        for (uint32_t k = 0; k < l->n_lines; k++) {
            const struct profile_line *pl = &p->lines[l->first_line + k];
            Memsnap__Pprof__Line lm = MEMSNAP__PPROF__LINE__INIT;
            lm.function_id = (uint64_t)pl->function + 1;
            lm.line = pl->line;
            line_msgs[k] = lm;
            line_ptrs[k] = &line_msgs[k];
        }
        Memsnap__Pprof__Location m = MEMSNAP__PPROF__LOCATION__INIT;
        m.id = i + 1;
        m.address = l->address;
        m.n_line = l->n_lines;
        m.line = line_ptrs;
        field_message(s, F_LOCATION, &m.base);
    }
    free(line_msgs);
    free(line_ptrs);

    for (size_t i = 0; i < p->n_functions && !s->err_errno; i++) {
        Memsnap__Pprof__Function m = MEMSNAP__PPROF__FUNCTION__INIT;
        m.id = i + 1;
        m.name = p->functions[i].name;
        m.filename = p->functions[i].filename;
        m.start_line = p->functions[i].start_line;
        field_message(s, F_FUNCTION, &m.base); /* system_name stays 0: see DESIGN.md */
    }

    for (size_t i = 0; i < p->n_strings && !s->err_errno; i++)
        field_bytes(s, F_STRING_TABLE, p->strings[i], strlen(p->strings[i]));
    if (add_thread)
        field_bytes(s, F_STRING_TABLE, "thread", 6);
    if (add_bytes)
        field_bytes(s, F_STRING_TABLE, "bytes", 5);
    if (add_pid)
        field_bytes(s, F_STRING_TABLE, "pid", 3);
    for (size_t i = 0; i < notes->n && !s->err_errno; i++)
        field_bytes(s, F_STRING_TABLE, notes->texts[i], strlen(notes->texts[i]));

    /* Comments: the profile's own, then memsnap's, whose strings were just appended. */
    int64_t *comments = malloc((p->n_comments + notes->n + 1) * sizeof *comments);
    if (!comments) {
        sink_fail(s, ENOMEM, "allocating");
        return -1;
    }
    for (size_t i = 0; i < p->n_comments; i++)
        comments[i] = p->comments[i];
    for (size_t i = 0; i < notes->n; i++)
        comments[p->n_comments + i] = (int64_t)(next_string + i);

    /* The scalars, the period type and the comments: small, packed whole. */
    Memsnap__Pprof__Profile top = MEMSNAP__PPROF__PROFILE__INIT;
    Memsnap__Pprof__ValueType period_type = MEMSNAP__PPROF__VALUE_TYPE__INIT;
    top.time_nanos = p->time_nanos;
    top.duration_nanos = p->duration_nanos;
    if (p->period_type.type || p->period_type.unit) {
        period_type.type = p->period_type.type;
        period_type.unit = p->period_type.unit;
        top.period_type = &period_type;
    }
    top.period = p->period;
    if (p->default_sample_type < p->n_sample_types)
        top.default_sample_type = p->sample_types[p->default_sample_type].type;
    top.n_comment = p->n_comments + notes->n;
    top.comment = comments;
    size_t size = memsnap__pprof__profile__get_packed_size(&top);
    uint8_t *b = sink_reserve(s, size);
    if (b) {
        memsnap__pprof__profile__pack(&top, b);
        s->len += size;
    }
    free(comments);
    sink_finish(s);
    return s->err_errno ? -1 : 0;
}

static int profile_stream(const struct profile *p, struct sink *s)
{
    /* memsnap's metadata and timeline, as comments whose strings follow the profile's own. */
    struct comment_texts notes;
    if (comment_texts_format(p, &notes)) {
        sink_fail(s, ENOMEM, "allocating");
        return -1;
    }
    int rc = profile_stream_with(p, s, &notes);
    comment_texts_free(&notes);
    return rc;
}

/* --- the file --- */

/* Splits path into its directory (".", if none) and opens it for fsync and relative names. */
static int dir_open(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Opens the temporary file: unnamed when the filesystem allows (so a crash mid-write leaves
 * nothing behind), else under a hidden unique name (*named set). */
static int temp_open(const char *dir, const char *base, char *tmp, size_t n, int *named)
{
    *named = 0;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0)
        return fd;
    *named = 1;
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(tmp, n, "%s/.%s.%d.%ld.tmp", dir, base, (int)getpid(),
                 (long)(ts.tv_nsec + attempt));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int profile_write_fd(const struct profile *p, int fd, int gzip, const char *name, ms_error *err)
{
    if (!p || fd < 0 || !name)
        return ms_error_set(err, "profile_write_fd: no profile, descriptor or name");
    if (profile_check(p, err))
        return -1;
    struct sink s;
    int rc = -1;
    if (sink_open(&s, fd, gzip))
        ms_error_set(err, "writing the profile to %s: out of memory", name);
    else if (profile_stream(p, &s))
        ms_error_errno(err, s.err_errno, "%s the profile to %s", s.err_what, name);
    else
        rc = 0;
    sink_close(&s);
    return rc;
}

int profile_write(const struct profile *p, const char *path, int gzip, ms_error *err)
{
    if (!p || !path || !*path)
        return ms_error_set(err, "profile_write: no profile or no path");
    if (profile_check(p, err))
        return -1;
    if (strcmp(path, "-") == 0)
        return profile_write_fd(p, STDOUT_FILENO, gzip, "standard output", err);

    char dir[4096], tmp[4096 + 300];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base)
        return ms_error_set(err, "cannot write the profile to %s: it names a directory", path);
    if (strlen(path) >= sizeof dir)
        return ms_error_set(err, "cannot write the profile to %.100s...: path too long", path);
    int dfd = dir_open(path, dir, sizeof dir);
    if (dfd < 0)
        return ms_error_errno(err, errno, "cannot write the profile to %s: opening %s", path, dir);
    int named = 0;
    tmp[0] = 0;
    int fd = temp_open(dir, base, tmp, sizeof tmp, &named);
    if (fd < 0) {
        ms_error_errno(err, errno, "cannot write the profile to %s: creating a file in %s", path,
                       dir);
        close(dfd);
        return -1;
    }

    /* A replaced file keeps its permission bits. */
    struct stat old_st;
    if (stat(path, &old_st) == 0 && S_ISREG(old_st.st_mode))
        (void)fchmod(fd, old_st.st_mode & 07777);

    struct sink s;
    int rc = -1;
    if (sink_open(&s, fd, gzip)) {
        ms_error_set(err, "cannot write the profile to %s: out of memory", path);
        goto out;
    }
    if (profile_stream(p, &s)) {
        ms_error_errno(err, s.err_errno, "%s the profile to %s", s.err_what, path);
        goto out;
    }
    if (fsync(fd)) {
        ms_error_errno(err, errno, "writing the profile to %s (fsync)", path);
        goto out;
    }
    if (!named) {
        /* Give the finished unnamed file a temporary name, then rename it into place. */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        for (int attempt = 0;; attempt++) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            snprintf(tmp, sizeof tmp, "%s/.%s.%d.%ld.tmp", dir, base, (int)getpid(),
                     (long)(ts.tv_nsec + attempt));
            if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
                break;
            if (errno != EEXIST || attempt == 100) {
                ms_error_errno(err, errno, "cannot write the profile to %s: linking in %s", path,
                               dir);
                tmp[0] = 0;
                goto out;
            }
        }
        named = 1;
    }
    if (close(fd)) {
        fd = -1;
        ms_error_errno(err, errno, "writing the profile to %s (close)", path);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path)) {
        ms_error_errno(err, errno, "cannot write the profile to %s: renaming", path);
        goto out;
    }
    named = 0;  /* nothing to clean up: the temporary is now the destination */
    fsync(dfd); /* durability of the rename; the file itself is already complete */
    rc = 0;
out:
    sink_close(&s);
    if (fd >= 0)
        close(fd);
    if (named && tmp[0])
        unlink(tmp);
    close(dfd);
    return rc;
}
