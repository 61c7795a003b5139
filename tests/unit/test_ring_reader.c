/*
 * test_ring_reader.c - the memsnap side of the hook's ring against crafted regions.
 *
 * Valid rings (records of every kind, wrapped with PAD, written by the hook's own producer
 * code, which is compiled in here, with the head published per record or in batches) must
 * come out exactly as written; corrupt ones (bad lengths, types, flags, frame counts, stack
 * slots, heads) must be refused with a sentence, without
 * delivering the bad record or reading outside the region. Opening checks the descriptor is
 * the hook's sealed memfd. CODE / CODE_GONE records written by the producer come out byte for
 * byte and feed a code table that names frames, lines included, and forgets gone objects.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "code_table.h"
#include "ring_reader.h"

/* The producer, as built into libmemsnap_hook.so. */
#include "hook/hook_ring.c"

#define HEADER 4096u
#define RING   (64u << 10)
#define SLOTS  64u

struct region {
    unsigned char *mem;
    size_t bytes;
    struct mshook_shared *shared;
    unsigned char *ring;
};

static void region_make(struct region *g, uint64_t ring_bytes)
{
    g->bytes = HEADER + ring_bytes;
    g->mem = aligned_alloc(4096, g->bytes);
    assert_non_null(g->mem);
    memset(g->mem, 0, g->bytes);
    g->shared = (struct mshook_shared *)g->mem;
    g->ring = g->mem + HEADER;
    g->shared->magic = MSHOOK_MAGIC;
    g->shared->abi = MSHOOK_ABI;
    g->shared->header_bytes = HEADER;
    g->shared->ring_bytes = ring_bytes;
    g->shared->config.stack_slots = SLOTS;
    g->shared->state = MSHOOK_STATE_RECORDING;
}

static void region_free(struct region *g)
{
    free(g->mem);
}

/* Writes raw bytes at a ring offset. */
static void ring_put(struct region *g, uint64_t off, const void *p, size_t n)
{
    memcpy(g->ring + off, p, n);
}

static void put_alloc(struct region *g, uint64_t off, uint64_t addr, uint32_t slot, uint32_t len,
                      uint32_t flags)
{
    struct mshook_alloc a = {
        .hdr = {.type = MSHOOK_REC_ALLOC, .len = len},
        .addr = addr,
        .size = 100,
        .stack = slot,
        .flags = flags,
    };
    ring_put(g, off, &a, sizeof a);
}

static void put_stack(struct region *g, uint64_t off, uint32_t slot, uint32_t nframes, uint32_t len,
                      uint32_t flags)
{
    struct mshook_stack st = {
        .hdr = {.type = MSHOOK_REC_STACK, .len = len},
        .tstate = 0x7000,
        .slot = slot,
        .nframes = nframes,
        .flags = flags,
    };
    ring_put(g, off, &st, sizeof st);
    for (uint32_t i = 0; i < nframes && off + sizeof st + (i + 1) * 16 <= g->shared->ring_bytes;
         i++) {
        struct mshook_frame f = {.code = 0x1000 + i, .lasti = i};
        ring_put(g, off + sizeof st + i * sizeof f, &f, sizeof f);
    }
}

static void put_free(struct region *g, uint64_t off, uint64_t addr, uint32_t len)
{
    struct mshook_free f = {.hdr = {.type = MSHOOK_REC_FREE, .len = len}, .addr = addr};
    ring_put(g, off, &f, sizeof f);
}

struct got {
    int n;
    uint64_t addr[64];
    uint32_t type[64], nframes[64], flags[64], slot[64];
    uint64_t tstate[64];
    uint64_t frame_code_sum;
    int stop_after; /* return non-zero after this many events (0: never) */
};

