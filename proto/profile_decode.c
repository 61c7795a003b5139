/*
 * profile_decode.c - turning the bytes of a pprof Profile message into a validated profile.
 *
 * Hand-written rather than protobuf-c's unpack: unpack builds one heap object per sample,
 * per location id array and per label, which for a million samples of forty frames costs
 * several times the file in memory and most of the render budget; this decoder makes one
 * allocation per model array (scripts/bench.d/profile.sh compares the two).
 *
 * The input is hostile. Every read is bounds-checked against the enclosing message, every
 * count is bounded by the bytes that encode it (so memory stays proportional to the input),
 * and every reference is checked before the profile is returned. It decodes in four passes
 * over the top-level fields, because pprof allows them in any order and references point
 * forward as well as back:
 *   A. the string table, the counts that size every array, and the wire structure;
 *   B. sample types, functions and the scalars, whose string indexes can now be checked;
 *   C. locations, whose lines refer to function ids (now all known);
 *   D. samples, which refer to location ids (now all known), in parts decoded by several
 *      threads at once (pass A marks where parts can start; see "pass D in parts");
 * then memsnap's comments become the metadata and the timeline (profile_comments.c).
 * Skipping over a field costs a varint and a pointer bump, so the extra passes are cheap.
 */
#include "profile_internal.h"
#include "jobs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Profile field numbers (proto/profile.proto). */
enum {
    P_SAMPLE_TYPE = 1,
    P_SAMPLE = 2,
    P_MAPPING = 3,
    P_LOCATION = 4,
    P_FUNCTION = 5,
    P_STRING_TABLE = 6,
    P_DROP_FRAMES = 7,
    P_KEEP_FRAMES = 8,
    P_TIME_NANOS = 9,
    P_DURATION_NANOS = 10,
    P_PERIOD_TYPE = 11,
    P_PERIOD = 12,
    P_COMMENT = 13,
    P_DEFAULT_SAMPLE_TYPE = 14,
};

/* Room kept in the string array for metadata strings that only a comment spells (one per
 * string key of profile_comments.c, one per process entry). */
#define META_STRING_ROOM (3 + PROFILE_MAX_PROCESSES)

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* Longest name a location without lines gets: "0x" + 16 hex digits + NUL. */
#define ADDRESS_NAME_BYTES 19

/* Non-zero ids to indexes: the identity (id == index + 1) when the file numbers them so, as
 * memsnap and Go do, else an open-addressing table (key 0 = empty; ids are never 0). */
struct id_map {
    int sequential;
    uint64_t *keys;
    uint32_t *vals;
    size_t mask;
    size_t n;
};

/* A span of bytes [p, end) being decoded. */
struct cursor {
    const uint8_t *p, *end;
};

/* A top-level field that is the Sample number `sample`, and the Sample bytes before it. */
struct sample_mark {
    const uint8_t *at;
    size_t sample;
    size_t bytes_before;
};

struct reader {
    const uint8_t *base;  /* the whole message, for byte offsets in errors */
    const uint8_t *limit; /* its end: what may be read ahead of a number */
    const char *what;     /* "leak.pb", "standard input", ... */
    int gzipped;
    ms_error *err;
    struct profile *p;

    /* counts from pass A */
    size_t n_samples, n_functions, n_locations, n_sample_types, n_bare_locations;
    size_t max_comments; /* comment entries can be no more than their bytes */
    size_t string_bytes;

    size_t cap_lines;
    size_t n_bare_done;   /* locations without lines synthesized so far */
    char *names_next;     /* where the next synthesized name goes in the string block */
    int64_t default_type; /* string index of Profile.default_sample_type */
    uint32_t thread_key, bytes_key, pid_key; /* string indexes of those label keys, 0 until seen */
    struct id_map functions, locations;
    uint32_t *comments; /* every comment, in file order, before memsnap's are taken out */
    size_t n_all_comments;

    /* Pass D's bookkeeping: where some samples start (pass A), so that several threads can
     * each decode a part, and where the current part writes its location indexes. */
    struct sample_mark *marks;
    size_t n_marks, cap_marks;
    size_t sample_bytes; /* of all Sample fields, keys and lengths included */
    size_t loc_next, loc_end;
    struct decode_parts parts;
};

/* --- errors --- */

/* Malformed bytes: "<what> is not a pprof profile: <why> at byte N". */
static int malformed(struct reader *r, const uint8_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int malformed(struct reader *r, const uint8_t *at, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ms_error_set(r->err, "%s is not a pprof profile: %s at byte %zu%s", r->what, why,
                        (size_t)(at - r->base), r->gzipped ? " of its decompressed data" : "");
}

/* Well-formed bytes, impossible contents: "<what> is not a valid pprof profile: <why>". */
static int invalid(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(struct reader *r, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ms_error_set(r->err, "%s is not a valid pprof profile: %s", r->what, why);
}

static int nomem(struct reader *r)
{
    return ms_error_set(r->err, "reading %s: out of memory", r->what);
}

/* --- the wire format --- */

/* The general case of varint_read: near the end of the input, or malformed. */
static int varint_read_slow(struct reader *r, struct cursor *c, uint64_t *v)
{
    const uint8_t *p = c->p;
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= c->end)
            return malformed(r, p, "truncated in a number");
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = x;
            c->p = p;
            return 0;
        }
    }
    return malformed(r, c->p, "a number longer than 10 bytes");
}

