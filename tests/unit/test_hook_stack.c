/*
 * test_hook_stack.c - the hook's stack walk and stack slot table, compiled in from
 * sampler/hook/: the walk over a fake frame chain laid out like CPython 3.8's (frames, depth
 * cap, frames whose code is not a code object), its hash (deterministic, sensitive to every
 * frame, its order and the depth, spread well enough in its low bits to pick slots), and the
 * the 3.14 frame rules (tagged f_executable, interpreter and C-stack owned frames skipped), the
 * direct-mapped slot table (hits, misses by thread, depth and hash, eviction, invalidation when
 * a code object dies, generation wrap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hook/hook_safe.c"
#include "hook/hook_slots.c"
#include "hook/hook_stack.c"

/* --- the stack walk and its hash, over frames laid out like a 3.8 frame chain --- */

struct fake_code_obj {
    uint64_t refcnt;
    const void *type;
    const void *name, *filename, *linetable;
    int32_t firstlineno;
};

/* A bytes object as the fingerprint reads it: type, size, then the bytes. */
struct fake_bytes {
    uint64_t refcnt;
    const void *type;
    int64_t size;
    unsigned char sval[24];
};

static const int fake_bytes_type = 0; /* its address stands for &PyBytes_Type */

struct fake_frame {
    const struct fake_frame *back;
    const struct fake_code_obj *code;
    int32_t lasti;
    int32_t pad;
};

static const int fake_code_type = 0; /* its address stands for &PyCode_Type */

static struct hook_stack_layout fake_layout(void)
{
    struct hook_stack_layout l = {
        .frame_model = 1, /* tstate->frame */
        .lasti_model = 1, /* int32 field */
        .tstate_frame = 0,
        .cframe_current_frame = -1,
        .frame_back = offsetof(struct fake_frame, back),
        .frame_code = offsetof(struct fake_frame, code),
        .frame_lasti = offsetof(struct fake_frame, lasti),
        .frame_owner = -1,
        .owner_cstack = -1,
        .object_type = offsetof(struct fake_code_obj, type),
        .code_type = &fake_code_type,
        .code_name = offsetof(struct fake_code_obj, name),
        .code_filename = offsetof(struct fake_code_obj, filename),
        .code_firstlineno = offsetof(struct fake_code_obj, firstlineno),
        .code_linetable = offsetof(struct fake_code_obj, linetable),
        .bytes_size = offsetof(struct fake_bytes, size),
        .bytes_sval = offsetof(struct fake_bytes, sval),
        .bytes_type = &fake_bytes_type,
    };
    assert_int_equal(hook_stack_layout_check(&l), 0);
    return l;
}

/* Where str objects keep their fields: the fakes' names are plain C strings, never str. */
static const int fake_unicode_type = 0;
static const struct hook_code_layout fake_code_layout = {
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 40,
    .unicode_compact_size = 56,
    .unicode_data_ptr = 56,
    .bytes_size = offsetof(struct fake_bytes, size),
    .bytes_sval = offsetof(struct fake_bytes, sval),
    .object_type = offsetof(struct fake_code_obj, type),
    .unicode_type = &fake_unicode_type,
    .bytes_type = &fake_bytes_type,
};

/* hook_stack_capture with the old test's arguments: flags folded into *truncated (1 depth, 2
 * invalid), each frame's fingerprint into idents (may be NULL). */
static uint32_t capture(const struct hook_stack_layout *l, const void *tstate,
                        struct mshook_frame *out, uint32_t max, int *truncated, uint64_t *hash,
                        uint64_t *idents)
{
    uint64_t ids[MSHOOK_MAX_FRAMES];
    uint32_t flags;
    uint32_t n = hook_stack_capture(l, &fake_code_layout, tstate, 0, out, idents ? idents : ids,
                                    max, &flags, hash);
    *truncated = (int)flags;
    return n;
}