static int on_event(void *ctx, const struct ring_event *ev)
{
    struct got *g = ctx;
    if (g->n < 64) {
        g->addr[g->n] = ev->addr;
        g->type[g->n] = ev->type;
        g->nframes[g->n] = ev->nframes;
        g->flags[g->n] = ev->flags;
        g->slot[g->n] = ev->slot;
        g->tstate[g->n] = ev->tstate;
    }
    for (uint32_t i = 0; i < ev->nframes; i++)
        g->frame_code_sum += ev->frames[i].code;
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static void attach(struct ring_reader *r, struct region *g)
{
    ms_error err = {{0}};
    if (ring_reader_attach(r, g->mem, g->bytes, &err) != 0)
        fail_msg("%s", err.msg);
}

/* A region with the hook's producer writing into it (publishing the head every publish_bytes)
 * and a reader attached to it. */
static void producer_open(struct region *g, struct hook_ring *w, struct ring_reader *r,
                          uint32_t publish_bytes)
{
    region_make(g, RING);
    hook_ring_init(w, g->shared, g->ring, RING, 0, publish_bytes);
    attach(r, g);
}

static void test_valid_records(void **state)
{
    (void)state;
    struct region g;
    region_make(&g, RING);
    uint32_t slen = sizeof(struct mshook_stack) + 3 * sizeof(struct mshook_frame);
    uint32_t alen = sizeof(struct mshook_alloc);
    put_stack(&g, 0, SLOTS - 1, 3, slen, MSHOOK_STACK_TRUNCATED);
    put_alloc(&g, slen, 0xaaa0, SLOTS - 1, alen, MSHOOK_ALLOC_REALLOC);
    put_free(&g, slen + alen, 0xaaa0, sizeof(struct mshook_free));
    put_alloc(&g, slen + alen + 16, 0xbbb0, 0, alen, 0);
    g.shared->ring_head = slen + 2 * alen + 16;

    struct ring_reader r;
    attach(&r, &g);
    assert_int_equal(r.stack_slots, SLOTS);
    struct got got = {0};
    ms_error err = {{0}};
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), 4);
    assert_int_equal(got.type[0], MSHOOK_REC_STACK);
    assert_int_equal(got.slot[0], SLOTS - 1);
    assert_int_equal(got.tstate[0], 0x7000);
    assert_int_equal(got.nframes[0], 3);
    assert_int_equal(got.flags[0], MSHOOK_STACK_TRUNCATED);
    assert_int_equal(got.frame_code_sum, 0x1000 + 0x1001 + 0x1002);
    assert_int_equal(got.type[1], MSHOOK_REC_ALLOC);
    assert_int_equal(got.addr[1], 0xaaa0);
    assert_int_equal(got.slot[1], SLOTS - 1);
    assert_int_equal(got.flags[1], MSHOOK_ALLOC_REALLOC);
    assert_int_equal(got.nframes[1], 0);
    assert_int_equal(got.type[2], MSHOOK_REC_FREE);
    assert_int_equal(got.addr[2], 0xaaa0);
    assert_int_equal(got.addr[3], 0xbbb0);
    assert_int_equal(got.slot[3], 0);
    assert_int_equal(g.shared->ring_tail, g.shared->ring_head);
    /* nothing new: nothing delivered */
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), 0);
    ring_reader_close(&r);
    region_free(&g);
}

static uint64_t short_alloc_word(uint32_t flags, uint32_t slot, uint64_t size)
{
    return (uint64_t)MSHOOK_REC_ALLOC_SHORT | (uint64_t)flags << 8 | (uint64_t)slot << 16 |
           size << 40;
}

static void put_short_alloc(struct region *g, uint64_t off, uint64_t word, uint64_t addr)
{
    struct mshook_alloc_short a = {.word = word, .addr = addr};
    ring_put(g, off, &a, sizeof a);
}

/* The 16-byte ALLOC and the 8-byte FREE, at the limits of their fields, beside a long ALLOC. */
static void test_short_records(void **state)
{
    (void)state;
    struct region g;
    region_make(&g, RING);
    put_short_alloc(&g, 0, short_alloc_word(MSHOOK_ALLOC_REALLOC, SLOTS - 1, MSHOOK_SHORT_SIZE_MAX),
                    0x7fff12345670);
    uint64_t word = MSHOOK_FREE_SHORT_WORD(MSHOOK_FREE_SHORT_ADDR_MAX);
    ring_put(&g, 16, &word, sizeof word);
    put_alloc(&g, 24, 0xbbb0, 2, sizeof(struct mshook_alloc), 0);
    g.shared->ring_head = 24 + sizeof(struct mshook_alloc);

    struct ring_reader r;
    attach(&r, &g);
    struct got got = {0};
    ms_error err = {{0}};
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), 3);
    assert_int_equal(got.type[0], MSHOOK_REC_ALLOC);
    assert_int_equal(got.addr[0], 0x7fff12345670);
    assert_int_equal(got.slot[0], SLOTS - 1);
    assert_int_equal(got.flags[0], MSHOOK_ALLOC_REALLOC);
    assert_int_equal(got.type[1], MSHOOK_REC_FREE);
    assert_int_equal(got.addr[1], MSHOOK_FREE_SHORT_ADDR_MAX);
    assert_int_equal(got.type[2], MSHOOK_REC_ALLOC);
    assert_int_equal(got.addr[2], 0xbbb0);
    assert_int_equal(got.slot[2], 2);
    assert_int_equal(g.shared->ring_tail, g.shared->ring_head);
    ring_reader_close(&r);
    region_free(&g);
}

