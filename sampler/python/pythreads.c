/*
 * pythreads.c - the thread and frame walk behind pythreads_snapshot(); see pythreads.h.
 *
 * The walk advances all threads one frame level at a time so each level costs one
 * process_vm_readv whatever the number of threads. A level read that fails (a torn pointer in
 * one thread) is redone thread by thread so only that thread is cut short.
 */
#include "pythreads.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"
#include "thread_stop.h"

#define LIVE_ATTEMPTS 5
#define TSTATE_MAX    4096
#define FRAME_HDR_MAX 512

/* Per-thread walk state. */
struct walk {
    uint64_t cur; /* next frame to read, 0 when done */
    int cap;      /* of t->frames and seen */
    uint64_t *seen;
    uint8_t hdr[FRAME_HDR_MAX];
};

static uint64_t u64_at(const uint8_t *p, int32_t off)
{
    uint64_t v = 0;
    if (off >= 0)
        memcpy(&v, p + off, 8);
    return v;
}

void pythreads_free(struct pythreads *t)
{
    for (int i = 0; i < t->count; i++)
        free(t->threads[i].frames);
    free(t->threads);
    memset(t, 0, sizeof *t);
}

static size_t frame_hdr_len(const struct py_offsets *o)
{
    int32_t m = 8;
    const int32_t ends[] = {o->frame_back + 8,      o->frame_code + 8,  o->frame_lasti + 4,
                            o->iframe_previous + 8, o->iframe_code + 8, o->iframe_instr + 8,
                            o->iframe_owner + 1};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
        if (ends[i] > m)
            m = ends[i];
    return m > FRAME_HDR_MAX ? FRAME_HDR_MAX : (size_t)m;
}

/* Reads the thread list; first[i] gets thread i's frame entry pointer (for 3.11/3.12 the
 * _PyCFrame, dereferenced by the caller). 0, or -1 with err. */
static int read_threads(const struct pyruntime *rt, uint64_t interp, struct pythreads *out,
                        uint64_t **first, ms_error *err)
{
    const struct py_offsets *o = rt->off;
    int32_t head_off = o->interp_threads_head >= 0 ? o->interp_threads_head : o->interp_tstate_head;
    uint64_t ts = 0;
    if (remote_read(rt->pid, interp + (uint64_t)head_off, &ts, 8, err))
        return ms_error_prefix(err, "reading the thread list");
    size_t len =
        o->tstate_size > 0 && o->tstate_size < TSTATE_MAX ? (size_t)o->tstate_size : TSTATE_MAX;
    uint8_t buf[TSTATE_MAX];
    int cap = 0;
    while (ts) {
        if (out->count >= PYTHREADS_MAX_THREADS)
            return ms_error_set(err, "more than %d thread states: the list looks corrupt",
                                PYTHREADS_MAX_THREADS);
        for (int i = 0; i < out->count; i++)
            if (out->threads[i].tstate == ts)
                return ms_error_set(err, "the thread list has a cycle");
        if (remote_read(rt->pid, ts, buf, len, err))
            return ms_error_prefix(err, "reading thread state 0x%llx", (unsigned long long)ts);
        if (u64_at(buf, o->tstate_interp) != interp) {
            errno = EFAULT;
            return ms_error_set(err, "thread state 0x%llx does not belong to the interpreter",
                                (unsigned long long)ts);
        }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 16;
            struct pythread *n = realloc(out->threads, (size_t)cap * sizeof *n);
            uint64_t *f = realloc(*first, (size_t)cap * sizeof *f);
            if (n)
                out->threads = n;
            if (f)
                *first = f;
            if (!n || !f)
                return ms_error_set(err, "out of memory");
        }
        struct pythread *t = &out->threads[out->count];
        memset(t, 0, sizeof *t);
        t->tstate = ts;
        t->pthread_id = u64_at(buf, o->tstate_thread_id);
        if (o->tstate_native_thread_id >= 0)
            t->native_tid = (pid_t)u64_at(buf, o->tstate_native_thread_id);
        if (o->frame_model == PY_FRAME_OBJECT)
            (*first)[out->count] = u64_at(buf, o->tstate_frame);
        else if (o->frame_model == PY_FRAME_CFRAME)
            (*first)[out->count] = u64_at(buf, o->tstate_cframe);
        else
            (*first)[out->count] = u64_at(buf, o->tstate_current_frame);
        out->count++;
        ts = u64_at(buf, o->tstate_next);
    }
    return 0;
}