/* Every number of the format goes through here: with ten bytes left the longest varint
 * fits, and the loop needs no bounds check. */
static inline int varint_read(struct reader *r, struct cursor *c, uint64_t *v)
{
    const uint8_t *p = c->p;
    if (p < c->end && *p < 0x80) { /* most numbers: ids, string indexes, small counts */
        *v = *p;
        c->p = p + 1;
        return 0;
    }
    if (c->end - p < 10)
        return varint_read_slow(r, c, v);
    uint64_t x = 0;
    for (unsigned i = 0; i < 10; i++) {
        uint64_t b = p[i];
        x |= (b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *v = x;
            c->p = p + i + 1;
            return 0;
        }
    }
    return malformed(r, p, "a number longer than 10 bytes");
}

static inline int key_read(struct reader *r, struct cursor *c, uint32_t *field, unsigned *wt)
{
    const uint8_t *at = c->p;
    uint64_t k;
    *field = 0; /* defined even on failure, which the compiler cannot see is always -1 */
    *wt = 0;
    if (varint_read(r, c, &k))
        return -1;
    if ((k >> 3) == 0 || (k >> 3) > 0x1fffffff)
        return malformed(r, at, "field number %" PRIu64 " is out of range", k >> 3);
    *field = (uint32_t)(k >> 3);
    *wt = (unsigned)(k & 7);
    return 0;
}

/* Reads a length prefix and sets *sub to the bytes it covers, advancing c past them. */
static int len_read(struct reader *r, struct cursor *c, struct cursor *sub)
{
    const uint8_t *at = c->p;
    uint64_t n;
    if (varint_read(r, c, &n))
        return -1;
    if (n > (uint64_t)(c->end - c->p))
        return malformed(r, at, "a field of %" PRIu64 " bytes is truncated after %zu", n,
                         (size_t)(c->end - c->p));
    sub->p = c->p;
    sub->end = c->p + n;
    c->p += n;
    return 0;
}

static int field_skip(struct reader *r, struct cursor *c, unsigned wt)
{
    uint64_t v;
    struct cursor sub;
    switch (wt) {
    case WT_VARINT:
        return varint_read(r, c, &v);
    case WT_LEN:
        return len_read(r, c, &sub);
    case WT_I64:
    case WT_I32: {
        size_t n = wt == WT_I64 ? 8 : 4;
        if ((size_t)(c->end - c->p) < n)
            return malformed(r, c->p, "truncated in a fixed-size number");
        c->p += n;
        return 0;
    }
    default:
        return malformed(r, c->p, "unsupported wire type %u", wt);
    }
}

/* Reads a scalar varint field after checking its wire type. */
static int scalar_read(struct reader *r, struct cursor *c, unsigned wt, const char *name,
                       uint64_t *v)
{
    if (wt != WT_VARINT)
        return malformed(r, c->p, "%s has wire type %u instead of a number", name, wt);
    return varint_read(r, c, v);
}

/* Reads a length-delimited field after checking its wire type. */
static int message_read(struct reader *r, struct cursor *c, unsigned wt, const char *name,
                        struct cursor *sub)
{
    if (wt != WT_LEN)
        return malformed(r, c->p, "%s has wire type %u instead of a message", name, wt);
    return len_read(r, c, sub);
}

/* Checks that v is a string index. */
static int string_index(struct reader *r, uint64_t v, const char *name, uint32_t *out)
{
    if (v >= r->p->n_strings - r->n_bare_locations)
        return invalid(r, "%s refers to string %" PRId64 " of a table of %zu", name, (int64_t)v,
                       r->p->n_strings - r->n_bare_locations);
    *out = (uint32_t)v;
    return 0;
}

/* --- id maps --- */

static uint64_t id_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return id;
}

/* Builds the map of ids[0..n) (index i has id ids[i]); kind names them in errors. */
static int id_map_build(struct reader *r, struct id_map *m, const uint64_t *ids, size_t n,
                        const char *kind)
{
    m->n = n;
    m->sequential = 1;
    for (size_t i = 0; i < n && m->sequential; i++)
        if (ids[i] != i + 1)
            m->sequential = 0;
    if (m->sequential)
        return 0;
    size_t size = 16;
    while (size < n * 2)
        size *= 2;
    m->keys = calloc(size, sizeof *m->keys);
    m->vals = malloc(size * sizeof *m->vals);
    if (!m->keys || !m->vals)
        return nomem(r);
    m->mask = size - 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0)
            return invalid(r, "%s %zu has id 0", kind, i + 1);
        size_t s = id_hash(ids[i]) & m->mask;
        while (m->keys[s]) {
            if (m->keys[s] == ids[i])
                return invalid(r, "%s id %" PRIu64 " is defined twice", kind, ids[i]);
            s = (s + 1) & m->mask;
        }
        m->keys[s] = ids[i];
        m->vals[s] = (uint32_t)i;
    }
    return 0;
}

