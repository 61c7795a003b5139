/*
 * pycode.c - resolving code objects of the target into names, files and line tables; see
 * pycode.h.
 *
 * A batch is resolved in three rounds of process_vm_readv, one per level of indirection:
 *   1. the code object headers (type, name/qualname/filename/linetable pointers, first line),
 *   2. the str headers of the names and the bytes header of the line table,
 *   3. the characters and the table bytes.
 * When a round fails (one garbage pointer makes the whole readv fail), the batch falls back
 * to resolving its objects one at a time, so one bad frame never hides the others.
 */
#include "pycode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"
#include "pystring.h"
#include "remote.h"

/* Offset of tp_name in PyTypeObject (ob_refcnt, ob_type, ob_size, then tp_name) on every
 * supported version. */
#define TYPE_TP_NAME 24
#define CODE_HDR_MAX 512
#define STR_HDR_MAX  128

struct code_sig {
    uint64_t type, name, filename, linetable;
    int32_t firstlineno;
};

struct entry {
    struct pycode_info info; /* first: callers get &entry->info */
    uint64_t addr;
    struct code_sig sig;
    unsigned epoch;
    struct entry *retired_next;
};

struct pycode_cache {
    const struct pyruntime *rt;
    uint64_t code_type; /* rt->pycode_type, or learned from tp_name */
    unsigned epoch;
    struct entry **slots; /* open addressing by addr */
    size_t nslots, count;
    struct entry *retired; /* replaced entries, freed with the cache */
};

/* One code object being resolved. */
struct job {
    uint64_t addr;
    int failed;
    uint8_t hdr[CODE_HDR_MAX];
    struct code_sig sig;
    uint8_t name_hdr[STR_HDR_MAX], file_hdr[STR_HDR_MAX];
    uint8_t table_hdr[32]; /* PyBytesObject header: ob_type, ob_size */
    struct pystr_info name_s, file_s;
    int64_t table_len;
    uint8_t *name_data, *file_data, *table_data;
    size_t name_bytes, file_bytes;
    ms_error err;
};