static void test_wrapped_with_pad(void **state)
{
    (void)state;
    struct region g;
    region_make(&g, RING);
    /* The consumer is at RING - 32; a 48-byte record did not fit, so PAD then offset 0. */
    uint64_t start = 5 * (uint64_t)RING - 32;
    g.shared->ring_tail = start;
    struct mshook_rec pad = {.type = MSHOOK_REC_PAD, .len = 32};
    ring_put(&g, RING - 32, &pad, sizeof pad);
    uint32_t slen = sizeof(struct mshook_stack) + sizeof(struct mshook_frame);
    put_stack(&g, 0, 1, 1, slen, 0);
    g.shared->ring_head = start + 32 + slen;

    struct ring_reader r;
    attach(&r, &g);
    struct got got = {0};
    ms_error err = {{0}};
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), 1);
    assert_int_equal(got.type[0], MSHOOK_REC_STACK);
    assert_int_equal(got.slot[0], 1);
    assert_int_equal(r.pads, 1);
    assert_int_equal(g.shared->ring_tail, start + 32 + slen);
    ring_reader_close(&r);
    region_free(&g);
}

/* One corrupt ring: `good` valid FREE records at 0.., then whatever setup() writes. */
static void expect_corrupt(void (*setup)(struct region *g), int good, const char *what)
{
    struct region g;
    region_make(&g, RING);
    for (int i = 0; i < good; i++)
        put_free(&g, (uint64_t)i * 16, 0x100 + (uint64_t)i, 16);
    g.shared->ring_head = (uint64_t)good * 16;
    setup(&g);
    uint64_t tail0 = g.shared->ring_tail;
    struct ring_reader r;
    attach(&r, &g);
    struct got got = {0};
    ms_error err = {{0}};
    int rc = ring_reader_drain(&r, on_event, &got, &err);
    if (rc != -1)
        fail_msg("%s: drain returned %d", what, rc);
    assert_true(strlen(err.msg) > 0);
    if (got.n != good)
        fail_msg("%s: %d good records delivered, not %d (%s)", what, got.n, good, err.msg);
    /* the tail covers the good records only, and a second drain refuses again */
    assert_int_equal(g.shared->ring_tail, tail0 + (uint64_t)good * 16);
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), -1);
    ring_reader_close(&r);
    region_free(&g);
}

