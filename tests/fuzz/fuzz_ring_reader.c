/*
 * fuzz_ring_reader.c - libFuzzer target for ring_reader_drain (and the header checks).
 *
 * The input plays a hostile target: its first bytes choose the ring positions (or, with the
 * low bit of byte 0 set, the whole header), the rest fills the ring. Whatever it holds, the
 * reader must refuse or deliver well-formed events, never read outside the region, and keep
 * its tail within one ring of the head. A second drain after the first checks the reader's
 * state stays consistent. CODE records must come out with every length within its cap. Built and
 * run by scripts/fuzz.d/ring.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring_reader.h"

#define HEADER 4096u
#define RING   (64u << 10)

static uint32_t fuzz_slots; /* the reader's stack_slots for this input */

static int on_event(void *ctx, const struct ring_event *ev)
{
    uint64_t *sum = ctx;
    if (ev->nframes > MSHOOK_MAX_FRAMES ||
        (ev->type != MSHOOK_REC_ALLOC && ev->type != MSHOOK_REC_FREE &&
         ev->type != MSHOOK_REC_CODE && ev->type != MSHOOK_REC_CODE_GONE &&
         ev->type != MSHOOK_REC_STACK))
        abort();
    if ((ev->type == MSHOOK_REC_ALLOC || ev->type == MSHOOK_REC_STACK) && ev->slot >= fuzz_slots)
        abort();                       /* a slot beyond what the header claimed */
    if (ev->type == MSHOOK_REC_CODE) { /* every length within its cap, every byte readable */
        const struct ring_code *c = ev->code;
        if (!c)
            abort();
        uint64_t nb = (uint64_t)c->name_len * c->name_kind;
        uint64_t fb = (uint64_t)c->filename_len * c->filename_kind;
        if (nb > sizeof c->name || fb > sizeof c->filename || c->table_len > sizeof c->table)
            abort();
        for (uint64_t i = 0; i < nb; i++)
            *sum += c->name[i];
        for (uint64_t i = 0; i < fb; i++)
            *sum += c->filename[i];
        for (uint32_t i = 0; i < c->table_len; i++)
            *sum += c->table[i];
    }
    for (uint32_t i = 0; i < ev->nframes; i++) /* touch every frame: ASan checks the copy */
        *sum += ev->frames[i].code ^ ev->frames[i].lasti;
    return ev->addr == 0xdeadULL; /* sometimes stop early */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char *region;
    if (!region && !(region = aligned_alloc(4096, HEADER + RING)))
        return 0;
    memset(region, 0, HEADER + RING);
    struct mshook_shared *h = (struct mshook_shared *)region;
    h->magic = MSHOOK_MAGIC;
    h->abi = MSHOOK_ABI;
    h->header_bytes = HEADER;
    h->ring_bytes = RING;
    h->config.stack_slots = 64;
    size_t used = 0;
    if (size >= 1 && (data[0] & 1) && size >= sizeof *h) {
        memcpy(h, data, sizeof *h); /* arbitrary header */
        used = sizeof *h;
    } else if (size >= 17) {
        uint64_t tail, ahead;
        memcpy(&tail, data + 1, 8);
        memcpy(&ahead, data + 9, 8);
        h->ring_tail = tail & ~7ull;
        h->ring_head = h->ring_tail + (ahead % (2 * RING + 16)); /* mostly plausible */
        used = 17;
    }
    size_t n = size - used < RING ? size - used : RING;
    /* place the records where the consumer will look first */
    uint64_t start = h->ring_bytes == RING ? (h->ring_tail & (RING - 1)) : 0;
    size_t first = n < RING - start ? n : RING - start;
    memcpy(region + HEADER + start, data + used, first);
    memcpy(region + HEADER, data + used + first, n - first);

    struct ring_reader r;
    ms_error err;
    if (ring_reader_attach(&r, region, HEADER + RING, &err) != 0)
        return 0;
    fuzz_slots = r.stack_slots;
    uint64_t sum = 0;
    for (int round = 0; round < 2; round++) {
        int got = ring_reader_drain(&r, on_event, &sum, &err);
        if (got < 0 && err.msg[0] == 0)
            abort(); /* a refusal always says why */
        if (h->ring_tail != r.tail)
            abort();
    }
    ring_reader_close(&r);
    return 0;
}