/* The index of id, or -1 when no entry has it. */
static inline int64_t id_map_find(const struct id_map *m, uint64_t id)
{
    if (m->sequential)
        return id - 1 < m->n ? (int64_t)(id - 1) : -1;
    if (id == 0)
        return -1;
    for (size_t s = id_hash(id) & m->mask; m->keys[s]; s = (s + 1) & m->mask)
        if (m->keys[s] == id)
            return m->vals[s];
    return -1;
}

static void id_map_free(struct id_map *m)
{
    free(m->keys);
    free(m->vals);
}

/* --- pass A: strings, counts, structure --- */

/* Whether a Location message has at least one Line (field 4); structure errors are left for
 * pass C, which decodes the same bytes strictly. */
static int location_has_lines(struct reader *r, struct cursor c)
{
    ms_error *saved = r->err;
    ms_error scratch;
    r->err = &scratch;
    int found = 0;
    while (c.p < c.end && !found) {
        uint32_t field;
        unsigned wt;
        if (key_read(r, &c, &field, &wt))
            break;
        if (field == 4 && wt == WT_LEN)
            found = 1;
        else if (field_skip(r, &c, wt))
            break;
    }
    r->err = saved;
    return found;
}

static int pass_strings(struct reader *r, struct cursor c)
{
    struct profile *p = r->p;
    size_t n_strings = 0;
    struct cursor top = c;
    /* First walk: count and size everything. */
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        struct cursor sub;
        const uint8_t *field_at = c.p;
        if (key_read(r, &c, &field, &wt))
            return -1;
        if (field == P_COMMENT) { /* packed or not: at least a byte per entry either way */
            const uint8_t *at = c.p;
            if (field_skip(r, &c, wt))
                return -1;
            r->max_comments += (size_t)(c.p - at);
            continue;
        }
        if (wt != WT_LEN) {
            if (field_skip(r, &c, wt))
                return -1;
            continue;
        }
        if (len_read(r, &c, &sub))
            return -1;
        switch (field) {
        case P_SAMPLE_TYPE:
            r->n_sample_types++;
            break;
        case P_SAMPLE:
            if (r->n_samples % r->parts.mark_every == 0) {
                if (profile_array_reserve((void **)&r->marks, &r->cap_marks, r->n_marks + 1,
                                          sizeof *r->marks))
                    return nomem(r);
                r->marks[r->n_marks++] =
                    (struct sample_mark){field_at, r->n_samples, r->sample_bytes};
            }
            r->sample_bytes += (size_t)(sub.end - field_at);
            r->n_samples++;
            break;
        case P_LOCATION:
            r->n_locations++;
            if (!location_has_lines(r, sub))
                r->n_bare_locations++;
            break;
        case P_FUNCTION:
            r->n_functions++;
            break;
        case P_STRING_TABLE:
            if (n_strings == 0 && sub.end != sub.p)
                return invalid(r, "the string table does not start with the empty string");
            r->string_bytes += utf8_repaired_len(sub.p, (size_t)(sub.end - sub.p)) + 1;
            n_strings++;
            break;
        }
    }
    if (n_strings == 0)
        return invalid(r, "it has no string table");
    if (n_strings + r->n_bare_locations >= UINT32_MAX || r->n_functions >= UINT32_MAX / 2 ||
        r->n_locations >= UINT32_MAX || r->n_samples >= UINT32_MAX)
        return invalid(r, "it has more than 2^32 entries in one table");

    /* Second walk: copy the strings, repaired, into one block that starts with "". Names
     * for locations without lines go at its end. */
    size_t total = n_strings + r->n_bare_locations;
    size_t bytes = r->string_bytes + r->n_bare_locations * ADDRESS_NAME_BYTES;
    p->strings = malloc((total + META_STRING_ROOM) * sizeof *p->strings);
    char *block = malloc(bytes);
    if (!p->strings || !block) {
        free(block);
        return nomem(r);
    }
    p->strings[0] = block; /* profile_free() frees the block through strings[0] */
    p->n_strings = total;
    for (size_t i = 1; i < total; i++)
        p->strings[i] = block; /* "" until filled, so the table is always safe to free */
    char *dst = block;
    size_t i = 0;
    while (top.p < top.end) {
        uint32_t field;
        unsigned wt;
        struct cursor sub;
        key_read(r, &top, &field, &wt); /* cannot fail: the first walk checked */
        if (wt != WT_LEN || field != P_STRING_TABLE) {
            field_skip(r, &top, wt);
            continue;
        }
        len_read(r, &top, &sub);
        size_t len = (size_t)(sub.end - sub.p);
        p->strings[i++] = dst;
        utf8_repair(sub.p, len, dst);
        dst += utf8_repaired_len(sub.p, len);
        *dst++ = 0;
    }
    r->names_next = dst;
    return 0;
}

/* --- pass B: everything small --- */

static int value_type_decode(struct reader *r, struct cursor c, const char *name,
                             struct profile_value_type *out)
{
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        if (key_read(r, &c, &field, &wt))
            return -1;
        if (field == 1 || field == 2) {
            if (scalar_read(r, &c, wt, name, &v) ||
                string_index(r, v, name, field == 1 ? &out->type : &out->unit))
                return -1;
        } else if (field_skip(r, &c, wt)) {
            return -1;
        }
    }
    return 0;
}