static void bad_type(struct region *g)
{
    struct mshook_rec h = {.type = 9, .len = 16};
    ring_put(g, g->shared->ring_head, &h, sizeof h);
    g->shared->ring_head += 16;
}
static void zero_len(struct region *g)
{
    struct mshook_rec h = {.type = MSHOOK_REC_FREE, .len = 0};
    ring_put(g, g->shared->ring_head, &h, sizeof h);
    g->shared->ring_head += 16;
}
static void odd_len(struct region *g)
{
    put_free(g, g->shared->ring_head, 1, 12);
    g->shared->ring_head += 16;
}
static void len_past_head(struct region *g)
{
    put_free(g, g->shared->ring_head, 1, 64);
    g->shared->ring_head += 16;
}
static void len_past_end(struct region *g)
{
    uint64_t off = RING - 16;
    g->shared->ring_tail = 7 * (uint64_t)RING + off;
    put_free(g, off, 1, 32);
    g->shared->ring_head = g->shared->ring_tail + 64;
}
static void huge_len(struct region *g)
{
    put_free(g, g->shared->ring_head, 1, 0xfffffff8u);
    g->shared->ring_head += 16;
}
static void free_wrong_len(struct region *g)
{
    put_free(g, g->shared->ring_head, 1, 24);
    g->shared->ring_head += 24;
}
static void huge_nframes(struct region *g)
{
    put_stack(g, g->shared->ring_head, 1, 0xffffffffu, 32 + 16 * 4, 0);
    g->shared->ring_head += 32 + 16 * 4;
}
static void nframes_one_too_many(struct region *g)
{
    uint32_t len = 32 + 16 * (MSHOOK_MAX_FRAMES + 1);
    put_stack(g, g->shared->ring_head, 1, MSHOOK_MAX_FRAMES + 1, len, 0);
    g->shared->ring_head += len;
}
static void nframes_len_mismatch(struct region *g)
{
    put_stack(g, g->shared->ring_head, 1, 2, 32 + 16 * 3, 0);
    g->shared->ring_head += 32 + 16 * 3;
}
static void stack_too_short(struct region *g)
{
    put_stack(g, g->shared->ring_head, 1, 0, 24, 0);
    g->shared->ring_head += 24;
}
static void stack_slot_out_of_range(struct region *g)
{
    put_stack(g, g->shared->ring_head, SLOTS, 0, 32, 0);
    g->shared->ring_head += 32;
}
static void stack_unknown_flags(struct region *g)
{
    put_stack(g, g->shared->ring_head, 1, 0, 32, 0x40);
    g->shared->ring_head += 32;
}
static void alloc_too_short(struct region *g)
{
    put_alloc(g, g->shared->ring_head, 1, 0, 24, 0);
    g->shared->ring_head += 24;
}
static void alloc_too_long(struct region *g)
{
    put_alloc(g, g->shared->ring_head, 1, 0, 40, 0);
    g->shared->ring_head += 40;
}
static void alloc_slot_out_of_range(struct region *g)
{
    put_alloc(g, g->shared->ring_head, 1, 0xffffffffu, 32, 0);
    g->shared->ring_head += 32;
}
static void unknown_flags(struct region *g)
{
    put_alloc(g, g->shared->ring_head, 1, 0, 32, 0x80);
    g->shared->ring_head += 32;
}
static void short_alloc_slot_out_of_range(struct region *g)
{
    put_short_alloc(g, g->shared->ring_head, short_alloc_word(0, SLOTS, 1), 1);
    g->shared->ring_head += 16;
}
static void short_alloc_unknown_flags(struct region *g)
{
    put_short_alloc(g, g->shared->ring_head, short_alloc_word(0x80, 0, 1), 1);
    g->shared->ring_head += 16;
}
static void short_alloc_past_head(struct region *g)
{
    put_short_alloc(g, g->shared->ring_head, short_alloc_word(0, 0, 1), 1);
    g->shared->ring_head += 8;
}
static void short_alloc_past_end(struct region *g)
{
    uint64_t off = RING - 8;
    g->shared->ring_tail = 3 * (uint64_t)RING + off;
    uint64_t word = short_alloc_word(0, 0, 1);
    ring_put(g, off, &word, sizeof word);
    g->shared->ring_head = g->shared->ring_tail + 16;
}
static void pad_short_of_end(struct region *g)
{
    struct mshook_rec h = {.type = MSHOOK_REC_PAD, .len = 16};
    ring_put(g, g->shared->ring_head, &h, sizeof h);
    g->shared->ring_head += 16;
}
static void head_behind_tail(struct region *g)
{
    g->shared->ring_tail = 4096;
    g->shared->ring_head = 1024;
}
static void head_too_far(struct region *g)
{
    g->shared->ring_head = (uint64_t)RING + 16;
}
static void head_unaligned(struct region *g)
{
    g->shared->ring_head += 4;
}

/* A CODE record header at the head with the given fields, len bytes in all. */
static void put_code_raw(struct region *g, uint32_t len, uint8_t name_kind, uint32_t name_len,
                         uint32_t table_len, uint32_t flags)
{
    struct mshook_code c = {
        .hdr = {.type = MSHOOK_REC_CODE, .len = len},
        .code = 0xc0de0,
        .name_len = name_len,
        .name_kind = name_kind,
        .filename_kind = 1,
        .table_len = table_len,
        .flags = flags,
    };
    ring_put(g, g->shared->ring_head, &c, sizeof c);
    g->shared->ring_head += len;
}
static void code_kind_3(struct region *g)
{
    put_code_raw(g, 48, 3, 1, 0, 0);
}
static void code_name_too_long(struct region *g)
{
    uint32_t n = MSHOOK_CODE_NAME_MAX / 2 + 1; /* UCS-2: one character past the cap */
    put_code_raw(g, ((uint32_t)sizeof(struct mshook_code) + 2 * n + 7) & ~7u, 2, n, 0, 0);
}
static void code_len_mismatch(struct region *g)
{
    put_code_raw(g, 56, 1, 3, 0, 0); /* 40 + 3 rounds to 48, not 56 */
}
static void code_table_too_long(struct region *g)
{
    put_code_raw(g, 48, 1, 0, MSHOOK_CODE_TABLE_MAX + 1, 0);
}
static void code_unknown_flags(struct region *g)
{
    put_code_raw(g, 40, 1, 0, 0, 0x100);
}
static void code_too_short(struct region *g)
{
    put_code_raw(g, 32, 1, 0, 0, 0);
}