struct pycode_cache *pycode_cache_new(const struct pyruntime *rt)
{
    struct pycode_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rt = rt;
    c->code_type = rt->pycode_type;
    c->epoch = 1;
    c->nslots = 256;
    c->slots = calloc(c->nslots, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

void pycode_cache_free(struct pycode_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nslots; i++)
        free(c->slots[i]);
    while (c->retired) {
        struct entry *n = c->retired->retired_next;
        free(c->retired);
        c->retired = n;
    }
    free(c->slots);
    free(c);
}

void pycode_cache_epoch(struct pycode_cache *c)
{
    c->epoch++;
}

size_t pycode_cache_size(const struct pycode_cache *c)
{
    return c->count;
}

static size_t slot_of(const struct pycode_cache *c, uint64_t addr)
{
    uint64_t h = addr * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (c->nslots - 1);
    while (c->slots[i] && c->slots[i]->addr != addr)
        i = (i + 1) & (c->nslots - 1);
    return i;
}

static int cache_grow(struct pycode_cache *c)
{
    struct entry **old = c->slots;
    size_t oldn = c->nslots;
    c->slots = calloc(oldn * 2, sizeof *c->slots);
    if (!c->slots) {
        c->slots = old;
        return -1;
    }
    c->nslots = oldn * 2;
    for (size_t i = 0; i < oldn; i++)
        if (old[i])
            c->slots[slot_of(c, old[i]->addr)] = old[i];
    free(old);
    return 0;
}

static int cache_put(struct pycode_cache *c, struct entry *e)
{
    if ((c->count + 1) * 2 > c->nslots && cache_grow(c))
        return -1;
    size_t i = slot_of(c, e->addr);
    if (c->slots[i]) {
        c->slots[i]->retired_next = c->retired;
        c->retired = c->slots[i];
    } else {
        c->count++;
    }
    c->slots[i] = e;
    return 0;
}

static uint64_t get_u64(const uint8_t *p, int32_t off)
{
    uint64_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}

static int32_t get_i32(const uint8_t *p, int32_t off)
{
    int32_t v;
    memcpy(&v, p + off, sizeof v);
    return v;
}

static size_t code_hdr_len(const struct py_offsets *o)
{
    int32_t end = o->code_size;
    if (end <= 0 || end > CODE_HDR_MAX)
        end = CODE_HDR_MAX;
    return (size_t)end;
}

static size_t str_hdr_len(const struct py_offsets *o)
{
    int32_t n = o->unicode_data_ptr + 8;
    if (o->unicode_compact_size > n)
        n = o->unicode_compact_size;
    return n > STR_HDR_MAX ? STR_HDR_MAX : (size_t)n;
}

/* Learns PyCode_Type from a candidate's type object when the symbol is missing. */
static int is_code_type(struct pycode_cache *c, uint64_t type, ms_error *err)
{
    if (c->code_type)
        return type == c->code_type;
    uint64_t namep;
    char name[8] = {0};
    if (!type || remote_read(c->rt->pid, type + TYPE_TP_NAME, &namep, 8, err) ||
        remote_read(c->rt->pid, namep, name, 5, err))
        return 0;
    if (memcmp(name, "code", 5))
        return 0;
    c->code_type = type;
    return 1;
}

/* Extracts and checks the signature from a read code header. */
static int parse_code(struct pycode_cache *c, struct job *j)
{
    const struct py_offsets *o = c->rt->off;
    j->sig.type = get_u64(j->hdr, o->object_type);
    if (!is_code_type(c, j->sig.type, &j->err)) {
        if (errno == ESRCH)
            return -1;
        return ms_error_set(&j->err, "0x%llx is not a code object", (unsigned long long)j->addr);
    }
    j->sig.name = get_u64(j->hdr, o->code_qualname >= 0 ? o->code_qualname : o->code_name);
    j->sig.filename = get_u64(j->hdr, o->code_filename);
    j->sig.linetable = get_u64(j->hdr, o->code_linetable >= 0 ? o->code_linetable : o->code_lnotab);
    j->sig.firstlineno = get_i32(j->hdr, o->code_firstlineno);
    if (!j->sig.name || !j->sig.filename)
        return ms_error_set(&j->err, "code object 0x%llx has no name or file name",
                            (unsigned long long)j->addr);
    return 0;
}

static int parse_str(struct pycode_cache *c, struct job *j, uint64_t addr, const uint8_t *hdr,
                     struct pystr_info *s, uint8_t **data, size_t *bytes)
{
    const struct py_offsets *o = c->rt->off;
    if (c->rt->unicode_type && get_u64(hdr, o->object_type) != c->rt->unicode_type)
        return ms_error_set(&j->err, "0x%llx is not a str object", (unsigned long long)addr);
    if (pystr_parse(o, addr, hdr, str_hdr_len(o), s, &j->err))
        return -1;
    int64_t len = s->length;
    if (len * s->kind > PYCODE_NAME_MAX) /* keep the start of an absurdly long name */
        len = PYCODE_NAME_MAX / s->kind;
    s->length = len;
    *bytes = (size_t)(len * s->kind);
    *data = malloc(*bytes ? *bytes : 1);
    if (!*data)
        return ms_error_set(&j->err, "out of memory");
    return 0;
}

static int parse_table(struct pycode_cache *c, struct job *j)
{
    const struct py_offsets *o = c->rt->off;
    j->table_len = 0;
    if (!j->sig.linetable)
        return 0;
    if (c->rt->bytes_type && get_u64(j->table_hdr, o->object_type) != c->rt->bytes_type)
        return ms_error_set(&j->err, "the line table of code 0x%llx is not a bytes object",
                            (unsigned long long)j->addr);
    int64_t n = (int64_t)get_u64(j->table_hdr, o->varobject_size);
    if (n < 0 || n > PYCODE_LINETABLE_MAX)
        return ms_error_set(&j->err, "the line table of code 0x%llx has an absurd size %lld",
                            (unsigned long long)j->addr, (long long)n);
    j->table_len = n;
    j->table_data = malloc(n ? (size_t)n : 1);
    return j->table_data ? 0 : ms_error_set(&j->err, "out of memory");
}

/* Worst-case UTF-8 size of a decoded name, plus NUL. */
static size_t utf8_room(const struct pystr_info *s)
{
    return (size_t)s->length * (s->kind == 1 ? 2 : s->kind == 2 ? 3 : 4) + 1;
}

static struct entry *build_entry(struct job *j)
{
    size_t nroom = utf8_room(&j->name_s), froom = utf8_room(&j->file_s);
    size_t total = sizeof(struct entry) + (size_t)j->table_len + nroom + froom;
    struct entry *e = calloc(1, total);
    if (!e)
        return NULL;
    uint8_t *p = (uint8_t *)(e + 1);
    memcpy(p, j->table_data, (size_t)j->table_len);
    e->info.linetable = p;
    e->info.linetable_len = (size_t)j->table_len;
    char *name = (char *)p + j->table_len, *file = name + nroom;
    if (pystr_to_utf8(j->name_data, j->name_s.length, j->name_s.kind, name, nroom) < 0)
        snprintf(name, nroom, "?");
    if (pystr_to_utf8(j->file_data, j->file_s.length, j->file_s.kind, file, froom) < 0)
        snprintf(file, froom, "?");
    e->info.name = name;
    e->info.filename = file;
    e->info.firstlineno = j->sig.firstlineno;
    e->addr = j->addr;
    e->sig = j->sig;
    return e;
}

static void job_release(struct job *j)
{
    free(j->name_data);
    free(j->file_data);
    free(j->table_data);
    j->name_data = j->file_data = j->table_data = NULL;
}

/* Reads one round for jobs[0..n) (the iov builder adds 0-3 ranges per live job). On a failed
 * batch, returns -1 so the caller retries job by job. */
typedef int (*round_fn)(struct pycode_cache *c, struct job *j, struct remote_iov *iov);

static int run_round(struct pycode_cache *c, struct job *jobs, size_t n, round_fn add,
                     struct remote_iov *iov, ms_error *err)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (!jobs[i].failed)
            k += add(c, &jobs[i], iov + k);
    if (k == 0)
        return 0;
    return remote_readv(c->rt->pid, iov, k, err);
}

