/*
 * hook_code.c - describing code objects in-process and the announced set; see hook_code.h.
 */
#include "hook_code.h"

#include <stddef.h>
#include <sys/mman.h>

#define SET_MIN_BITS 12 /* 4096 slots, 32 KiB: most programs' whole set of hot code */
#define SET_MAX_BITS 24 /* 16M code objects: beyond that, announcements are repeated */

/* The str state byte, the same in 3.8-3.13 (see sampler/pystring.c). */
#define STATE_KIND_SHIFT 2
#define STATE_KIND_MASK  7
#define STATE_COMPACT    0x20
#define STATE_ASCII      0x40

struct set_slot {
    uint64_t addr; /* 0 = empty */
    uint64_t fingerprint;
};

static struct {
    struct set_slot *slots;
    uint32_t bits;
    uint64_t mask, used;
} set;

void hook_code_layout_from(struct hook_code_layout *l, const struct mshook_config *cfg,
                           const void *unicode_type, const void *bytes_type)
{
    l->name = cfg->code_name;
    l->filename = cfg->code_filename;
    l->firstlineno = cfg->code_firstlineno;
    l->linetable = cfg->code_linetable;
    l->unicode_length = cfg->unicode_length;
    l->unicode_state = cfg->unicode_state;
    l->unicode_ascii_size = cfg->unicode_ascii_size;
    l->unicode_compact_size = cfg->unicode_compact_size;
    l->unicode_data_ptr = cfg->unicode_data_ptr;
    l->bytes_size = cfg->bytes_size;
    l->bytes_sval = cfg->bytes_sval;
    l->object_type = cfg->object_type;
    l->unicode_type = unicode_type;
    l->bytes_type = bytes_type;
}

static int offset_ok(int32_t off)
{
    return off >= 0 && off < 4096;
}

int hook_code_layout_check(const struct hook_code_layout *l)
{
    const int32_t all[] = {l->name,
                           l->filename,
                           l->firstlineno,
                           l->linetable,
                           l->unicode_length,
                           l->unicode_state,
                           l->unicode_ascii_size,
                           l->unicode_compact_size,
                           l->unicode_data_ptr,
                           l->bytes_size,
                           l->bytes_sval,
                           l->object_type};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!offset_ok(all[i]))
            return -1;
    return l->unicode_type && l->bytes_type ? 0 : -1;
}

static const void *pointer_at(const void *base, int32_t off)
{
    return *(const void *const *)((const char *)base + off);
}

static int pointer_plausible(const void *p)
{
    return p && ((uintptr_t)p & 7) == 0 && (uintptr_t)p >= 4096;
}

/* The characters of the str at obj, at most cap bytes of them (whole characters). An object
 * that is not a str, or a str we cannot make sense of, gives an empty name. */
static void str_describe(const struct hook_code_layout *l, const void *obj, uint32_t cap,
                         const void **data, uint32_t *len, uint8_t *kind, int *cut)
{
    *data = NULL;
    *len = 0;
    *kind = 1;
    *cut = 0;
    if (!pointer_plausible(obj) || pointer_at(obj, l->object_type) != l->unicode_type)
        return;
    int64_t length = *(const int64_t *)((const char *)obj + l->unicode_length);
    uint8_t state = *((const uint8_t *)obj + l->unicode_state);
    uint32_t k = (state >> STATE_KIND_SHIFT) & STATE_KIND_MASK;
    if ((k != 1 && k != 2 && k != 4) || ((state & STATE_ASCII) && k != 1) || length < 0)
        return;
    const void *chars;
    if (state & STATE_COMPACT)
        chars = (const char *)obj +
                ((state & STATE_ASCII) ? l->unicode_ascii_size : l->unicode_compact_size);
    else
        chars = pointer_at(obj, l->unicode_data_ptr);
    if (!chars)
        return;
    uint64_t n = (uint64_t)length;
    if (n > cap / k) { /* n * k could overflow for a corrupted length */
        n = cap / k;
        *cut = 1;
    }
    *data = chars;
    *len = (uint32_t)n;
    *kind = (uint8_t)k;
}