static void test_corrupt_rings(void **state)
{
    (void)state;
    expect_corrupt(bad_type, 2, "bad type");
    expect_corrupt(zero_len, 1, "zero length");
    expect_corrupt(odd_len, 1, "length not a multiple of 8");
    expect_corrupt(len_past_head, 3, "length beyond the head");
    expect_corrupt(len_past_end, 0, "length beyond the end of the ring");
    expect_corrupt(huge_len, 0, "huge length");
    expect_corrupt(free_wrong_len, 1, "FREE of the wrong length");
    expect_corrupt(huge_nframes, 2, "nframes 2^32-1");
    expect_corrupt(nframes_one_too_many, 0, "nframes MAX+1");
    expect_corrupt(nframes_len_mismatch, 1, "length disagrees with nframes");
    expect_corrupt(stack_too_short, 1, "STACK shorter than its header");
    expect_corrupt(stack_slot_out_of_range, 1, "STACK defining slot SLOTS");
    expect_corrupt(stack_unknown_flags, 1, "STACK with unknown flags");
    expect_corrupt(alloc_too_short, 1, "ALLOC shorter than its header");
    expect_corrupt(alloc_too_long, 1, "ALLOC longer than its header");
    expect_corrupt(alloc_slot_out_of_range, 1, "ALLOC naming slot 2^32-1");
    expect_corrupt(unknown_flags, 1, "unknown flags");
    expect_corrupt(pad_short_of_end, 1, "PAD not reaching the end");
    expect_corrupt(short_alloc_slot_out_of_range, 1, "short ALLOC naming slot SLOTS");
    expect_corrupt(short_alloc_unknown_flags, 1, "short ALLOC with unknown flags");
    expect_corrupt(short_alloc_past_head, 1, "short ALLOC cut by the head");
    expect_corrupt(short_alloc_past_end, 0, "short ALLOC cut by the end of the ring");
    expect_corrupt(head_behind_tail, 0, "head behind tail");
    expect_corrupt(head_too_far, 0, "head more than a ring ahead");
    expect_corrupt(head_unaligned, 0, "head unaligned");
    expect_corrupt(code_kind_3, 1, "CODE with 3-byte characters");
    expect_corrupt(code_name_too_long, 1, "CODE name over the cap");
    expect_corrupt(code_len_mismatch, 1, "CODE length disagrees with its contents");
    expect_corrupt(code_table_too_long, 1, "CODE line table over the cap");
    expect_corrupt(code_unknown_flags, 1, "CODE with unknown flags");
    expect_corrupt(code_too_short, 1, "CODE shorter than its header");
}

/* Feeds CODE / CODE_GONE records to a code table, counts the rest. */
static int code_event(void *ctx, const struct ring_event *ev)
{
    struct code_table *t = ctx;
    ms_error err;
    if (ev->type == MSHOOK_REC_CODE)
        return code_table_add(t, ev->code, &err);
    if (ev->type == MSHOOK_REC_CODE_GONE)
        code_table_remove(t, ev->addr);
    return 0;
}