static int function_decode(struct reader *r, struct cursor c, uint64_t *id)
{
    struct profile_function *f = &r->p->functions[r->p->n_functions];
    *f = (struct profile_function){0};
    *id = 0;
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        if (key_read(r, &c, &field, &wt))
            return -1;
        if (field < 1 || field > 5) {
            if (field_skip(r, &c, wt))
                return -1;
            continue;
        }
        if (scalar_read(r, &c, wt, "a function field", &v))
            return -1;
        uint32_t ignored;
        switch (field) {
        case 1:
            *id = v;
            break;
        case 2:
            if (string_index(r, v, "a function name", &f->name))
                return -1;
            break;
        case 3:
            if (string_index(r, v, "a function's system name", &ignored))
                return -1;
            break;
        case 4:
            if (string_index(r, v, "a function's file name", &f->filename))
                return -1;
            break;
        case 5:
            f->start_line = (int64_t)v;
            break;
        }
    }
    if (*id == 0)
        return invalid(r, "function %zu has no id (or id 0)", r->p->n_functions + 1);
    r->p->n_functions++;
    return 0;
}

/* Checks every element of the comment field (packed or not) and collects it. */
static int comments_collect(struct reader *r, struct cursor *c, unsigned wt)
{
    uint64_t v;
    uint32_t s = 0;
    if (wt == WT_VARINT) {
        if (varint_read(r, c, &v) || string_index(r, v, "a comment", &s))
            return -1;
        r->comments[r->n_all_comments++] = s; /* pass A counted a byte per entry */
        return 0;
    }
    struct cursor sub;
    if (message_read(r, c, wt, "a comment", &sub))
        return -1;
    while (sub.p < sub.end) {
        if (varint_read(r, &sub, &v) || string_index(r, v, "a comment", &s))
            return -1;
        r->comments[r->n_all_comments++] = s;
    }
    return 0;
}

static int pass_small(struct reader *r, struct cursor c, uint64_t *fn_ids)
{
    struct profile *p = r->p;
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        uint32_t ignored;
        struct cursor sub;
        if (key_read(r, &c, &field, &wt))
            return -1;
        switch (field) {
        case P_SAMPLE_TYPE:
            if (message_read(r, &c, wt, "a sample type", &sub))
                return -1;
            p->sample_types[p->n_sample_types] = (struct profile_value_type){0};
            if (value_type_decode(r, sub, "a sample type", &p->sample_types[p->n_sample_types]))
                return -1;
            p->n_sample_types++;
            break;
        case P_FUNCTION:
            if (message_read(r, &c, wt, "a function", &sub) ||
                function_decode(r, sub, &fn_ids[p->n_functions]))
                return -1;
            break;
        case P_SAMPLE:
        case P_MAPPING:
        case P_LOCATION:
            if (message_read(r, &c, wt, "a repeated message field", &sub))
                return -1;
            break;
        case P_STRING_TABLE:
            if (message_read(r, &c, wt, "a string", &sub))
                return -1;
            break;
        case P_DROP_FRAMES:
        case P_KEEP_FRAMES:
            if (scalar_read(r, &c, wt, "drop_frames/keep_frames", &v) ||
                string_index(r, v, "drop_frames/keep_frames", &ignored))
                return -1;
            break;
        case P_TIME_NANOS:
        case P_DURATION_NANOS:
        case P_PERIOD:
            if (scalar_read(r, &c, wt, "a time or period", &v))
                return -1;
            if (field == P_TIME_NANOS)
                p->time_nanos = (int64_t)v;
            else if (field == P_DURATION_NANOS)
                p->duration_nanos = (int64_t)v;
            else
                p->period = (int64_t)v;
            break;
        case P_PERIOD_TYPE:
            if (message_read(r, &c, wt, "the period type", &sub) ||
                value_type_decode(r, sub, "the period type", &p->period_type))
                return -1;
            break;
        case P_COMMENT:
            if (comments_collect(r, &c, wt))
                return -1;
            break;
        case P_DEFAULT_SAMPLE_TYPE:
            if (scalar_read(r, &c, wt, "default_sample_type", &v) ||
                string_index(r, v, "default_sample_type", &ignored))
                return -1;
            r->default_type = (int64_t)v;
            break;
        default:
            if (field_skip(r, &c, wt))
                return -1;
        }
    }
    if (p->n_sample_types == 0)
        return invalid(r, "it has no sample types");

    /* pprof's rule: the type named by default_sample_type, else the last one. */
    p->default_sample_type = p->n_sample_types - 1;
    if (r->default_type)
        for (size_t i = 0; i < p->n_sample_types; i++)
            if (strcmp(p->strings[p->sample_types[i].type], p->strings[r->default_type]) == 0) {
                p->default_sample_type = i;
                break;
            }
    return 0;
}

/* --- pass C: locations --- */

