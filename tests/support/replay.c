/*
 * replay.c - recording and replaying the remote reads of a dump; see replay.h.
 *
 * Recording keeps every range in the order it was read; saving merges them into disjoint
 * segments (overlapping or touching ranges join, later contents win), which keeps fixtures
 * small: a frame read twice is stored once.
 */
#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "pycode.h"
#include "pythreads.h"
#include "remote.h"

struct range {
    uint64_t addr;
    size_t len;
    uint8_t *data;
};

struct replay {
    struct pyruntime facts;
    char *expect;
    struct range *raw; /* recorded, in read order */
    size_t nraw, capraw;
    struct range *seg; /* merged, sorted, disjoint */
    size_t nseg;
};

struct replay *replay_new(void)
{
    return calloc(1, sizeof(struct replay));
}

static void free_ranges(struct range *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].data);
    free(v);
}

void replay_free(struct replay *r)
{
    if (!r)
        return;
    free(r->expect);
    free_ranges(r->raw, r->nraw);
    free_ranges(r->seg, r->nseg);
    free(r);
}

void replay_set_facts(struct replay *r, const struct pyruntime *rt)
{
    r->facts = *rt;
    r->facts.off = NULL;
}

void replay_set_expect(struct replay *r, const char *text)
{
    free(r->expect);
    r->expect = strdup(text);
}

struct pyruntime *replay_facts(struct replay *r)
{
    return &r->facts;
}

const char *replay_expect(const struct replay *r)
{
    return r->expect ? r->expect : "";
}

size_t replay_bytes(const struct replay *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nseg; i++)
        n += r->seg[i].len;
    return n;
}

static void observe(void *ctx, const struct remote_iov *iov, int n)
{
    struct replay *r = ctx;
    for (int i = 0; i < n; i++) {
        if (!iov[i].len)
            continue;
        if (r->nraw == r->capraw) {
            size_t cap = r->capraw ? r->capraw * 2 : 256;
            struct range *v = realloc(r->raw, cap * sizeof *v);
            if (!v)
                abort();
            r->raw = v;
            r->capraw = cap;
        }
        uint8_t *d = malloc(iov[i].len);
        if (!d)
            abort();
        memcpy(d, iov[i].buf, iov[i].len);
        r->raw[r->nraw++] = (struct range){iov[i].addr, iov[i].len, d};
    }
}

void replay_record_start(struct replay *r)
{
    remote_set_observer(observe, r);
}

void replay_record_stop(void)
{
    remote_set_observer(NULL, NULL);
}

static int by_addr(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Merges r->raw into r->seg (later reads win where they overlap). */
static int merge(struct replay *r)
{
    if (!r->nraw)
        return 0;
    struct range *sorted = malloc(r->nraw * sizeof *sorted);
    struct range *seg = calloc(r->nraw, sizeof *seg);
    if (!sorted || !seg)
        abort();
    memcpy(sorted, r->raw, r->nraw * sizeof *sorted);
    qsort(sorted, r->nraw, sizeof *sorted, by_addr);
    size_t n = 0;
    for (size_t i = 0; i < r->nraw; i++) {
        uint64_t end = sorted[i].addr + sorted[i].len;
        if (n && sorted[i].addr <= seg[n - 1].addr + seg[n - 1].len) {
            if (end > seg[n - 1].addr + seg[n - 1].len)
                seg[n - 1].len = (size_t)(end - seg[n - 1].addr);
        } else {
            seg[n++] = (struct range){sorted[i].addr, sorted[i].len, NULL};
        }
    }
    free(sorted);
    for (size_t i = 0; i < n; i++)
        if (!(seg[i].data = calloc(1, seg[i].len)))
            abort();
    free_ranges(r->seg, r->nseg);
    r->seg = seg;
    r->nseg = n;
    for (size_t i = 0; i < r->nraw; i++) /* in read order: the last read wins */
        replay_poke(r, r->raw[i].addr, r->raw[i].data, r->raw[i].len);
    return 0;
}

/* The segment holding [addr, addr+len), or NULL. */
static struct range *find(const struct replay *r, uint64_t addr, size_t len)
{
    size_t lo = 0, hi = r->nseg;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->seg[mid].addr + r->seg[mid].len <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->nseg && r->seg[lo].addr <= addr && addr + len <= r->seg[lo].addr + r->seg[lo].len)
        return &r->seg[lo];
    return NULL;
}