void hook_code_describe(const struct hook_code_layout *l, const void *code, uint32_t table_max,
                        struct hook_code_desc *out)
{
    int cut;
    out->flags = 0;
    out->firstlineno = *(const int32_t *)((const char *)code + l->firstlineno);
    str_describe(l, pointer_at(code, l->name), MSHOOK_CODE_NAME_MAX, &out->name, &out->name_len,
                 &out->name_kind, &cut);
    if (cut)
        out->flags |= MSHOOK_CODE_NAME_CUT;
    str_describe(l, pointer_at(code, l->filename), MSHOOK_CODE_FILENAME_MAX, &out->filename,
                 &out->filename_len, &out->filename_kind, &cut);
    if (cut)
        out->flags |= MSHOOK_CODE_FILENAME_CUT;
    out->table = NULL;
    out->table_len = 0;
    const void *t = pointer_at(code, l->linetable);
    if (pointer_plausible(t) && pointer_at(t, l->object_type) == l->bytes_type) {
        int64_t size = *(const int64_t *)((const char *)t + l->bytes_size);
        if (size >= 0 && (uint64_t)size <= table_max) {
            out->table = (const char *)t + l->bytes_sval;
            out->table_len = (uint32_t)size;
        }
    }
    if (!out->table)
        out->flags |= MSHOOK_CODE_NO_TABLE;
}

static size_t set_bytes(uint32_t bits)
{
    return ((size_t)1 << bits) * sizeof(struct set_slot);
}

static struct set_slot *set_map(uint32_t bits)
{
    void *p = mmap(NULL, set_bytes(bits), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uint64_t set_home(uint64_t addr, uint32_t bits)
{
    /* Code objects are 16-aligned; Fibonacci hashing spreads the remaining bits. */
    return ((addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - bits);
}

int hook_code_set_begin(void)
{
    hook_code_set_end();
    set.slots = set_map(SET_MIN_BITS);
    if (!set.slots)
        return -1;
    set.bits = SET_MIN_BITS;
    set.mask = ((uint64_t)1 << SET_MIN_BITS) - 1;
    set.used = 0;
    return 0;
}

void hook_code_set_end(void)
{
    if (set.slots)
        munmap(set.slots, set_bytes(set.bits));
    set.slots = NULL;
    set.bits = 0;
    set.mask = 0;
    set.used = 0;
}

static void set_slot_put(struct set_slot *slots, uint32_t bits, struct set_slot entry)
{
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    uint64_t i = set_home(entry.addr, bits);
    while (slots[i].addr)
        i = (i + 1) & mask;
    slots[i] = entry;
}

static int set_grow(void)
{
    if (set.bits >= SET_MAX_BITS)
        return -1;
    struct set_slot *bigger = set_map(set.bits + 1);
    if (!bigger)
        return -1;
    for (uint64_t i = 0; i <= set.mask; i++)
        if (set.slots[i].addr)
            set_slot_put(bigger, set.bits + 1, set.slots[i]);
    munmap(set.slots, set_bytes(set.bits));
    set.slots = bigger;
    set.bits++;
    set.mask = ((uint64_t)1 << set.bits) - 1;
    return 0;
}

static int64_t set_slot_find(uint64_t addr)
{
    if (!set.slots || addr == 0)
        return -1;
    uint64_t i = set_home(addr, set.bits);
    for (uint64_t probes = 0; probes <= set.mask; probes++) {
        if (set.slots[i].addr == addr)
            return (int64_t)i;
        if (set.slots[i].addr == 0)
            return -1;
        i = (i + 1) & set.mask;
    }
    return -1;
}

int hook_code_set_contains(uint64_t addr, uint64_t fingerprint)
{
    int64_t i = set_slot_find(addr);
    return i >= 0 && set.slots[i].fingerprint == fingerprint;
}

int hook_code_set_add(uint64_t addr, uint64_t fingerprint)
{
    if (!set.slots || addr == 0)
        return -1;
    int64_t i = set_slot_find(addr);
    if (i >= 0) {
        set.slots[i].fingerprint = fingerprint;
        return 0;
    }
    /* keep the load under 1/2 so probes stay short */
    if ((set.used + 1) * 2 > set.mask + 1 && set_grow() != 0)
        return -1;
    set_slot_put(set.slots, set.bits, (struct set_slot){addr, fingerprint});
    set.used++;
    return 0;
}

int hook_code_set_remove(uint64_t addr)
{
    int64_t found = set_slot_find(addr);
    if (found < 0)
        return -1;
    /* Backward shift: pull later entries of the cluster into the hole when their home slot
     * does not lie cyclically in (hole, j], so every entry stays reachable from its home. */
    uint64_t hole = (uint64_t)found, j = hole;
    for (;;) {
        j = (j + 1) & set.mask;
        uint64_t a = set.slots[j].addr;
        if (a == 0)
            break;
        uint64_t home = set_home(a, set.bits);
        int stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        set.slots[hole] = set.slots[j];
        hole = j;
    }
    set.slots[hole] = (struct set_slot){0, 0};
    set.used--;
    return 0;
}