static int line_decode(struct reader *r, struct cursor c)
{
    struct profile *p = r->p;
    if (profile_array_reserve((void **)&p->lines, &r->cap_lines, p->n_lines + 1, sizeof *p->lines))
        return nomem(r);
    uint64_t fn_id = 0;
    int64_t line = 0;
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        if (key_read(r, &c, &field, &wt))
            return -1;
        if (field == 1 || field == 2 || field == 3) {
            if (scalar_read(r, &c, wt, "a line field", &v))
                return -1;
            if (field == 1)
                fn_id = v;
            else if (field == 2)
                line = (int64_t)v;
        } else if (field_skip(r, &c, wt)) {
            return -1;
        }
    }
    int64_t fn = id_map_find(&r->functions, fn_id);
    if (fn < 0)
        return invalid(r, "location %zu refers to function id %" PRIu64 ", which is not defined",
                       p->n_locations + 1, fn_id);
    p->lines[p->n_lines++] = (struct profile_line){.function = (uint32_t)fn, .line = line};
    return 0;
}

/* Gives a location that has only an address one line in a function named after it, so
 * every location of a read profile has at least one line. */
static int location_synthesize(struct reader *r, struct profile_location *l)
{
    struct profile *p = r->p;
    if (r->n_bare_done >= r->n_bare_locations)
        return invalid(r, "its locations changed between two readings"); /* cannot happen */
    if (profile_array_reserve((void **)&p->lines, &r->cap_lines, p->n_lines + 1, sizeof *p->lines))
        return nomem(r);
    size_t s = p->n_strings - r->n_bare_locations + r->n_bare_done++;
    snprintf(r->names_next, ADDRESS_NAME_BYTES, "0x%" PRIx64, l->address);
    p->strings[s] = r->names_next;
    r->names_next += strlen(r->names_next) + 1;
    p->functions[p->n_functions] = (struct profile_function){.name = (uint32_t)s};
    p->lines[p->n_lines++] = (struct profile_line){.function = (uint32_t)p->n_functions++};
    l->n_lines = 1;
    return 0;
}

static int location_decode(struct reader *r, struct cursor c, uint64_t *id)
{
    struct profile *p = r->p;
    struct profile_location *l = &p->locations[p->n_locations];
    *l = (struct profile_location){.first_line = (uint32_t)p->n_lines};
    *id = 0;
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        struct cursor sub;
        if (key_read(r, &c, &field, &wt))
            return -1;
        switch (field) {
        case 1:
        case 2:
        case 3:
        case 5:
            if (scalar_read(r, &c, wt, "a location field", &v))
                return -1;
            if (field == 1)
                *id = v;
            else if (field == 3)
                l->address = v;
            break;
        case 4:
            if (message_read(r, &c, wt, "a line", &sub) || line_decode(r, sub))
                return -1;
            if (++l->n_lines > PROFILE_MAX_STACK_DEPTH)
                return invalid(r, "location %zu has more than %d lines", p->n_locations + 1,
                               PROFILE_MAX_STACK_DEPTH);
            break;
        default:
            if (field_skip(r, &c, wt))
                return -1;
        }
    }
    if (*id == 0)
        return invalid(r, "location %zu has no id (or id 0)", p->n_locations + 1);
    if (l->n_lines == 0 && location_synthesize(r, l))
        return -1;
    p->n_locations++;
    return 0;
}

static int pass_locations(struct reader *r, struct cursor c, uint64_t *loc_ids)
{
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        struct cursor sub;
        key_read(r, &c, &field, &wt); /* structure already checked by pass A */
        if (field != P_LOCATION) {
            field_skip(r, &c, wt);
            continue;
        }
        len_read(r, &c, &sub);
        if (location_decode(r, sub, &loc_ids[r->p->n_locations]))
            return -1;
    }
    return 0;
}

/* --- pass D: samples --- */

static int label_decode(struct reader *r, struct cursor c, struct profile_sample *s)
{
    uint64_t key = 0, str = 0, num = 0, unit = 0;
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        if (key_read(r, &c, &field, &wt))
            return -1;
        if (field >= 1 && field <= 4) {
            if (scalar_read(r, &c, wt, "a label field", &v))
                return -1;
            if (field == 1)
                key = v;
            else if (field == 2)
                str = v;
            else if (field == 3)
                num = v;
            else
                unit = v;
        } else if (field_skip(r, &c, wt)) {
            return -1;
        }
    }
    uint32_t k = 0, sv = 0, ignored;
    if (string_index(r, key, "a label key", &k) || string_index(r, str, "a label", &sv) ||
        string_index(r, unit, "a label unit", &ignored))
        return -1;
    /* Every sample repeats the same keys: remember which indexes spell "thread", "bytes", "pid"
     * (a table may hold a string twice, so others are still compared). */
    int kind = 0;
    if (k == r->thread_key)
        kind = 1;
    else if (k == r->bytes_key)
        kind = 2;
    else if (k == r->pid_key)
        kind = 3;
    else if (strcmp(r->p->strings[k], "thread") == 0)
        kind = 1, r->thread_key = k;
    else if (strcmp(r->p->strings[k], "bytes") == 0)
        kind = 2, r->bytes_key = k;
    else if (strcmp(r->p->strings[k], "pid") == 0)
        kind = 3, r->pid_key = k;
    if (sv && kind == 1)
        s->thread = sv;
    else if (!sv && kind == 2)
        s->block_bytes = (int64_t)num;
    else if (!sv && kind == 3 && num >= 1 && num <= INT32_MAX) /* another range: no pid */
        s->pid = (int64_t)num;
    return 0;
}