static int add_code_hdr(struct pycode_cache *c, struct job *j, struct remote_iov *iov)
{
    iov[0] = (struct remote_iov){j->addr, j->hdr, code_hdr_len(c->rt->off)};
    return 1;
}

static int add_str_hdrs(struct pycode_cache *c, struct job *j, struct remote_iov *iov)
{
    size_t h = str_hdr_len(c->rt->off);
    iov[0] = (struct remote_iov){j->sig.name, j->name_hdr, h};
    iov[1] = (struct remote_iov){j->sig.filename, j->file_hdr, h};
    if (!j->sig.linetable)
        return 2;
    iov[2] = (struct remote_iov){j->sig.linetable, j->table_hdr, sizeof j->table_hdr};
    return 3;
}

static int add_data(struct pycode_cache *c, struct job *j, struct remote_iov *iov)
{
    int k = 0;
    iov[k++] = (struct remote_iov){j->name_s.data_addr, j->name_data, j->name_bytes};
    iov[k++] = (struct remote_iov){j->file_s.data_addr, j->file_data, j->file_bytes};
    if (j->table_len)
        iov[k++] = (struct remote_iov){j->sig.linetable + (uint64_t)c->rt->off->bytes_sval,
                                       j->table_data, (size_t)j->table_len};
    return k;
}

static void after_code_hdr(struct pycode_cache *c, struct job *j)
{
    if (parse_code(c, j))
        j->failed = 1;
}

static void after_str_hdrs(struct pycode_cache *c, struct job *j)
{
    if (parse_str(c, j, j->sig.name, j->name_hdr, &j->name_s, &j->name_data, &j->name_bytes) ||
        parse_str(c, j, j->sig.filename, j->file_hdr, &j->file_s, &j->file_data, &j->file_bytes) ||
        parse_table(c, j))
        j->failed = 1;
}

/* Runs the three rounds for jobs; batched, or one job at a time after a batch failure. */
static int resolve_jobs(struct pycode_cache *c, struct job *jobs, size_t n, struct remote_iov *iov,
                        ms_error *err)
{
    static const round_fn adds[3] = {add_code_hdr, add_str_hdrs, add_data};
    for (int r = 0; r < 3; r++) {
        ms_error e;
        if (run_round(c, jobs, n, adds[r], iov, &e)) {
            if (errno == ESRCH) {
                if (err)
                    *err = e;
                return -1;
            }
            if (n == 1) {
                jobs[0].err = e;
                jobs[0].failed = 1;
                return 0;
            }
            for (size_t i = 0; i < n; i++) { /* find the bad ones */
                if (jobs[i].failed)
                    continue;
                if (run_round(c, &jobs[i], 1, adds[r], iov, &jobs[i].err)) {
                    if (errno == ESRCH) {
                        if (err)
                            *err = jobs[i].err;
                        return -1;
                    }
                    jobs[i].failed = 1;
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].failed)
                continue;
            if (r == 0)
                after_code_hdr(c, &jobs[i]);
            else if (r == 1)
                after_str_hdrs(c, &jobs[i]);
        }
    }
    return 0;
}

static int sig_equal(const struct code_sig *a, const struct code_sig *b)
{
    return a->type == b->type && a->name == b->name && a->filename == b->filename &&
           a->linetable == b->linetable && a->firstlineno == b->firstlineno;
}