static void test_code_records(void **state)
{
    (void)state;
    struct region g;
    struct hook_ring w;
    struct ring_reader r;
    producer_open(&g, &w, &r, 0);
    /* 3.8: f_lasti is a byte offset and co_lnotab pairs are (bytecode delta, line delta):
     * offsets 0-5 are on the first line, 6-13 one below, 14 and later three below. */
    const struct py_offsets *off = py_offsets_find(3, 8);
    assert_non_null(off);
    struct code_table *t = code_table_new(off);
    assert_non_null(t);

    const uint16_t name[] = {'c', 'a', 'f', 0xe9, '.', 0x263a}; /* UCS-2 "café.☺" */
    const uint8_t lnotab[] = {6, 1, 8, 2};
    struct hook_code_desc d = {
        .firstlineno = 40,
        .name = name,
        .name_len = 6,
        .name_kind = 2,
        .filename = "/srv/app.py",
        .filename_len = 11,
        .filename_kind = 1,
        .table = lnotab,
        .table_len = sizeof lnotab,
    };
    assert_int_equal(hook_ring_put_code(&w, 0xc0de0, &d), 0);
    ms_error err = {{0}};
    assert_int_equal(ring_reader_drain(&r, code_event, t, &err), 1);
    struct stacks_code sc;
    assert_int_equal(code_table_resolve(t, 0xc0de0, &sc), 0);
    assert_string_equal(sc.name, "caf\xc3\xa9.\xe2\x98\xba");
    assert_string_equal(sc.filename, "/srv/app.py");
    assert_int_equal(sc.firstlineno, 40);
    assert_int_equal(code_table_line(t, &sc, 0xc0de0, 2), 40);
    assert_int_equal(code_table_line(t, &sc, 0xc0de0, 6), 41);
    assert_int_equal(code_table_line(t, &sc, 0xc0de0, 20), 43);
    assert_int_equal(code_table_line(t, &sc, 0xc0de0, (uint64_t)-1), 40); /* not started */
    const void *first = sc.identity;

    /* Gone, then a new code object at the same address with no line table: a new identity,
     * its own name, and the old identity no longer gets lines. */
    assert_int_equal(hook_ring_put_code_gone(&w, 0xc0de0), 0);
    assert_int_equal(ring_reader_drain(&r, code_event, t, &err), 1);
    assert_int_equal(code_table_resolve(t, 0xc0de0, &sc), -1);
    assert_int_equal(code_table_count(t), 0);
    struct hook_code_desc d2 = {.firstlineno = 7,
                                .name = "<module>",
                                .name_len = 8,
                                .name_kind = 1,
                                .filename_kind = 1,
                                .flags = MSHOOK_CODE_NO_TABLE};
    assert_int_equal(hook_ring_put_code(&w, 0xc0de0, &d2), 0);
    assert_int_equal(ring_reader_drain(&r, code_event, t, &err), 1);
    assert_int_equal(code_table_resolve(t, 0xc0de0, &sc), 0);
    assert_true(sc.identity != first);
    assert_string_equal(sc.name, "<module>");
    assert_string_equal(sc.filename, "");
    assert_int_equal(code_table_line(t, &sc, 0xc0de0, 6), -1); /* no table: caller's first line */
    struct stacks_code stale = sc;
    stale.identity = first;
    assert_int_equal(code_table_line(t, &stale, 0xc0de0, 6), -1);

    /* Many code objects come and go: the table holds exactly the live ones. */
    for (uint64_t i = 1; i <= 3000; i++) {
        if (hook_ring_put_code(&w, 0x100000 + i * 16, &d2) != 0 ||
            (i % 3 == 0 && hook_ring_put_code_gone(&w, 0x100000 + i * 16) != 0)) {
            assert_true(ring_reader_drain(&r, code_event, t, &err) >= 0);
            i--; /* the ring was full: write it again */
            continue;
        }
    }
    assert_true(ring_reader_drain(&r, code_event, t, &err) >= 0);
    assert_int_equal(code_table_count(t), 1 + 3000 - 1000);
    for (uint64_t i = 1; i <= 3000; i++)
        assert_int_equal(code_table_resolve(t, 0x100000 + i * 16, &sc), i % 3 == 0 ? -1 : 0);
    code_table_free(t);
    ring_reader_close(&r);
    region_free(&g);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct region g;
    struct ring_reader r;
    ms_error err;
    region_make(&g, RING);
    g.shared->magic ^= 1;
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
    g.shared->magic = MSHOOK_MAGIC;
    g.shared->abi = MSHOOK_ABI + 1;
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
    g.shared->abi = MSHOOK_ABI;
    g.shared->ring_bytes = RING - 8; /* not a power of two */
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
    g.shared->ring_bytes = 2 * (uint64_t)RING; /* larger than the region */
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
    g.shared->ring_bytes = RING;
    g.shared->header_bytes = 64; /* smaller than the header struct */
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
    g.shared->header_bytes = HEADER;
    g.shared->ring_tail = 3;
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
    g.shared->ring_tail = 0;
    const uint32_t bad_slots[] = {0, MSHOOK_STACK_SLOTS_MIN / 2, 96, MSHOOK_STACK_SLOTS_MAX * 2};
    for (size_t i = 0; i < sizeof bad_slots / sizeof bad_slots[0]; i++) {
        g.shared->config.stack_slots = bad_slots[i];
        assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), -1);
        assert_non_null(strstr(err.msg, "stack slots"));
    }
    g.shared->config.stack_slots = SLOTS;
    assert_int_equal(ring_reader_attach(&r, g.mem, 100, &err), -1); /* truncated region */
    assert_int_equal(ring_reader_attach(&r, g.mem, g.bytes, &err), 0);
    /* a closed or zeroed reader is inert */
    ring_reader_close(&r);
    ring_reader_close(&r);
    assert_int_equal(ring_reader_state(&r), 0);
    assert_int_equal(ring_reader_drain(&r, on_event, NULL, &err), -1);
    region_free(&g);
}

/* Every other FREE's address is beyond the short form's 56 bits, every other ALLOC's size
 * beyond its 24: both forms of both records go through the ring. */
static uint64_t roundtrip_addr(uint64_t id)
{
    return id % 10 == 9 ? id | 1ull << 60 : id;
}

static uint64_t roundtrip_size(uint64_t id)
{
    return id % 10 == 8 ? (1ull << 24) + id : 10 + id % 1000;
}