/* A part's stack_locs slice is counted before it is decoded, with the structure sample_decode
 * follows; a sample that overruns it means the count and the decoding disagree. */
static int count_mismatch(struct reader *r, size_t sample)
{
    return invalid(r, "sample %zu has more locations than counted", sample + 1);
}

/* Appends one location id, mapped to its index, to the current sample's stack, which starts
 * at stack_locs[first]. */
static inline int stack_push(struct reader *r, uint64_t id, size_t sample, size_t first)
{
    int64_t i = id_map_find(&r->locations, id);
    if (i < 0)
        return invalid(r, "sample %zu refers to location id %" PRIu64 ", which is not defined",
                       sample + 1, id);
    if (r->loc_next - first == PROFILE_MAX_STACK_DEPTH)
        return invalid(r, "sample %zu is more than %d frames deep", sample + 1,
                       PROFILE_MAX_STACK_DEPTH);
    if (r->loc_next == r->loc_end)
        return count_mismatch(r, sample);
    r->p->stack_locs[r->loc_next++] = (uint32_t)i;
    return 0;
}

/* Appends a packed run of location ids to the sample's stack: the hot loop of a big profile
 * (tens of millions of ids), so ids of up to three bytes are decoded inline and the depth
 * limit and the part's end are checked against one bound per id. */
static int stack_run_decode(struct reader *r, struct cursor run, size_t sample, size_t first)
{
    uint32_t *locs = r->p->stack_locs;
    size_t n = r->loc_next, deepest = first + PROFILE_MAX_STACK_DEPTH;
    size_t limit = deepest < r->loc_end ? deepest : r->loc_end;
    const struct id_map *m = &r->locations;
    const uint8_t *q = run.p;
    while (q < run.end) {
        uint64_t id;
        /* Ids of one to three bytes without a branch on their length, which varies at
         * random in a big profile (the next two bytes may be read: they are in the input). */
        uint64_t more0 = q[0] >> 7, more1 = 0, more2 = 1;
        if (r->limit - q >= 3) {
            more1 = more0 & q[1] >> 7;
            more2 = more1 & q[2] >> 7;
        }
        if (!more2 && q + 1 + more0 + more1 <= run.end) {
            id = (uint64_t)(q[0] & 0x7f) | ((uint64_t)(q[1] & 0x7f) << 7 & -more0) |
                 ((uint64_t)q[2] << 14 & -more1);
            q += 1 + more0 + more1;
        } else {
            struct cursor c = {q, run.end};
            if (varint_read(r, &c, &id))
                return -1;
            q = c.p;
        }
        int64_t i = m->sequential ? (id - 1 < m->n ? (int64_t)(id - 1) : -1) : id_map_find(m, id);
        if (i < 0)
            return invalid(r, "sample %zu refers to location id %" PRIu64 ", which is not defined",
                           sample + 1, id);
        if (n == limit) {
            if (n == deepest)
                return invalid(r, "sample %zu is more than %d frames deep", sample + 1,
                               PROFILE_MAX_STACK_DEPTH);
            return count_mismatch(r, sample);
        }
        locs[n++] = (uint32_t)i;
    }
    r->loc_next = n;
    return 0;
}

static int sample_decode(struct reader *r, struct cursor c, size_t index)
{
    struct profile *p = r->p;
    size_t nt = p->n_sample_types, nv = 0, first = r->loc_next;
    int64_t *row = p->values + index * nt;
    struct profile_sample *s = &p->samples[index];
    *s = (struct profile_sample){.first_loc = (uint32_t)first};
    while (c.p < c.end) {
        uint32_t field;
        unsigned wt;
        uint64_t v;
        struct cursor sub;
        if (key_read(r, &c, &field, &wt))
            return -1;
        if (field == 1 || field == 2) {
            /* Repeated numbers: packed in one run (proto3's way) or one per field. */
            if (wt == WT_LEN) {
                if (len_read(r, &c, &sub))
                    return -1;
            } else if (wt == WT_VARINT) {
                sub = c;
            } else {
                return malformed(r, c.p, "sample %zu has a field of wire type %u", index + 1, wt);
            }
            if (field == 1 && wt == WT_LEN) {
                if (stack_run_decode(r, sub, index, first))
                    return -1;
                continue;
            }
            do {
                if (varint_read(r, &sub, &v))
                    return -1;
                if (field == 1) {
                    if (stack_push(r, v, index, first))
                        return -1;
                } else {
                    if (nv == nt)
                        return invalid(r, "sample %zu has more than %zu values", index + 1, nt);
                    row[nv++] = (int64_t)v;
                }
            } while (wt == WT_LEN && sub.p < sub.end);
            if (wt == WT_VARINT)
                c.p = sub.p;
        } else if (field == 3) {
            if (message_read(r, &c, wt, "a label", &sub) || label_decode(r, sub, s))
                return -1;
        } else if (field_skip(r, &c, wt)) {
            return -1;
        }
    }
    if (nv != nt)
        return invalid(r, "sample %zu has %zu values for %zu sample types", index + 1, nv, nt);
    s->n_locs = (uint32_t)(r->loc_next - first);
    return 0;
}

