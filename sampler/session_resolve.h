/*
 * session_resolve.h - the stacks.h resolver of a live target: code objects through the
 * pycode cache (remote reads, revalidated once per drain), and thread labels read from the
 * thread states themselves.
 *
 * Thread labels: "MainThread" when the thread state's pthread id is _PyRuntime's main
 * thread, else "thread <native tid>". 3.11+ keep the native tid in the thread state; on
 * 3.8-3.10 it is read from glibc's struct pthread (the pthread id is its address; the tid
 * sits at a fixed offset on x86_64) and accepted only if /proc/PID/task/<tid> exists. When
 * neither works the label is "thread 0x<pthread id>". Nothing here stops the target.
 */
#ifndef MEMSNAP_SESSION_RESOLVE_H
#define MEMSNAP_SESSION_RESOLVE_H

#include <stdint.h>

#include "error.h"
#include "pycode.h"
#include "pyruntime.h"
#include "stacks.h"

struct session_resolve {
    const struct pyruntime *rt; /* borrowed */
    struct pycode_cache *codes; /* owned */
    uint64_t main_thread_id;    /* pthread id of the main thread, 0 if unknown */
    char label[64];             /* the last label returned */
};

/* Prepares the resolver for rt (borrowed, must outlive it). -1 on ENOMEM. */
int session_resolve_init(struct session_resolve *sr, const struct pyruntime *rt, ms_error *err);

/* The stacks.h resolver backed by sr. */
struct stacks_resolver session_resolve_resolver(struct session_resolve *sr);

/* Once per drain: code objects may have been freed and their addresses reused. */
void session_resolve_epoch(struct session_resolve *sr);

void session_resolve_free(struct session_resolve *sr);

#endif