/* The hook's producer writing a long stream of STACK, ALLOC and FREE records, STACKs with
 * frame counts of every size, wrapping the ring many times, drained in random-sized bites:
 * everything comes out, in order. Record i has id i (addr, or slot and first frame). */
static int roundtrip_event(void *ctx, const struct ring_event *ev)
{
    uint64_t *next = ctx;
    if (ev->type == MSHOOK_REC_STACK) {
        if (ev->slot != *next % SLOTS || ev->tstate != *next)
            return 1;
        if (ev->nframes != (uint32_t)(*next % (MSHOOK_MAX_FRAMES + 1)))
            return 1;
        for (uint32_t i = 0; i < ev->nframes; i++)
            if (ev->frames[i].code != *next + i || ev->frames[i].lasti != i)
                return 1;
    } else if (ev->addr != roundtrip_addr(*next) ||
               (ev->type == MSHOOK_REC_ALLOC &&
                (ev->slot != *next % SLOTS || ev->size != roundtrip_size(*next)))) {
        return 1;
    }
    (*next)++;
    return 0;
}

/* Writes record `id` of the roundtrip stream. */
static int roundtrip_put(struct hook_ring *w, uint64_t id)
{
    if (id % 5 == 4)
        return hook_ring_put_free(w, roundtrip_addr(id));
    if (id % 5 == 3)
        return hook_ring_put_alloc(w, id, roundtrip_size(id), (uint32_t)(id % SLOTS), 0);
    struct mshook_frame frames[MSHOOK_MAX_FRAMES];
    uint32_t n = (uint32_t)(id % (MSHOOK_MAX_FRAMES + 1));
    for (uint32_t i = 0; i < n; i++)
        frames[i] = (struct mshook_frame){.code = id + i, .lasti = i};
    return hook_ring_put_stack(w, (uint32_t)(id % SLOTS), id, 0, frames, n);
}

static void test_producer_roundtrip(void **state)
{
    (void)state;
    struct region g;
    struct hook_ring w;
    struct ring_reader r;
    producer_open(&g, &w, &r, 0);
    uint64_t written = 0, next = 0, dropped = 0;
    srand(7);
    ms_error err = {{0}};
    while (written < 20000) {
        if (roundtrip_put(&w, written) == 0) {
            written++;
        } else { /* full: the producer wrote nothing; the consumer catches up */
            dropped++;
            int got = ring_reader_drain(&r, roundtrip_event, &next, &err);
            if (got < 0)
                fail_msg("%s", err.msg);
            continue;
        }
        if (rand() % 16 == 0 && ring_reader_drain(&r, roundtrip_event, &next, &err) < 0)
            fail_msg("%s (next %llu)", err.msg, (unsigned long long)next);
    }
    assert_true(ring_reader_drain(&r, roundtrip_event, &next, &err) >= 0);
    assert_int_equal(next, written);
    assert_true(dropped > 0); /* the ring did fill up */
    assert_true(r.pads > 10); /* and wrapped many times */
    /* Filled up, the producer looks at the consumer's tail again: a sane one makes room, one
     * that is nonsense (ahead of the head, or moving backwards) makes it refuse, not
     * scribble over unread records. */
    while (hook_ring_put_free(&w, 1) == 0)
        ;
    g.shared->ring_tail = w.head;
    assert_int_equal(hook_ring_put_free(&w, 1), 0);
    while (hook_ring_put_free(&w, 1) == 0)
        ;
    uint64_t sane = g.shared->ring_tail;
    g.shared->ring_tail = w.head + 64;
    assert_int_equal(hook_ring_put_free(&w, 1), -1);
    g.shared->ring_tail = sane - 8;
    assert_int_equal(hook_ring_put_free(&w, 1), -1);
    ring_reader_close(&r);
    region_free(&g);
}

/* Exact mode publishes the head in batches: the consumer sees nothing until a kilobyte is
 * written or the owner flushes, and once the producer is dead, the consumer reads up to the
 * last whole record written. */