/* --- pass D in parts: the samples, decoded by several threads at once --- */

/* Pass D is most of decoding a big profile, and its samples are independent of each other:
 * the Sample fields are cut into parts at pass A's marks, as many as there are CPUs (at most
 * 8) for inputs of several megabytes, and each part is decoded by its own thread into its own
 * rows of samples and values. What stack_locs slice each part fills is known by first
 * counting every part's location ids (also in parallel: a cheap walk that counts the bytes
 * ending a number). The result does not depend on the number of parts: an error is the one
 * of the first sample in file order that has one, as in a single pass. */
#define MAX_PARTS JOBS_MAX

struct sample_part {
    struct reader r; /* a copy: its own error, label key cache and place in stack_locs */
    ms_error err;
    struct cursor walk; /* from the part's first Sample field to the end of the message */
    size_t first, n;    /* its samples */
    size_t n_locs;      /* location ids counted in them */
    int rc;
};

/* The number of varints in a packed run: one per byte without the continuation bit, eight
 * bytes at a time. */
static size_t varints_count(const uint8_t *p, const uint8_t *end)
{
    size_t n = 0;
    for (; end - p >= 8; p += 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        uint64_t last = ~w & 0x8080808080808080ull;
        n += (size_t)(((last >> 7) * 0x0101010101010101ull) >> 56);
    }
    for (; p < end; p++)
        n += *p < 0x80;
    return n;
}

/* Counts the location ids of a part's samples with the structure sample_decode follows, up to
 * the first fault (decoding stops there too, and reports it). */
static void *part_count(void *arg)
{
    struct sample_part *part = arg;
    struct reader *r = &part->r;
    struct cursor c = part->walk;
    size_t done = 0, ids = 0;
    while (done < part->n && c.p < c.end) {
        uint32_t field;
        unsigned wt;
        struct cursor sub, run;
        if (key_read(r, &c, &field, &wt) || (field == P_SAMPLE && len_read(r, &c, &sub)) ||
            (field != P_SAMPLE && field_skip(r, &c, wt)))
            break; /* cannot happen: pass A checked the top level */
        if (field != P_SAMPLE)
            continue;
        done++;
        while (sub.p < sub.end) {
            uint64_t v;
            if (key_read(r, &sub, &field, &wt))
                goto out;
            if (field == 1 && wt == WT_LEN) {
                if (len_read(r, &sub, &run))
                    goto out;
                ids += varints_count(run.p, run.end);
            } else if (field == 1 && wt == WT_VARINT) {
                if (varint_read(r, &sub, &v))
                    goto out;
                ids++;
            } else if (field_skip(r, &sub, wt)) {
                goto out;
            }
        }
    }
out:
    part->n_locs = ids;
    return NULL;
}

static void *part_decode(void *arg)
{
    struct sample_part *part = arg;
    struct reader *r = &part->r;
    struct cursor c = part->walk;
    size_t done = 0;
    part->rc = 0;
    while (done < part->n && c.p < c.end) {
        uint32_t field;
        unsigned wt;
        struct cursor sub;
        key_read(r, &c, &field, &wt); /* structure already checked by pass A */
        if (field != P_SAMPLE) {
            field_skip(r, &c, wt);
            continue;
        }
        len_read(r, &c, &sub);
        if (sample_decode(r, sub, part->first + done)) {
            part->rc = -1;
            return NULL;
        }
        done++;
    }
    /* Neither can happen: pass A counted the samples, part_count their locations. */
    if (done < part->n)
        part->rc = invalid(r, "its samples changed between two readings");
    else if (r->loc_next != r->loc_end)
        part->rc = invalid(r, "its samples have fewer locations than counted");
    return NULL;
}

static int pass_samples(struct reader *r, struct cursor all)
{
    struct profile *p = r->p;
    if (r->n_samples == 0)
        return 0;
    /* Cut at the marks nearest to equal shares of the Sample bytes. */
    size_t want = r->parts.max_parts > MAX_PARTS ? MAX_PARTS : r->parts.max_parts;
    if (want > r->sample_bytes / r->parts.min_bytes)
        want = r->sample_bytes / r->parts.min_bytes;
    if (want < 1)
        want = 1;
    struct sample_part parts[MAX_PARTS];
    size_t n = 0;
    for (size_t k = 0, m = 0; k < want; k++) {
        size_t target = r->sample_bytes / want * k;
        while (m < r->n_marks && r->marks[m].bytes_before < target)
            m++;
        if (m == r->n_marks || (n && r->marks[m].sample == parts[n - 1].first))
            continue;
        parts[n] = (struct sample_part){
            .r = *r, .walk = {r->marks[m].at, all.end}, .first = r->marks[m].sample};
        parts[n].r.err = &parts[n].err;
        n++;
    }
    for (size_t k = 0; k < n; k++)
        parts[k].n = (k + 1 < n ? parts[k + 1].first : r->n_samples) - parts[k].first;

    jobs_run(part_count, parts, sizeof *parts, n);
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        parts[k].r.loc_next = total;
        total += parts[k].n_locs;
        parts[k].r.loc_end = total;
    }
    p->stack_locs = malloc((total + 1) * sizeof *p->stack_locs);
    if (!p->stack_locs)
        return nomem(r);
    jobs_run(part_decode, parts, sizeof *parts, n);
    for (size_t k = 0; k < n; k++)
        if (parts[k].rc) {
            *r->err = parts[k].err;
            return -1;
        }
    p->n_samples = r->n_samples;
    p->n_stack_locs = total;
    return 0;
}