/* frames[0] is the innermost; the "tstate" is a pointer to it. */
static uint64_t walk(const struct fake_frame *inner, uint32_t max, uint32_t *n, int *truncated)
{
    struct hook_stack_layout l = fake_layout();
    const struct fake_frame *const tstate = inner;
    struct mshook_frame out[MSHOOK_MAX_FRAMES];
    uint64_t hash;
    *n = capture(&l, &tstate, out, max, truncated, &hash, NULL);
    for (uint32_t i = 0; i < *n; i++) {
        assert_ptr_equal((const void *)(uintptr_t)out[i].code, inner->code);
        assert_int_equal((int64_t)out[i].lasti, inner->lasti);
        inner = inner->back;
    }
    return hash;
}

static void test_stack_walk_hash(void **state)
{
    (void)state;
    static struct fake_code_obj codes[3] = {{1, &fake_code_type, NULL, NULL, NULL, 1},
                                            {1, &fake_code_type, NULL, NULL, NULL, 1},
                                            {1, &fake_code_type, NULL, NULL, NULL, 1}};
    static struct fake_frame f[3];
    f[2] = (struct fake_frame){NULL, &codes[2], 10, 0};
    f[1] = (struct fake_frame){&f[2], &codes[1], 20, 0};
    f[0] = (struct fake_frame){&f[1], &codes[0], 30, 0};
    uint32_t n;
    int truncated;
    uint64_t h = walk(&f[0], MSHOOK_MAX_FRAMES, &n, &truncated);
    assert_int_equal(n, 3);
    assert_int_equal(truncated, 0);
    assert_true(walk(&f[0], MSHOOK_MAX_FRAMES, &n, &truncated) == h); /* deterministic */

    f[1].lasti = 22; /* another line in the caller */
    assert_true(walk(&f[0], MSHOOK_MAX_FRAMES, &n, &truncated) != h);
    f[1].lasti = 20;
    f[0].code = &codes[1]; /* another function innermost */
    f[1].code = &codes[0]; /* ... and the two swapped */
    assert_true(walk(&f[0], MSHOOK_MAX_FRAMES, &n, &truncated) != h);
    f[0].code = &codes[0];
    f[1].code = &codes[1];
    assert_true(walk(&f[1], MSHOOK_MAX_FRAMES, &n, &truncated) != h); /* a suffix */
    assert_int_equal(n, 2);
    uint64_t cut = walk(&f[0], 2, &n, &truncated);
    assert_int_equal(n, 2);
    assert_int_equal(truncated, 1);
    assert_true(cut != h);
    /* A frame whose code is not a code object (another type, an unreadable address, a chain
     * that loops): the walk cuts the stack there, keeps the frames below, and says so. */
    static struct fake_code_obj not_code = {1, &codes[0], NULL, NULL, NULL, 1};
    f[1].code = &not_code;
    struct hook_stack_layout lay = fake_layout();
    const struct fake_frame *const ts = &f[0];
    struct mshook_frame got[4] = {{0}};
    uint64_t skipped;
    for (int fp = 0; fp <= 1; fp++) {
        lay.fingerprint = (uint32_t)fp;
        assert_int_equal(capture(&lay, &ts, got, 4, &truncated, &skipped, NULL), 1);
        assert_int_equal(truncated, MSHOOK_STACK_INVALID);
        assert_ptr_equal((const void *)(uintptr_t)got[0].code, &codes[0]);
    }
    f[1].code = (const struct fake_code_obj *)(uintptr_t)0xdead0000;
    assert_int_equal(capture(&lay, &ts, got, 4, &truncated, &skipped, NULL), 1);
    assert_int_equal(truncated, MSHOOK_STACK_INVALID);
    static struct fake_bytes huge = {1, &fake_bytes_type, (int64_t)1 << 40, "x"};
    static struct fake_code_obj huge_table = {1, &fake_code_type, NULL, NULL, &huge, 1};
    f[1].code = &huge_table;
    assert_int_equal(capture(&lay, &ts, got, 4, &truncated, &skipped, NULL), 1);
    assert_int_equal(truncated, MSHOOK_STACK_INVALID);
    huge.size = -5;
    hook_safe_reset(); /* bad verdicts last an epoch: start afresh */
    assert_int_equal(capture(&lay, &ts, got, 4, &truncated, &skipped, NULL), 1);
    assert_int_equal(truncated, MSHOOK_STACK_INVALID);
    f[1].code = &codes[1];
    f[1].back = &f[1]; /* a chain that loops */
    uint32_t looped = capture(&lay, &ts, got, 4, &truncated, &skipped, NULL);
    assert_true(looped >= 2);
    assert_true(truncated & MSHOOK_STACK_INVALID);
    f[1].back = &f[2];
    lay.fingerprint = 0;
    f[1].code = &codes[1];

    /* The low bits pick the slot: 20,000 stacks differing in one instruction offset fill 4,096
     * slots as a random function would (about 4,000 distinct), not a handful. */
    static uint8_t used[4096];
    memset(used, 0, sizeof used);
    int distinct = 0;
    for (int i = 0; i < 20000; i++) {
        f[0].lasti = 2 * i;
        uint32_t slot = (uint32_t)walk(&f[0], MSHOOK_MAX_FRAMES, &n, &truncated) & 4095;
        distinct += !used[slot];
        used[slot] = 1;
    }
    assert_true(distinct > 3900);
    /* No thread state, no frames. */
    struct hook_stack_layout l = fake_layout();
    struct mshook_frame out[4];
    uint64_t hash;
    assert_int_equal(capture(&l, NULL, out, 4, &truncated, &hash, NULL), 0);
}

