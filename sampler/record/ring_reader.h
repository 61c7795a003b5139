/*
 * ring_reader.h - memsnap's side of the hook's shared ring: map it, drain it, steer the hook.
 *
 * The region (layout in hook/hook_abi.h) belongs to a process that may be hostile while
 * memsnap runs as root, and it changes under us while we read. So every record is copied out
 * of the mapping before any field of it is looked at, every length, type, position and frame
 * count is checked, and a ring that breaks a rule is reported as corrupt, never followed.
 * The memfd must carry F_SEAL_SHRINK, so the target cannot truncate it and make our reads
 * fault (SIGBUS).
 *
 * Ownership: struct ring_reader is the caller's; open/attach fill it, close releases the
 * mapping and descriptor (attach'ed memory is not the reader's and is left alone).
 * Not thread-safe: one thread drains.
 */
#ifndef MEMSNAP_RING_READER_H
#define MEMSNAP_RING_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "hook/hook_abi.h"

/* A CODE record, copied out and validated: kinds are 1, 2 or 4, name_len * name_kind <=
 * MSHOOK_CODE_NAME_MAX, filename_len * filename_kind <= MSHOOK_CODE_FILENAME_MAX, table_len
 * <= MSHOOK_CODE_TABLE_MAX, and the record held exactly that many bytes. The characters are
 * raw PEP 393 data (decode with pystr_to_utf8); nothing else about them is known. */
struct ring_code {
    uint64_t code;
    int32_t firstlineno;
    uint32_t flags; /* MSHOOK_CODE_* */
    uint32_t name_len, filename_len, table_len;
    uint8_t name_kind, filename_kind;
    uint8_t name[MSHOOK_CODE_NAME_MAX];
    uint8_t filename[MSHOOK_CODE_FILENAME_MAX];
    uint8_t table[MSHOOK_CODE_TABLE_MAX];
};

/* One record, copied out and validated. Fields a type does not use are zero. */
struct ring_event {
    uint32_t type;  /* MSHOOK_REC_ALLOC, _STACK, _FREE, _CODE or _CODE_GONE (PADs are consumed) */
    uint32_t flags; /* ALLOC: MSHOOK_ALLOC_*; STACK: MSHOOK_STACK_* */
    uint64_t addr, size;          /* ALLOC: the block; FREE: addr; CODE(_GONE): the code object */
    uint32_t slot;                /* ALLOC, STACK: < the reader's stack_slots */
    uint64_t tstate;              /* STACK: the thread */
    const struct ring_code *code; /* CODE only: valid during the callback */
    uint32_t nframes;             /* STACK: <= MSHOOK_MAX_FRAMES; frames[0] is the innermost */
    struct mshook_frame frames[MSHOOK_MAX_FRAMES];
};

struct ring_reader {
    int fd;                       /* -1 when attached to memory we do not own */
    void *map;                    /* the whole region */
    size_t map_bytes;             /* header_bytes + ring_bytes */
    struct mshook_shared *shared; /* == map */
    const unsigned char *ring;    /* map + header_bytes */
    uint64_t ring_bytes;          /* power of two, validated at open */
    uint32_t stack_slots;         /* the hook's, from the header at open: a power of two */
    uint64_t tail;                /* bytes consumed (ours; published to shared->ring_tail) */
    uint64_t events;              /* records delivered (every type but PAD) */
    uint64_t pads;                /* PAD records skipped */
    int producer_gone;            /* ring_reader_producer_gone() was called */
};

/* Opens /proc/PID/fd/REMOTE_FD (which must be the hook's sealed memfd), maps it, validates the
 * header (magic, abi, header and ring sizes against the file size, stack slots) and sets
 * mapped = 1 so the
 * hook closes its descriptor. Returns 0, or -1 with a sentence in err (r is then closed). */
int ring_reader_open(pid_t pid, int remote_fd, struct ring_reader *r, ms_error *err);

/* The same validation over a region already in memory (tests, fuzzing): r reads and writes
 * region but does not own it. bytes is the region's size. Does not set mapped. */
int ring_reader_attach(struct ring_reader *r, void *region, size_t bytes, ms_error *err);

/* Delivers every complete record between our tail and the head read on entry to on_event,
 * in order, then publishes the new tail. on_event returns 0 to go on, non-zero to stop (the
 * tail then covers the records delivered so far and drain returns -1 with a generic sentence:
 * callers keep their own reason in ctx). Returns the number of events delivered, or -1 with a
 * sentence in err when the ring is corrupt (head behind the tail or more than a ring ahead, a
 * bad record type, length, flag, frame count, stack slot, string kind or length), or on
 * ENOMEM; the tail
 * is left at the last good record. */
int ring_reader_drain(struct ring_reader *r,
                      int (*on_event)(void *ctx, const struct ring_event *ev), void *ctx,
                      ms_error *err);

/* The target is dead: later drains go up to the last complete record it wrote (ring_written)
 * rather than the last it published. */
void ring_reader_producer_gone(struct ring_reader *r);

/* Writes CLOCK_MONOTONIC now into heartbeat_ns. Call at least every 250 ms. */
void ring_reader_heartbeat(struct ring_reader *r);

/* Asks the hook to stop (it restores the allocators and ends in STOPPED). */
void ring_reader_request_stop(struct ring_reader *r);

/* The hook's state as written by the hook: untrusted, any value (compare with
 * enum mshook_state). */
uint32_t ring_reader_state(const struct ring_reader *r);

/* A snapshot copy of the whole header (counters, state, error), taken once; out->error is
 * NUL-terminated. */
void ring_reader_counters(const struct ring_reader *r, struct mshook_shared *out);

/* Unmaps and closes what the reader owns; safe on a zeroed or already closed reader. */
void ring_reader_close(struct ring_reader *r);

#endif