/* --- after the passes: comments --- */

/* Parses memsnap's comments into the metadata and the timeline and keeps the others. Runs
 * last: metadata strings may be appended to the string table, which earlier passes index. */
static int comments_sort(struct reader *r)
{
    struct profile *p = r->p;
    size_t room = META_STRING_ROOM, cap_timeline = 0, cap_processes = 0;
    for (size_t i = 0; i < r->n_all_comments; i++) {
        const char *text = p->strings[r->comments[i]];
        if (strncmp(text, MEMSNAP_COMMENT_PREFIX, strlen(MEMSNAP_COMMENT_PREFIX)) != 0)
            p->comments[p->n_comments++] = r->comments[i];
        else if (comment_parse(p, text, &room, &cap_timeline, &cap_processes))
            return nomem(r);
    }
    return 0;
}

/* --- the whole --- */

static int decode(struct reader *r, const uint8_t *buf, size_t len)
{
    struct profile *p = r->p;
    struct cursor all = {buf, buf + len};
    if (pass_strings(r, all))
        return -1;

    /* Every array is sized from pass A's counts; each entry took at least two bytes of
     * input, so none of this can exceed a small multiple of the file. */
    size_t nf = r->n_functions + r->n_bare_locations;
    p->sample_types = malloc((r->n_sample_types + 1) * sizeof *p->sample_types);
    p->functions = malloc((nf + 1) * sizeof *p->functions);
    p->locations = malloc((r->n_locations + 1) * sizeof *p->locations);
    p->samples = malloc((r->n_samples + 1) * sizeof *p->samples);
    p->comments = malloc((r->max_comments + 1) * sizeof *p->comments);
    r->comments = malloc((r->max_comments + 1) * sizeof *r->comments);
    uint64_t *fn_ids = malloc((r->n_functions + 1) * sizeof *fn_ids);
    uint64_t *loc_ids = malloc((r->n_locations + 1) * sizeof *loc_ids);
    int rc = -1;
    if (!p->sample_types || !p->functions || !p->locations || !p->samples || !p->comments ||
        !r->comments || !fn_ids || !loc_ids) {
        nomem(r);
        goto out;
    }
    if (pass_small(r, all, fn_ids) ||
        id_map_build(r, &r->functions, fn_ids, p->n_functions, "function"))
        goto out;
    if (pass_locations(r, all, loc_ids))
        goto out;
    if (id_map_build(r, &r->locations, loc_ids, p->n_locations, "location"))
        goto out;

    size_t nt = p->n_sample_types;
    if (r->n_samples > len / nt) { /* each value takes a byte: no file can hold more */
        invalid(r, "%zu samples of %zu values cannot fit in %zu bytes", r->n_samples, nt, len);
        goto out;
    }
    p->values = malloc((r->n_samples * nt + 1) * sizeof *p->values);
    if (!p->values) {
        nomem(r);
        goto out;
    }
    if (pass_samples(r, all) || comments_sort(r))
        goto out;
    rc = 0;
out:
    free(fn_ids);
    free(loc_ids);
    return rc;
}

int profile_decode(const uint8_t *buf, size_t len, const char *what, int gzipped,
                   struct profile **out, ms_error *err)
{
    struct decode_parts parts = {
        .max_parts = (size_t)jobs_cpus(),
        .min_bytes = DECODE_PART_MIN_BYTES,
        .mark_every = DECODE_MARK_EVERY,
    };
    return profile_decode_parts(buf, len, what, gzipped, &parts, out, err);
}

int profile_decode_parts(const uint8_t *buf, size_t len, const char *what, int gzipped,
                         const struct decode_parts *parts, struct profile **out, ms_error *err)
{
    *out = NULL;
    if (len == 0)
        return ms_error_set(err, "%s is not a pprof profile: it is empty", what);
    struct reader r = {
        .base = buf, .limit = buf + len, .what = what, .gzipped = gzipped, .err = err};
    r.parts = *parts;
    if (r.parts.max_parts < 1)
        r.parts.max_parts = 1;
    if (r.parts.min_bytes < 1)
        r.parts.min_bytes = 1;
    if (r.parts.mark_every < 1)
        r.parts.mark_every = 1;
    r.p = calloc(1, sizeof *r.p);
    if (!r.p)
        return nomem(&r);
    int rc = decode(&r, buf, len);
    id_map_free(&r.functions);
    id_map_free(&r.locations);
    free(r.comments);
    free(r.marks);
    if (rc) {
        profile_free(r.p);
        return -1;
    }
    *out = r.p;
    return 0;
}
