/*
 * session_resolve.h - the stacks.h resolver of a live target: code objects from the code table
 * the hook's CODE records feed (code_table.h: no remote reads), and thread labels read from the
 * thread states themselves (remote reads, cached by stacks.h for one epoch).
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
#include "code_table.h"
#include "pyruntime.h"
#include "stacks.h"

struct session_resolve {
    const struct pyruntime *rt; /* borrowed */
    struct code_table *codes;   /* borrowed */
    uint64_t main_thread_id;    /* pthread id of the main thread, 0 if unknown */
    char label[64];             /* the last label returned */
};

/* Prepares the resolver for rt and codes (both borrowed, must outlive it). Returns 0 (the main
 * thread's id is left 0 when it cannot be read). */
int session_resolve_init(struct session_resolve *sr, const struct pyruntime *rt,
                         struct code_table *codes, ms_error *err);

/* The stacks.h resolver backed by sr. */
struct stacks_resolver session_resolve_resolver(struct session_resolve *sr);

void session_resolve_free(struct session_resolve *sr);

#endif