int replay_poke(struct replay *r, uint64_t addr, const void *bytes, size_t n)
{
    struct range *s = find(r, addr, n);
    if (!s)
        return -1;
    memcpy(s->data + (addr - s->addr), bytes, n);
    return 0;
}

int replay_peek(const struct replay *r, uint64_t addr, void *bytes, size_t n)
{
    const struct range *s = find(r, addr, n);
    if (!s)
        return -1;
    memcpy(bytes, s->data + (addr - s->addr), n);
    return 0;
}

static void put_fact(FILE *f, const char *name, uint64_t v)
{
    fprintf(f, "fact %s 0x%" PRIx64 "\n", name, v);
}

int replay_save(struct replay *r, const char *path)
{
    merge(r);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const struct pyruntime *t = &r->facts;
    fprintf(f, "memsnap-replay 1\n");
    fprintf(f, "fact version %d.%d.%d\n", t->major, t->minor, t->micro);
    put_fact(f, "version_hex", t->version_hex);
    put_fact(f, "pid", (uint64_t)t->pid);
    put_fact(f, "runtime_addr", t->runtime_addr);
    put_fact(f, "runtime_size", t->runtime_size);
    put_fact(f, "pycode_type", t->pycode_type);
    put_fact(f, "unicode_type", t->unicode_type);
    put_fact(f, "bytes_type", t->bytes_type);
    put_fact(f, "load_bias", t->load_bias);
    put_fact(f, "shared", (uint64_t)t->shared);
    fprintf(f, "fact path %s\n", t->path);
    fprintf(f, "fact version_source %s\n", t->version_source);
    const char *e = replay_expect(r);
    while (*e) {
        const char *nl = strchr(e, '\n');
        size_t k = nl ? (size_t)(nl - e) : strlen(e);
        fprintf(f, "expect %.*s\n", (int)k, e);
        e += k + (nl != NULL);
    }
    for (size_t i = 0; i < r->nseg; i++) {
        fprintf(f, "mem 0x%" PRIx64 " %zu\n", r->seg[i].addr, r->seg[i].len);
        for (size_t k = 0; k < r->seg[i].len; k++)
            fprintf(f, "%02x%s", r->seg[i].data[k],
                    (k % 32 == 31 || k + 1 == r->seg[i].len) ? "\n" : "");
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

struct replay *replay_load(const char *path, ms_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ms_error_errno(err, errno, "opening %s", path);
        return NULL;
    }
    struct replay *r = replay_new();
    char *line = NULL, *expect = NULL;
    size_t cap = 0, elen = 0, lineno = 0;
    ssize_t k;
    struct range *cur = NULL;
    size_t filled = 0, segcap = 0;
    int ok = 1;
    while (ok && (k = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (k && line[k - 1] == '\n')
            line[--k] = 0;
        if (cur && filled < cur->len) { /* hex of the current segment */
            if (k % 2)
                ok = 0;
            for (ssize_t i = 0; i + 1 < k && ok; i += 2) {
                int hi = hexval(line[i]), lo = hexval(line[i + 1]);
                if (hi < 0 || lo < 0 || filled >= cur->len)
                    ok = 0;
                else
                    cur->data[filled++] = (uint8_t)(hi << 4 | lo);
            }
            continue;
        }
        if (lineno == 1) {
            ok = !strcmp(line, "memsnap-replay 1");
        } else if (!strncmp(line, "expect ", 7)) {
            char *n = realloc(expect, elen + (size_t)k + 2);
            if (!n)
                abort();
            expect = n;
            memcpy(expect + elen, line + 7, (size_t)k - 7);
            elen += (size_t)k - 7;
            expect[elen++] = '\n';
            expect[elen] = 0;
        } else if (!strncmp(line, "mem ", 4)) {
            uint64_t addr;
            size_t len;
            if (sscanf(line + 4, "%" SCNx64 " %zu", &addr, &len) != 2 || len == 0 ||
                len > (16u << 20)) {
                ok = 0;
                break;
            }
            if (r->nseg == segcap) {
                segcap = segcap ? segcap * 2 : 64;
                struct range *v = realloc(r->seg, segcap * sizeof *v);
                if (!v)
                    abort();
                r->seg = v;
            }
            cur = &r->seg[r->nseg++];
            *cur = (struct range){addr, len, malloc(len)};
            if (!cur->data)
                abort();
            filled = 0;
        } else if (!strncmp(line, "fact ", 5)) {
            struct pyruntime *t = &r->facts;
            char name[32];
            int off = 0;
            if (sscanf(line + 5, "%31s %n", name, &off) != 1) {
                ok = 0;
                break;
            }
            const char *v = line + 5 + off;
            uint64_t x = strtoull(v, NULL, 0);
            if (!strcmp(name, "version"))
                ok = sscanf(v, "%d.%d.%d", &t->major, &t->minor, &t->micro) == 3;
            else if (!strcmp(name, "version_hex"))
                t->version_hex = (uint32_t)x;
            else if (!strcmp(name, "pid"))
                t->pid = (pid_t)x;
            else if (!strcmp(name, "runtime_addr"))
                t->runtime_addr = x;
            else if (!strcmp(name, "runtime_size"))
                t->runtime_size = x;
            else if (!strcmp(name, "pycode_type"))
                t->pycode_type = x;
            else if (!strcmp(name, "unicode_type"))
                t->unicode_type = x;
            else if (!strcmp(name, "bytes_type"))
                t->bytes_type = x;
            else if (!strcmp(name, "load_bias"))
                t->load_bias = x;
            else if (!strcmp(name, "shared"))
                t->shared = (int)x;
            else if (!strcmp(name, "path"))
                snprintf(t->path, sizeof t->path, "%s", v);
            else if (!strcmp(name, "version_source"))
                snprintf(t->version_source, sizeof t->version_source, "%s", v);
        } else if (line[0]) {
            ok = 0;
        }
    }
    if (cur && filled != cur->len)
        ok = 0;
    for (size_t i = 1; ok && i < r->nseg; i++) /* sorted and disjoint, as saved */
        if (r->seg[i].addr < r->seg[i - 1].addr + r->seg[i - 1].len)
            ok = 0;
    free(line);
    fclose(f);
    r->expect = expect;
    if (!ok || !r->facts.major) {
        ms_error_set(err, "%s: not a valid replay recording (line %zu)", path, lineno);
        replay_free(r);
        return NULL;
    }
    snprintf(r->facts.comm, sizeof r->facts.comm, "replay");
    return r;
}

static int serve(void *ctx, pid_t pid, const struct remote_iov *iov, int n, ms_error *err)
{
    struct replay *r = ctx;
    for (int i = 0; i < n; i++) {
        if (!iov[i].len)
            continue;
        struct range *s = find(r, iov[i].addr, iov[i].len);
        if (!s) {
            ms_error_set(err,
                         "reading %zu bytes at 0x%" PRIx64 " of process %d: not in the recording",
                         iov[i].len, iov[i].addr, (int)pid);
            errno = EFAULT;
            return -1;
        }
        memcpy(iov[i].buf, s->data + (iov[i].addr - s->addr), iov[i].len);
    }
    return 0;
}

int replay_dump(struct replay *r, char **text, ms_error *err)
{
    *text = NULL;
    if (r->nraw && !r->nseg)
        merge(r);
    struct pyruntime *rt = malloc(sizeof *rt);
    if (!rt)
        return ms_error_set(err, "out of memory");
    *rt = r->facts;
    rt->replayed = 1;
    remote_set_source(serve, r);
    int rc = -1;
    struct pycode_cache *cc = NULL;
    if (pyruntime_finish(rt, err) == 0 && (cc = pycode_cache_new(rt))) {
        struct pythreads ts;
        if (pythreads_snapshot(rt, cc, &ts, err) == 0) {
            size_t len = 0;
            FILE *f = open_memstream(text, &len);
            if (f) {
                dump_print_text(f, &ts, NULL, 0);
                fclose(f);
                rc = 0;
            }
            pythreads_free(&ts);
        }
    }
    remote_set_source(NULL, NULL);
    pycode_cache_free(cc);
    free(rt);
    return rc;
}

char *replay_normalize(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        abort();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t k = nl ? (size_t)(nl - p) : strlen(p);
        if (!strncmp(p, "Thread ", 7)) {
            o += sprintf(o, "Thread");
            if (memmem(p, k, "(main)", 6))
                o += sprintf(o, " (main)");
        } else {
            memcpy(o, p, k);
            o += k;
        }
        if (nl)
            *o++ = '\n';
        p += k + (nl != NULL);
    }
    *o = 0;
    return out;
}
