/*
 * pythreads.h - every Python thread of a live interpreter and its stack, read remotely.
 *
 * pythreads_snapshot() walks the main interpreter's thread states and each one's frame chain
 * and resolves every frame's code object (through a pycode cache the caller keeps across
 * snapshots). Consistency, as measured in cpython-internals.md: on 3.8-3.10 frames are heap
 * objects recycled while we read, so the process's threads are stopped for the walk
 * (thread_stop.h) and released before returning, on every path; on 3.11+ frames live in
 * per-thread stacks and the walk is done live, validated, and retried when torn.
 *
 * Reads are batched: the thread states are read one per syscall (a linked list), then each
 * level of frames of all threads in one process_vm_readv, then the code objects in three.
 *
 * Trust: depth is capped at PYTHREADS_MAX_DEPTH per thread, thread count at
 * PYTHREADS_MAX_THREADS, cycles in either list end the walk, and a thread state must point
 * back to its interpreter.
 */
#ifndef MEMSNAP_PYTHREADS_H
#define MEMSNAP_PYTHREADS_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "pycode.h"
#include "pyruntime.h"

#define PYTHREADS_MAX_DEPTH   4096
#define PYTHREADS_MAX_THREADS 65536

struct pyframe {
    uint64_t code_addr;             /* PyCodeObject * in the target */
    uint64_t lasti;                 /* raw f_lasti / prev_instr / instr_ptr */
    const struct pycode_info *code; /* resolved code (owned by the cache), NULL if unreadable */
    int line;                       /* source line, -1 when unknown */
};

struct pythread {
    uint64_t tstate;     /* PyThreadState * in the target */
    uint64_t pthread_id; /* tstate->thread_id */
    pid_t native_tid;    /* kernel tid in the target's pid namespace; 0 when unknown (on 3.8-3.10
                          * it is found from the stopped threads' fs_base, so it is 0 for a
                          * process that was already stopped) */
    int is_main;         /* the interpreter's main thread */
    int holds_gil;
    int truncated; /* the stack was cut (depth cap, cycle or unreadable frame) */
    int nframes;
    struct pyframe *frames; /* innermost first */
};

struct pythreads {
    struct pythread *threads; /* oldest thread first (usually the main thread) */
    int count;
    uint64_t interp;
    int stopped;       /* the threads were stopped with ptrace during the walk */
    long long stop_ns; /* how long they were stopped */
    int attempts;      /* walks made (live walks are retried when torn) */
};

/* Takes one snapshot of every thread of rt's main interpreter into out (free with
 * pythreads_free; out is empty on failure). Errors: process exited, permission, already
 * traced (3.8-3.10), or a walk that stayed inconsistent. */
int pythreads_snapshot(const struct pyruntime *rt, struct pycode_cache *cc, struct pythreads *out,
                       ms_error *err);

void pythreads_free(struct pythreads *t);

#endif
