/*
 * hook_ring.c - writes records into the shared ring; see hook_ring.h and hook_abi.h.
 */
#include "hook_ring.h"

#include <string.h>
#include <time.h>

void hook_ring_init(struct hook_ring *r, struct mshook_shared *shared, unsigned char *data,
                    uint64_t size, uint64_t wait_timeout_ns, uint32_t publish_bytes)
{
    r->shared = shared;
    r->data = data;
    r->size = size;
    r->head = 0;
    r->published = 0;
    r->tail_seen = 0;
    r->wait_timeout_ns = wait_timeout_ns;
    r->publish_bytes = publish_bytes;
}

void hook_ring_flush(struct hook_ring *r)
{
    if (r->published != r->head) {
        r->published = r->head;
        __atomic_store_n(&r->shared->ring_head, r->head, __ATOMIC_RELEASE);
    }
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Exact mode's back-pressure: sleeps in 20 us steps until the consumer has freed `need` bytes.
 * Gives up (the caller drops and counts) when memsnap asked to stop, its heartbeat is older
 * than the timeout (it died or stopped), its tail is nonsense, or 2 s passed for this record:
 * a slow memsnap may slow the program it runs, a vanished one must not hang it. */
static int ring_wait_for_room(struct hook_ring *r, uint64_t need)
{
    uint64_t start = monotonic_ns();
    const struct timespec step = {0, 20000};
    hook_ring_flush(r); /* memsnap can only make room by draining what it was shown */
    for (;;) {
        uint64_t tail = __atomic_load_n(&r->shared->ring_tail, __ATOMIC_ACQUIRE);
        if (tail > r->head || r->head - tail > r->size || tail < r->tail_seen)
            return -1;
        r->tail_seen = tail;
        if (r->size - (r->head - tail) >= need)
            return 0;
        uint64_t now = monotonic_ns();
        uint64_t beat = __atomic_load_n(&r->shared->heartbeat_ns, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&r->shared->stop_request, __ATOMIC_ACQUIRE) ||
            (now > beat && now - beat > r->wait_timeout_ns) || now - start > 2000000000u)
            return -1;
        nanosleep(&step, NULL);
    }
}

/* Room for len contiguous bytes (8-aligned, <= size / 2), writing a PAD record over the end of
 * the ring when the record would not fit there. Returns where to write, or NULL. */
static unsigned char *ring_reserve(struct hook_ring *r, uint32_t len)
{
    uint64_t off = r->head & (r->size - 1);
    uint64_t room_to_end = r->size - off;
    uint64_t need = len <= room_to_end ? len : room_to_end + len;
    if (r->size - (r->head - r->tail_seen) < need) {
        uint64_t tail = __atomic_load_n(&r->shared->ring_tail, __ATOMIC_ACQUIRE);
        if (tail > r->head || r->head - tail > r->size || tail < r->tail_seen)
            return NULL; /* the consumer's tail is nonsense: never overwrite on its word */
        r->tail_seen = tail;
        if (r->size - (r->head - r->tail_seen) < need && r->wait_timeout_ns &&
            ring_wait_for_room(r, need) != 0)
            return NULL;
    }
    uint64_t free_bytes = r->size - (r->head - r->tail_seen);
    if (len <= room_to_end) {
        if (len > free_bytes)
            return NULL;
        return r->data + off;
    }
    if (room_to_end + len > free_bytes)
        return NULL;
    struct mshook_rec pad = {.type = MSHOOK_REC_PAD, .len = (uint32_t)room_to_end};
    memcpy(r->data + off, &pad, sizeof pad);
    r->head += room_to_end;
    return r->data;
}

static void ring_commit(struct hook_ring *r, uint32_t len)
{
    r->head += len;
    __atomic_store_n(&r->shared->ring_written, r->head, __ATOMIC_RELAXED);
    if (r->head - r->published >= r->publish_bytes)
        hook_ring_flush(r);
}