/* With fingerprints on, a later code object at a dead one's address (another name, file, line
 * table or first line) makes another stack; with them off, only the address counts. */
static void test_stack_fingerprint(void **state)
{
    (void)state;
    static const char name_a[] = "a", name_b[] = "b", file[] = "f.py";
    static struct fake_bytes table = {1, &fake_bytes_type, 20, "0123456789abcdefghij"};
    static struct fake_code_obj code = {1, &fake_code_type, name_a, file, &table, 10};
    static struct fake_frame f = {NULL, &code, 4, 0};
    const struct fake_frame *const tstate = &f;
    struct hook_stack_layout l = fake_layout();
    struct mshook_frame out[2];
    int truncated;
    uint64_t off_a, on_a, h;
    capture(&l, &tstate, out, 2, &truncated, &off_a, NULL);
    l.fingerprint = 1;
    capture(&l, &tstate, out, 2, &truncated, &on_a, NULL);
    uint64_t fp_a, fp;
    capture(&l, &tstate, out, 2, &truncated, &h, &fp_a);
    /* Another object at each field (a line table is always a bytes object: the same bytes
     * here, so only its address differs). */
    static struct fake_bytes table_b = {1, &fake_bytes_type, 20, "0123456789abcdefghij"};
    const void **fields[] = {(const void **)&code.name, (const void **)&code.filename,
                             (const void **)&code.linetable};
    const void *others[] = {name_b, name_b, &table_b};
    for (int i = 0; i < 3; i++) {
        const void *was = *fields[i];
        *fields[i] = others[i]; /* the address's next code object */
        capture(&l, &tstate, out, 2, &truncated, &h, &fp);
        assert_true(h != on_a);
        assert_true(fp != fp_a);
        l.fingerprint = 0;
        capture(&l, &tstate, out, 2, &truncated, &h, NULL);
        assert_true(h == off_a);
        l.fingerprint = 1;
        *fields[i] = was;
    }
    code.firstlineno = 11;
    capture(&l, &tstate, out, 2, &truncated, &h, NULL);
    assert_true(h != on_a);
    code.firstlineno = 10;
    /* A line table reborn at the dead one's address: its length or either end differs. */
    unsigned char *edits[] = {&table.sval[0], &table.sval[7], &table.sval[12], &table.sval[19]};
    for (int i = 0; i < 4; i++) {
        *edits[i] ^= 1;
        capture(&l, &tstate, out, 2, &truncated, &h, NULL);
        assert_true(h != on_a);
        *edits[i] ^= 1;
    }
    table.size = 19;
    capture(&l, &tstate, out, 2, &truncated, &h, NULL);
    assert_true(h != on_a);
    table.size = 3; /* shorter than 8 bytes */
    uint64_t short_fp;
    capture(&l, &tstate, out, 2, &truncated, &h, &short_fp);
    table.sval[2] ^= 1;
    capture(&l, &tstate, out, 2, &truncated, &h, &fp);
    assert_true(fp != short_fp);
    table.sval[2] ^= 1;
    table.size = 20;
    capture(&l, &tstate, out, 2, &truncated, &h, NULL);
    assert_true(h == on_a); /* the same object again: the same stack */
    assert_int_equal(out[0].code, (uint64_t)(uintptr_t)&code); /* frames keep the address */
}

