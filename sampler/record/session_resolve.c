/*
 * session_resolve.c - resolving the hook's raw frames and thread states of a live target
 * (see session_resolve.h).
 */
#include "session_resolve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "remote.h"

/* offsetof(struct pthread, tid) in glibc on x86_64 (stable since glibc 2.x NPTL). */
#define GLIBC_PTHREAD_TID_OFFSET 0x2d0

int session_resolve_init(struct session_resolve *sr, const struct pyruntime *rt,
                         struct code_table *codes, ms_error *err)
{
    (void)err;
    memset(sr, 0, sizeof *sr);
    sr->rt = rt;
    sr->codes = codes;
    if (rt->off->runtime_main_thread >= 0) {
        uint64_t id = 0;
        if (remote_read(rt->pid, rt->runtime_addr + (uint64_t)rt->off->runtime_main_thread, &id,
                        sizeof id, NULL) == 0)
            sr->main_thread_id = id;
    }
    return 0;
}

void session_resolve_free(struct session_resolve *sr)
{
    sr->codes = NULL;
}

static int resolve_code(void *ctx, uint64_t code_addr, struct stacks_code *out)
{
    struct session_resolve *sr = ctx;
    return code_table_resolve(sr->codes, code_addr, out);
}

static int resolve_line(void *ctx, const struct stacks_code *code, uint64_t code_addr,
                        uint64_t raw_lasti)
{
    struct session_resolve *sr = ctx;
    return code_table_line(sr->codes, code, code_addr, raw_lasti);
}

/* The native tid of a thread, or 0. */
static int64_t thread_native_tid(struct session_resolve *sr, uint64_t tstate, uint64_t pthread)
{
    const struct py_offsets *off = sr->rt->off;
    uint64_t tid = 0;
    if (off->tstate_native_thread_id >= 0) {
        if (remote_read(sr->rt->pid, tstate + (uint64_t)off->tstate_native_thread_id, &tid,
                        sizeof tid, NULL) < 0)
            return 0;
    } else if (pthread) {
        int32_t t = 0;
        if (remote_read(sr->rt->pid, pthread + GLIBC_PTHREAD_TID_OFFSET, &t, sizeof t, NULL) < 0)
            return 0;
        tid = t > 0 ? (uint64_t)t : 0;
    }
    if (tid == 0 || tid > 0x7fffffff)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%llu", (int)sr->rt->pid, (unsigned long long)tid);
    return access(path, F_OK) == 0 ? (int64_t)tid : 0;
}

static const char *resolve_thread(void *ctx, uint64_t tstate)
{
    struct session_resolve *sr = ctx;
    const struct py_offsets *off = sr->rt->off;
    uint64_t pthread = 0;
    if (!tstate)
        return NULL;
    if (off->tstate_thread_id >= 0)
        remote_read(sr->rt->pid, tstate + (uint64_t)off->tstate_thread_id, &pthread, sizeof pthread,
                    NULL);
    if (pthread && pthread == sr->main_thread_id)
        return "MainThread";
    int64_t tid = thread_native_tid(sr, tstate, pthread);
    if (tid)
        snprintf(sr->label, sizeof sr->label, "thread %lld", (long long)tid);
    else if (pthread)
        snprintf(sr->label, sizeof sr->label, "thread 0x%llx", (unsigned long long)pthread);
    else
        return NULL;
    return sr->label;
}

struct stacks_resolver session_resolve_resolver(struct session_resolve *sr)
{
    struct stacks_resolver r = {sr, resolve_code, resolve_line, resolve_thread};
    return r;
}