static void test_batched_publication(void **state)
{
    (void)state;
    struct region g;
    struct hook_ring w;
    struct ring_reader r;
    producer_open(&g, &w, &r, 1024);
    ms_error err = {{0}};
    uint64_t next = 0;
    for (; next < 3; next++)
        assert_int_equal(roundtrip_put(&w, next), 0);
    uint64_t seen = 0;
    assert_int_equal(ring_reader_drain(&r, roundtrip_event, &seen, &err), 0);
    assert_int_equal(g.shared->ring_written, w.head);
    hook_ring_flush(&w);
    assert_int_equal(ring_reader_drain(&r, roundtrip_event, &seen, &err), 3);
    /* Enough records to cross the batch size publish themselves. */
    uint64_t start = w.head;
    while (w.head - start < 1024)
        assert_int_equal(roundtrip_put(&w, next++), 0);
    assert_int_equal(g.shared->ring_head, w.head);
    /* Unpublished records of a producer that died are read from ring_written; a
     * ring_written behind the published head is ignored. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(roundtrip_put(&w, next++), 0);
    assert_true(g.shared->ring_head < w.head);
    ring_reader_producer_gone(&r);
    assert_true(ring_reader_drain(&r, roundtrip_event, &seen, &err) > 0);
    assert_int_equal(seen, next);
    assert_int_equal(g.shared->ring_tail, w.head);
    g.shared->ring_written = 0;
    assert_int_equal(ring_reader_drain(&r, roundtrip_event, &seen, &err), 0);
    /* One too far ahead is a corrupt ring. */
    g.shared->ring_written = w.head + 2 * (uint64_t)RING;
    assert_int_equal(ring_reader_drain(&r, roundtrip_event, &seen, &err), -1);
    ring_reader_close(&r);
    region_free(&g);
}

static void test_stop_from_callback(void **state)
{
    (void)state;
    struct region g;
    region_make(&g, RING);
    for (int i = 0; i < 5; i++)
        put_free(&g, (uint64_t)i * 16, 0x100 + (uint64_t)i, 16);
    g.shared->ring_head = 80;
    struct ring_reader r;
    attach(&r, &g);
    struct got got = {.stop_after = 2};
    ms_error err = {{0}};
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), -1);
    assert_int_equal(g.shared->ring_tail, 32); /* two consumed */
    got.stop_after = 0;
    assert_int_equal(ring_reader_drain(&r, on_event, &got, &err), 3);
    assert_int_equal(got.addr[2], 0x102);
    ring_reader_close(&r);
    region_free(&g);
}

/* A memfd shaped like the hook's; sealed or not. */
static int memfd_ring(const char *name, int seal)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, HEADER + RING), 0);
    struct mshook_shared h = {0};
    h.magic = MSHOOK_MAGIC;
    h.abi = MSHOOK_ABI;
    h.header_bytes = HEADER;
    h.ring_bytes = RING;
    h.config.stack_slots = SLOTS;
    h.state = MSHOOK_STATE_STARTING;
    snprintf(h.error, sizeof h.error, "%s", "no error");
    assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    if (seal)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    return fd;
}

static void test_open_memfd(void **state)
{
    (void)state;
    struct ring_reader r;
    ms_error err = {{0}};
    int fd = memfd_ring(MSHOOK_MEMFD_NAME, 1);
    if (ring_reader_open(getpid(), fd, &r, &err) != 0)
        fail_msg("%s", err.msg);
    struct mshook_shared snap;
    ring_reader_counters(&r, &snap);
    assert_int_equal(snap.mapped, 1);
    assert_string_equal(snap.error, "no error");
    assert_int_equal(ring_reader_state(&r), MSHOOK_STATE_STARTING);
    ring_reader_heartbeat(&r);
    ring_reader_request_stop(&r);
    ring_reader_counters(&r, &snap);
    assert_true(snap.heartbeat_ns > 0);
    assert_int_equal(snap.stop_request, 1);
    ring_reader_close(&r);
    close(fd);

    fd = memfd_ring(MSHOOK_MEMFD_NAME, 0); /* could be truncated under us: refused */
    assert_int_equal(ring_reader_open(getpid(), fd, &r, &err), -1);
    assert_non_null(strstr(err.msg, "sealed"));
    close(fd);
    fd = memfd_ring("something-else", 1); /* not the hook's */
    assert_int_equal(ring_reader_open(getpid(), fd, &r, &err), -1);
    close(fd);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ring_reader_open(getpid(), p[0], &r, &err), -1);
    close(p[0]);
    close(p[1]);
    assert_int_equal(ring_reader_open(getpid(), 1000000, &r, &err), -1);
    assert_int_equal(ring_reader_open(getpid(), -5, &r, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_records),      cmocka_unit_test(test_short_records),
        cmocka_unit_test(test_wrapped_with_pad),   cmocka_unit_test(test_corrupt_rings),
        cmocka_unit_test(test_bad_headers),        cmocka_unit_test(test_producer_roundtrip),
        cmocka_unit_test(test_stop_from_callback), cmocka_unit_test(test_open_memfd),
        cmocka_unit_test(test_code_records),       cmocka_unit_test(test_batched_publication),
    };
    return cmocka_run_group_tests_name("ring_reader", tests, NULL, NULL);
}