/* 3.11/3.12: tstate->cframe->current_frame, for every thread in one read. */
static int deref_cframes(const struct pyruntime *rt, uint64_t *first, int n, ms_error *err)
{
    if (rt->off->frame_model != PY_FRAME_CFRAME || n == 0)
        return 0;
    struct remote_iov *iov = calloc((size_t)n, sizeof *iov);
    uint64_t *vals = calloc((size_t)n, sizeof *vals);
    int k = 0, rc = 0;
    if (!iov || !vals) {
        rc = ms_error_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (first[i])
            iov[k++] = (struct remote_iov){first[i] + (uint64_t)rt->off->cframe_current_frame,
                                           &vals[i], 8};
    if (k && remote_readv(rt->pid, iov, k, err)) {
        rc = ms_error_prefix(err, "reading the threads' current frames");
        goto out;
    }
    for (int i = 0; i < n; i++)
        first[i] = first[i] ? vals[i] : 0;
out:
    free(iov);
    free(vals);
    return rc;
}

static int push_frame(struct pythread *t, struct walk *w, uint64_t code, uint64_t lasti)
{
    if (t->nframes == w->cap) {
        int ncap = w->cap ? w->cap * 2 : 32;
        struct pyframe *f = realloc(t->frames, (size_t)ncap * sizeof *f);
        if (!f)
            return -1;
        t->frames = f;
        w->cap = ncap;
    }
    t->frames[t->nframes++] = (struct pyframe){code, lasti, NULL, -1};
    return 0;
}

/* Consumes one frame header of thread t: records the frame (unless it is a C-stack shim),
 * and moves w->cur to the caller. */
static int take_frame(const struct py_offsets *o, struct pythread *t, struct walk *w, int *depth)
{
    uint64_t code, lasti, prev;
    int record = 1;
    if (o->frame_model == PY_FRAME_OBJECT) {
        code = u64_at(w->hdr, o->frame_code);
        uint32_t l;
        memcpy(&l, w->hdr + o->frame_lasti, 4);
        lasti = l;
        prev = u64_at(w->hdr, o->frame_back);
    } else {
        code = u64_at(w->hdr, o->iframe_code);
        if (o->code_tag_mask > 0) /* 3.14: a _PyStackRef, tagged in its low bits */
            code &= ~(uint64_t)o->code_tag_mask;
        lasti = u64_at(w->hdr, o->iframe_instr);
        prev = u64_at(w->hdr, o->iframe_previous);
        /* C-stack shims (3.12+) and interpreter-owned entry frames (3.14) have no code. */
        if (o->owner_skip_from >= 0 && o->iframe_owner >= 0 &&
            w->hdr[o->iframe_owner] >= (uint8_t)o->owner_skip_from)
            record = 0;
    }
    if (record && code && push_frame(t, w, code, lasti))
        return -1;
    (*depth)++;
    w->seen[(*depth - 1) % PYTHREADS_MAX_DEPTH] = w->cur;
    w->cur = prev;
    if (!w->cur)
        return 0;
    if (*depth >= PYTHREADS_MAX_DEPTH) {
        t->truncated = 1;
        w->cur = 0;
        return 0;
    }
    for (int i = 0; i < *depth; i++) {
        if (w->seen[i] == w->cur) {
            t->truncated = 1;
            w->cur = 0;
            break;
        }
    }
    return 0;
}

/* Walks every thread's frames level by level. Frames that cannot be read cut the thread's
 * stack (truncated = 1); 0, or -1 with err when the process is gone or memory ran out. */
static int walk_frames(const struct pyruntime *rt, struct pythreads *out, const uint64_t *first,
                       ms_error *err)
{
    const struct py_offsets *o = rt->off;
    int n = out->count, rc = 0;
    size_t hl = frame_hdr_len(o);
    struct walk *w = calloc((size_t)n ? (size_t)n : 1, sizeof *w);
    struct remote_iov *iov = calloc((size_t)n ? (size_t)n : 1, sizeof *iov);
    int *who = calloc((size_t)n ? (size_t)n : 1, sizeof *who);
    int *depth = calloc((size_t)n ? (size_t)n : 1, sizeof *depth);
    if (!w || !iov || !who || !depth) {
        rc = ms_error_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        w[i].cur = first[i];
        if (first[i] && !(w[i].seen = malloc(PYTHREADS_MAX_DEPTH * sizeof(uint64_t)))) {
            rc = ms_error_set(err, "out of memory");
            goto out;
        }
    }
    for (;;) {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!w[i].cur)
                continue;
            iov[k] = (struct remote_iov){w[i].cur, w[i].hdr, hl};
            who[k++] = i;
        }
        if (!k)
            break;
        ms_error e;
        if (remote_readv(rt->pid, iov, k, &e)) {
            if (errno == ESRCH) {
                if (err)
                    *err = e;
                rc = -1;
                goto out;
            }
            /* Find which threads' frames are unreadable; cut those stacks there. */
            for (int j = 0; j < k; j++) {
                if (remote_readv(rt->pid, &iov[j], 1, &e) == 0)
                    continue;
                if (errno == ESRCH) {
                    if (err)
                        *err = e;
                    rc = -1;
                    goto out;
                }
                out->threads[who[j]].truncated = 1;
                w[who[j]].cur = 0;
            }
        }
        for (int j = 0; j < k; j++) {
            int i = who[j];
            if (w[i].cur && take_frame(o, &out->threads[i], &w[i], &depth[i])) {
                rc = ms_error_set(err, "out of memory");
                goto out;
            }
        }
    }