int pycode_resolve_many(struct pycode_cache *c, const uint64_t *addrs, size_t n,
                        const struct pycode_info **out, ms_error *err)
{
    size_t nstale = 0, nnew = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        struct entry *e = c->slots[slot_of(c, addrs[i])];
        if (e && e->epoch == c->epoch)
            out[i] = &e->info;
        else if (e)
            nstale++;
        else if (addrs[i])
            nnew++;
    }
    if (nstale + nnew == 0)
        return 0;
    size_t cap = nstale + nnew;
    struct job *jobs = calloc(cap, sizeof *jobs);
    struct remote_iov *iov = calloc(cap * 3, sizeof *iov);
    int rc = 0;
    if (!jobs || !iov) {
        rc = ms_error_set(err, "out of memory resolving %zu code objects", cap);
        goto out;
    }

    /* Stale entries: re-read the headers together; unchanged ones are current again. */
    size_t nj = 0;
    for (size_t i = 0; i < n; i++) {
        struct entry *e = c->slots[slot_of(c, addrs[i])];
        if (!out[i] && e && e->epoch != c->epoch) {
            size_t k;
            for (k = 0; k < nj && jobs[k].addr != addrs[i]; k++)
                ;
            if (k == nj)
                jobs[nj++].addr = addrs[i];
        }
    }
    if (nj) {
        ms_error e1;
        if (run_round(c, jobs, nj, add_code_hdr, iov, &e1) == 0) {
            for (size_t k = 0; k < nj; k++) {
                struct entry *e = c->slots[slot_of(c, jobs[k].addr)];
                if (parse_code(c, &jobs[k]) == 0 && sig_equal(&jobs[k].sig, &e->sig))
                    e->epoch = c->epoch;
            }
        } else if (errno == ESRCH) {
            if (err)
                *err = e1;
            rc = -1;
            goto out;
        }
        /* Whatever did not revalidate (or a failed batch) is resolved from scratch below. */
    }

    /* New and changed objects, each address once. */
    memset(jobs, 0, cap * sizeof *jobs);
    nj = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i] || !addrs[i])
            continue;
        struct entry *e = c->slots[slot_of(c, addrs[i])];
        if (e && e->epoch == c->epoch) {
            out[i] = &e->info;
            continue;
        }
        size_t k;
        for (k = 0; k < nj && jobs[k].addr != addrs[i]; k++)
            ;
        if (k == nj)
            jobs[nj++].addr = addrs[i];
    }
    if (resolve_jobs(c, jobs, nj, iov, err)) {
        rc = -1;
        goto out;
    }
    int reported = 0;
    for (size_t k = 0; k < nj; k++) {
        struct job *j = &jobs[k];
        if (j->failed) {
            if (!reported && err) {
                *err = j->err;
                reported = 1;
            }
            continue;
        }
        struct entry *e = build_entry(j);
        if (!e || cache_put(c, e)) {
            free(e);
            rc = ms_error_set(err, "out of memory caching code objects");
            goto out;
        }
        e->epoch = c->epoch;
    }
    for (size_t i = 0; i < n; i++) {
        if (out[i] || !addrs[i])
            continue;
        struct entry *e = c->slots[slot_of(c, addrs[i])];
        if (e && e->epoch == c->epoch)
            out[i] = &e->info;
    }
out:
    if (jobs)
        for (size_t k = 0; k < cap; k++)
            job_release(&jobs[k]);
    free(jobs);
    free(iov);
    return rc;
}

int pycode_resolve(struct pycode_cache *c, uint64_t code_addr, const struct pycode_info **out,
                   ms_error *err)
{
    ms_error e;
    e.msg[0] = 0;
    *out = NULL;
    if (!code_addr)
        return ms_error_set(err, "NULL code object");
    if (pycode_resolve_many(c, &code_addr, 1, out, &e)) {
        if (err)
            *err = e;
        return -1;
    }
    if (!*out) {
        if (err)
            *err = e;
        errno = EFAULT;
        return -1;
    }
    return 0;
}

int pycode_line(const struct pycode_cache *c, const struct pycode_info *ci, uint64_t code_addr,
                uint64_t raw_lasti)
{
    const struct py_offsets *o = c->rt->off;
    int64_t off = linetable_offset(o->lasti_model, raw_lasti, code_addr, o->code_code_adaptive);
    return linetable_line(o->linetable_model, ci->linetable, ci->linetable_len, ci->firstlineno,
                          off);
}
