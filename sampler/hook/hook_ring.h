/*
 * hook_ring.h - the producer side of the shared ring (format in hook_abi.h).
 *
 * Single producer: callers serialise with the recorder's try-lock (hook_alloc.c). The head
 * lives here, in the hook's own memory, and is only published to the region; the tail comes
 * from memsnap and is checked before use, so a consumer that writes nonsense makes the
 * producer drop events rather than overwrite unread records or write out of bounds.
 */
#ifndef MEMSNAP_HOOK_RING_H
#define MEMSNAP_HOOK_RING_H

#include <stdint.h>

#include "hook_abi.h"
#include "hook_code.h"

struct hook_ring {
    struct mshook_shared *shared;
    unsigned char *data;      /* ring_bytes of records */
    uint64_t size;            /* power of two */
    uint64_t head;            /* bytes ever written */
    uint64_t published;       /* head as last stored into shared->ring_head */
    uint64_t tail_seen;       /* the consumer's tail when last read: the ring is at least this
                               * empty, so it is only read again when a record seems not to fit */
    uint64_t wait_timeout_ns; /* 0: drop when full; else wait for the consumer while its
                               * heartbeat is younger than this (MSHOOK_F_WAIT_WHEN_FULL) */
    uint32_t publish_bytes;   /* publish the head once this many bytes are unpublished */
};

/* wait_timeout_ns: see struct hook_ring (0 = never wait). publish_bytes: 0 publishes the head
 * after every record; more batches the stores into the header line that memsnap polls, which
 * at rate 1 would otherwise move between the two processors' caches at every record (the
 * owner must then call hook_ring_flush() periodically and at the end). */
void hook_ring_init(struct hook_ring *r, struct mshook_shared *shared, unsigned char *data,
                    uint64_t size, uint64_t wait_timeout_ns, uint32_t publish_bytes);

/* Publishes every record written so far. */
void hook_ring_flush(struct hook_ring *r);

/* Append an ALLOC record naming stack slot `slot` / a STACK record defining a slot with
 * nframes frames (<= MSHOOK_MAX_FRAMES) / a FREE record, and publish the new head. ALLOC and
 * FREE take their short form whenever their fields fit it (hook_abi.h). Return 0, or -1 when
 * the ring has no room (nothing written). */
int hook_ring_put_alloc(struct hook_ring *r, uint64_t addr, uint64_t size, uint32_t slot,
                        uint32_t flags);
int hook_ring_put_stack(struct hook_ring *r, uint32_t slot, uint64_t tstate, uint32_t flags,
                        const struct mshook_frame *frames, uint32_t nframes);
int hook_ring_put_free(struct hook_ring *r, uint64_t addr);

/* Append a CODE record describing the code object at code / a CODE_GONE record. The caller
 * keeps desc's lengths within the caps of hook_abi.h and the record under a quarter of the
 * ring. Return 0, or -1 when the ring has no room (nothing written). */
int hook_ring_put_code(struct hook_ring *r, uint64_t code, const struct hook_code_desc *desc);
int hook_ring_put_code_gone(struct hook_ring *r, uint64_t code);

#endif