out:
    if (w)
        for (int i = 0; i < n; i++)
            free(w[i].seen);
    free(w);
    free(iov);
    free(who);
    free(depth);
    return rc;
}

/* Who holds the GIL, and which thread is the main one. */
static int read_gil_and_main(const struct pyruntime *rt, uint64_t interp, struct pythreads *out,
                             ms_error *err)
{
    const struct py_offsets *o = rt->off;
    uint64_t main_thread = 0, main_tstate = 0, holder = 0, gil = 0;
    int32_t locked = 0;
    struct remote_iov iov[3];
    int k = 0;
    /* 3.13+: the interpreter's own main thread state; before, the runtime's main pthread. */
    if (o->interp_threads_main >= 0)
        iov[k++] = (struct remote_iov){interp + (uint64_t)o->interp_threads_main, &main_tstate, 8};
    else
        iov[k++] = (struct remote_iov){rt->runtime_addr + (uint64_t)o->runtime_main_thread,
                                       &main_thread, 8};
    if (o->runtime_gilstate_tstate_current >= 0) {
        iov[k++] = (struct remote_iov){
            rt->runtime_addr + (uint64_t)o->runtime_gilstate_tstate_current, &holder, 8};
        if (o->runtime_gil_locked >= 0)
            iov[k++] =
                (struct remote_iov){rt->runtime_addr + (uint64_t)o->runtime_gil_locked, &locked, 4};
    } else if (o->interp_gil_ptr >= 0) {
        iov[k++] = (struct remote_iov){interp + (uint64_t)o->interp_gil_ptr, &gil, 8};
    }
    if (remote_readv(rt->pid, iov, k, err))
        return ms_error_prefix(err, "reading the GIL state");
    if (gil) {
        struct remote_iov g[2] = {{gil + (uint64_t)o->gil_last_holder, &holder, 8},
                                  {gil + (uint64_t)o->gil_locked, &locked, 4}};
        if (remote_readv(rt->pid, g, 2, err))
            return ms_error_prefix(err, "reading the GIL");
        if (!locked)
            holder = 0;
    } else if (o->runtime_gilstate_tstate_current < 0) {
        holder = 0;
    }
    for (int i = 0; i < out->count; i++) {
        struct pythread *t = &out->threads[i];
        t->is_main =
            main_tstate ? t->tstate == main_tstate : main_thread && t->pthread_id == main_thread;
        t->holds_gil = holder && t->tstate == holder;
    }
    return 0;
}

/* Resolves every frame's code and line in one batch. *unresolved counts frames whose code
 * could not be read (a sign of a torn walk). On 3.13 a frame's f_executable may legitimately
 * be something else than code (None in some shims): those frames are dropped. */