/* --- the stack slot table --- */

static void test_stack_slots(void **state)
{
    (void)state;
    assert_int_equal(hook_slots_bytes(4096) % 4096, 0);
    assert_true(hook_slots_bytes(4096) >= 4096 * sizeof(struct hook_slot));
    assert_int_equal(hook_slots_bytes(64), 4096);
    size_t bytes = hook_slots_bytes(64);
    void *table = aligned_alloc(4096, bytes);
    assert_non_null(table);
    memset(table, 0, bytes);
    hook_slots_begin(table, 64);
    uint32_t slot;
    uint64_t h = 0x1234567890abcd05ull;
    assert_int_equal(hook_slots_find(h, 0x7000, 3, &slot), 0); /* never defined */
    assert_int_equal(slot, 5);
    hook_slots_define(slot, h, 0x7000, 3);
    assert_int_equal(hook_slots_find(h, 0x7000, 3, &slot), 1);
    assert_int_equal(hook_slots_find(h, 0x8000, 3, &slot), 0); /* another thread */
    assert_int_equal(hook_slots_find(h, 0x7000, 4, &slot), 0); /* another depth */
    assert_int_equal(hook_slots_find(h ^ (1ull << 40), 0x7000, 3, &slot), 0);
    assert_int_equal(slot, 5);
    /* Direct-mapped: a stack with the same low bits evicts the first. */
    uint64_t h2 = h ^ (1ull << 40);
    hook_slots_define(slot, h2, 0x7000, 3);
    assert_int_equal(hook_slots_find(h2, 0x7000, 3, &slot), 1);
    assert_int_equal(hook_slots_find(h, 0x7000, 3, &slot), 0);
    /* A code object died: nothing is reused until defined again. */
    hook_slots_invalidate();
    assert_int_equal(hook_slots_find(h2, 0x7000, 3, &slot), 0);
    hook_slots_define(slot, h2, 0x7000, 3);
    assert_int_equal(hook_slots_find(h2, 0x7000, 3, &slot), 1);
    /* The generation wraps: a slot defined 2^32 deaths ago must not match again. */
    slots_generation = UINT32_MAX;
    hook_slots_define(9, 9, 0x7000, 1);
    assert_int_equal(hook_slots_find(9, 0x7000, 1, &slot), 1);
    hook_slots_invalidate();
    assert_int_equal(slots_generation, 1);
    assert_int_equal(hook_slots_find(9, 0x7000, 1, &slot), 0);
    for (uint32_t i = 0; i < 64; i++)
        assert_int_equal(((const struct hook_slot *)table)[i].generation, 0);
    hook_slots_end();
    free(table);
}

/* --- 3.14: frames laid out like _PyInterpreterFrame (88 bytes), f_executable a tagged
 * _PyStackRef, interpreter- (3) and C-stack-owned (4) frames skipped --- */