int hook_ring_put_alloc(struct hook_ring *r, uint64_t addr, uint64_t size, uint32_t slot,
                        uint32_t flags)
{
    if (size <= MSHOOK_SHORT_SIZE_MAX && slot <= MSHOOK_SHORT_SLOT_MAX && flags <= 0xff) {
        uint32_t len = sizeof(struct mshook_alloc_short);
        unsigned char *p = ring_reserve(r, len);
        if (!p)
            return -1;
        struct mshook_alloc_short *rec = (struct mshook_alloc_short *)(void *)p;
        rec->word = (uint64_t)MSHOOK_REC_ALLOC_SHORT | (uint64_t)flags << 8 | (uint64_t)slot << 16 |
                    size << 40;
        rec->addr = addr;
        ring_commit(r, len);
        return 0;
    }
    uint32_t len = sizeof(struct mshook_alloc);
    unsigned char *p = ring_reserve(r, len);
    if (!p)
        return -1;
    /* Stored field by field: a struct built on the stack and copied in would be read back
     * with wider loads than it was written with, which stalls store forwarding. */
    struct mshook_alloc *rec = (struct mshook_alloc *)(void *)p;
    rec->hdr.type = MSHOOK_REC_ALLOC;
    rec->hdr.len = len;
    rec->addr = addr;
    rec->size = size;
    rec->stack = slot;
    rec->flags = flags;
    ring_commit(r, len);
    return 0;
}

int hook_ring_put_stack(struct hook_ring *r, uint32_t slot, uint64_t tstate, uint32_t flags,
                        const struct mshook_frame *frames, uint32_t nframes)
{
    if (nframes > MSHOOK_MAX_FRAMES)
        nframes = MSHOOK_MAX_FRAMES;
    uint32_t len = (uint32_t)(sizeof(struct mshook_stack) + nframes * sizeof(struct mshook_frame));
    unsigned char *p = ring_reserve(r, len);
    if (!p)
        return -1;
    struct mshook_stack rec = {
        .hdr = {.type = MSHOOK_REC_STACK, .len = len},
        .tstate = tstate,
        .slot = slot,
        .nframes = nframes,
        .flags = flags,
    };
    memcpy(p, &rec, sizeof rec);
    memcpy(p + sizeof rec, frames, nframes * sizeof(struct mshook_frame));
    ring_commit(r, len);
    return 0;
}

int hook_ring_put_free(struct hook_ring *r, uint64_t addr)
{
    if (addr <= MSHOOK_FREE_SHORT_ADDR_MAX) {
        unsigned char *p = ring_reserve(r, sizeof(uint64_t));
        if (!p)
            return -1;
        *(uint64_t *)(void *)p = MSHOOK_FREE_SHORT_WORD(addr);
        ring_commit(r, sizeof(uint64_t));
        return 0;
    }
    uint32_t len = sizeof(struct mshook_free);
    unsigned char *p = ring_reserve(r, len);
    if (!p)
        return -1;
    struct mshook_free *rec = (struct mshook_free *)(void *)p;
    rec->hdr.type = MSHOOK_REC_FREE;
    rec->hdr.len = len;
    rec->addr = addr;
    ring_commit(r, len);
    return 0;
}

int hook_ring_put_code(struct hook_ring *r, uint64_t code, const struct hook_code_desc *desc)
{
    uint32_t name_bytes = desc->name_len * desc->name_kind;
    uint32_t filename_bytes = desc->filename_len * desc->filename_kind;
    uint32_t body =
        (uint32_t)sizeof(struct mshook_code) + name_bytes + filename_bytes + desc->table_len;
    uint32_t len = (body + 7u) & ~7u;
    unsigned char *p = ring_reserve(r, len);
    if (!p)
        return -1;
    struct mshook_code rec = {
        .hdr = {.type = MSHOOK_REC_CODE, .len = len},
        .code = code,
        .firstlineno = desc->firstlineno,
        .flags = desc->flags,
        .name_len = desc->name_len,
        .filename_len = desc->filename_len,
        .table_len = desc->table_len,
        .name_kind = desc->name_kind,
        .filename_kind = desc->filename_kind,
    };
    unsigned char *w = p;
    memcpy(w, &rec, sizeof rec);
    w += sizeof rec;
    if (name_bytes)
        memcpy(w, desc->name, name_bytes);
    w += name_bytes;
    if (filename_bytes)
        memcpy(w, desc->filename, filename_bytes);
    w += filename_bytes;
    if (desc->table_len)
        memcpy(w, desc->table, desc->table_len);
    memset(p + body, 0, len - body);
    ring_commit(r, len);
    return 0;
}

int hook_ring_put_code_gone(struct hook_ring *r, uint64_t code)
{
    uint32_t len = sizeof(struct mshook_code_gone);
    unsigned char *p = ring_reserve(r, len);
    if (!p)
        return -1;
    struct mshook_code_gone rec = {.hdr = {.type = MSHOOK_REC_CODE_GONE, .len = len}, .code = code};
    memcpy(p, &rec, sizeof rec);
    ring_commit(r, len);
    return 0;
}