static int resolve_codes(const struct pyruntime *rt, struct pycode_cache *cc, struct pythreads *out,
                         int *unresolved, ms_error *err)
{
    size_t total = 0;
    for (int i = 0; i < out->count; i++)
        total += (size_t)out->threads[i].nframes;
    *unresolved = 0;
    if (!total)
        return 0;
    uint64_t *addrs = malloc(total * sizeof *addrs);
    const struct pycode_info **info = malloc(total * sizeof *info);
    if (!addrs || !info) {
        free(addrs);
        free(info);
        return ms_error_set(err, "out of memory");
    }
    size_t k = 0;
    for (int i = 0; i < out->count; i++)
        for (int f = 0; f < out->threads[i].nframes; f++)
            addrs[k++] = out->threads[i].frames[f].code_addr;
    ms_error e;
    int rc = pycode_resolve_many(cc, addrs, total, info, &e);
    if (rc && err)
        *err = e;
    k = 0;
    for (int i = 0; rc == 0 && i < out->count; i++) {
        struct pythread *t = &out->threads[i];
        int kept = 0;
        for (int f = 0; f < t->nframes; f++, k++) {
            struct pyframe fr = t->frames[f];
            fr.code = info[k];
            if (!fr.code) {
                if (rt->off->frame_model == PY_FRAME_CURRENT)
                    continue;
                (*unresolved)++;
            } else {
                fr.line = pycode_line(cc, fr.code, fr.code_addr, fr.lasti);
            }
            t->frames[kept++] = fr;
        }
        t->nframes = kept;
    }
    free(addrs);
    free(info);
    return rc;
}

/* One walk. *torn is set when the result looks inconsistent (a cut stack or an unreadable
 * code object), which a live walk retries. */
static int walk_once(const struct pyruntime *rt, struct pycode_cache *cc, struct pythreads *out,
                     int *torn, ms_error *err)
{
    uint64_t *first = NULL;
    *torn = 0;
    int rc = pyruntime_main_interp(rt, &out->interp, err);
    if (rc == 0)
        rc = read_threads(rt, out->interp, out, &first, err);
    if (rc == 0)
        rc = deref_cframes(rt, first, out->count, err);
    if (rc == 0)
        rc = walk_frames(rt, out, first, err);
    free(first);
    if (rc == 0)
        rc = read_gil_and_main(rt, out->interp, out, err);
    int unresolved = 0;
    if (rc == 0)
        rc = resolve_codes(rt, cc, out, &unresolved, err);
    if (rc)
        return -1;
    *torn = unresolved > 0;
    for (int i = 0; i < out->count; i++)
        if (out->threads[i].truncated && out->threads[i].nframes < PYTHREADS_MAX_DEPTH - 1)
            *torn = 1;
    return 0;
}

int pythreads_snapshot(const struct pyruntime *rt, struct pycode_cache *cc, struct pythreads *out,
                       ms_error *err)
{
    memset(out, 0, sizeof *out);
    /* 3.8-3.10 frames are recycled heap objects: stop the threads. 3.11+ read live. */
    int stop = rt->off->frame_model == PY_FRAME_OBJECT && !rt->replayed;
    int attempts = stop ? 1 : LIVE_ATTEMPTS;
    int saved_errno = 0;
    for (int a = 1; a <= attempts; a++) {
        struct thread_stop ts;
        if (stop && thread_stop_all(rt->pid, &ts, err))
            return -1;
        int torn = 0;
        int rc = walk_once(rt, cc, out, &torn, err);
        saved_errno = errno;
        if (stop) {
            for (int i = 0; rc == 0 && i < out->count; i++)
                if (!out->threads[i].native_tid)
                    out->threads[i].native_tid =
                        thread_stop_tid_of(&ts, out->threads[i].pthread_id);
            out->stopped = !ts.already_stopped;
            thread_stop_release(&ts);
            out->stop_ns = ts.stop_ns;
        }
        out->attempts = a;
        if (rc == 0 && (!torn || a == attempts))
            break; /* the last attempt's stacks are kept, cut where they tore */
        int keep_attempts = out->attempts;
        long long keep_stop = out->stop_ns;
        pythreads_free(out);
        out->attempts = keep_attempts;
        out->stop_ns = keep_stop;
        if (rc && (saved_errno == ESRCH || saved_errno == EPERM || a == attempts)) {
            errno = saved_errno;
            return -1;
        }
        pycode_cache_epoch(cc); /* a torn walk may have cached a reused address */
    }
    /* The interpreter lists the newest thread first; show the oldest (main) first. */
    for (int i = 0, j = out->count - 1; i < j; i++, j--) {
        struct pythread t = out->threads[i];
        out->threads[i] = out->threads[j];
        out->threads[j] = t;
    }
    return 0;
}