struct fake_iframe {
    uintptr_t executable; /* _PyStackRef: object pointer | tag bits */
    const struct fake_iframe *previous;
    uint64_t pad[5];
    const unsigned char *instr_ptr; /* @56 */
    void *stackpointer;             /* @64 */
    uint16_t return_offset;         /* @72 */
    unsigned char owner;            /* @74 */
    unsigned char visited;
    uint32_t pad2;
    void *localsplus[1]; /* @80 */
};

static void test_stack_walk_314(void **state)
{
    (void)state;
    assert_int_equal(offsetof(struct fake_iframe, owner), 74);
    assert_int_equal(sizeof(struct fake_iframe), 88);
    static struct fake_code_obj codes[2] = {{1, &fake_code_type, NULL, NULL, NULL, 1},
                                            {1, &fake_code_type, NULL, NULL, NULL, 1}};
    static const unsigned char bytecode[16];
    static struct fake_iframe f[4];
    /* innermost: code 0 (tag 1: a deferred reference), then a C-stack shim (owner 4),
     * code 1 (tag 3), then the interpreter's entry frame (owner 3, executable None). */
    f[3] = (struct fake_iframe){.executable = 0, .previous = NULL, .owner = 3};
    f[2] = (struct fake_iframe){.executable = (uintptr_t)&codes[1] | 3,
                                .previous = &f[3],
                                .instr_ptr = bytecode + 4,
                                .owner = 0};
    f[1] =
        (struct fake_iframe){.executable = (uintptr_t)&codes[0] | 1, .previous = &f[2], .owner = 4};
    f[0] = (struct fake_iframe){.executable = (uintptr_t)&codes[0] | 1,
                                .previous = &f[1],
                                .instr_ptr = bytecode + 2,
                                .owner = 1};
    struct hook_stack_layout l = fake_layout();
    l.frame_model = 3;
    l.lasti_model = 4;
    l.frame_back = offsetof(struct fake_iframe, previous);
    l.frame_code = offsetof(struct fake_iframe, executable);
    l.frame_lasti = offsetof(struct fake_iframe, instr_ptr);
    l.frame_owner = offsetof(struct fake_iframe, owner);
    l.owner_cstack = 3; /* owner_skip_from: FRAME_OWNED_BY_INTERPRETER */
    l.code_tag_mask = 3;
    assert_int_equal(hook_stack_layout_check(&l), 0);
    const struct fake_iframe *const ts = &f[0];
    struct mshook_frame got[8] = {{0}};
    int truncated;
    uint64_t hash;
    assert_int_equal(capture(&l, &ts, got, 8, &truncated, &hash, NULL), 2);
    assert_ptr_equal((const void *)(uintptr_t)got[0].code, &codes[0]);
    assert_ptr_equal((const void *)(uintptr_t)got[0].lasti, bytecode + 2);
    assert_ptr_equal((const void *)(uintptr_t)got[1].code, &codes[1]);
    assert_ptr_equal((const void *)(uintptr_t)got[1].lasti, bytecode + 4);
    /* Without the mask the tagged references are not plausible pointers: nothing is kept. */
    l.code_tag_mask = 0;
    assert_int_equal(capture(&l, &ts, got, 8, &truncated, &hash, NULL), 0);
    /* Skipping from 4 up still drops the entry frame (no code object); skipping nothing
     * below 5 would keep the owner-4 shim, whose executable here is a code object. */
    l.code_tag_mask = 3;
    l.owner_cstack = 4;
    assert_int_equal(capture(&l, &ts, got, 8, &truncated, &hash, NULL), 2);
    l.owner_cstack = 5;
    assert_int_equal(capture(&l, &ts, got, 8, &truncated, &hash, NULL), 3);
    l.code_tag_mask = 8; /* a config asking for more than the tag bits is refused */
    assert_int_equal(hook_stack_layout_check(&l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_walk_hash),
        cmocka_unit_test(test_stack_walk_314),
        cmocka_unit_test(test_stack_fingerprint),
        cmocka_unit_test(test_stack_slots),
    };
    if (hook_safe_begin() != 0)
        return 1;
    return cmocka_run_group_tests_name("hook_stack", tests, NULL, NULL);
}
