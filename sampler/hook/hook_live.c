/*
 * hook_live.c - the sampled-live-blocks table; see hook_live.h.
 */
#include "hook_live.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#define LIVE_MIN_BITS 12 /* 4096 slots, 64 KiB: holds a whole default-rate session */
#define LIVE_MAX_BITS 28 /* 268M slots, 4 GiB: beyond that the table refuses and we drop */

struct live_slot {
    uint64_t addr; /* 0 = empty */
    uint64_t size;
};

/* One capacity class: a header page then 2^bits slots, in one anonymous mapping. The header
 * has a page of its own so that releasing the slots never zeroes the mask a lock-free reader
 * is using. */
#define LIVE_HEADER_BYTES 4096

struct live_map {
    uint32_t bits;
    uint32_t _pad;
    uint64_t mask;
    struct live_slot *slots; /* the mapping + LIVE_HEADER_BYTES */
};

uint64_t hook_live_filter_bits[(1u << HOOK_LIVE_FILTER_BITS) / 64];
static uint8_t filter_counts[1u << HOOK_LIVE_FILTER_BITS]; /* changed under the lock only */

static struct live_map *live_maps[LIVE_MAX_BITS + 1]; /* reserved on first use, never unmapped */
static struct live_map *live_current;                 /* read lock-free */
static uint64_t live_entries;                         /* read lock-free */

static size_t live_map_bytes(uint32_t bits)
{
    return LIVE_HEADER_BYTES + ((size_t)1 << bits) * sizeof(struct live_slot);
}

/* The (empty) mapping of class bits, reserving it the first time. */
static struct live_map *live_map_get(uint32_t bits)
{
    if (bits > LIVE_MAX_BITS)
        return NULL;
    if (!live_maps[bits]) {
        void *p = mmap(NULL, live_map_bytes(bits), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        struct live_map *m = p;
        m->bits = bits;
        m->mask = ((uint64_t)1 << bits) - 1;
        m->slots = (struct live_slot *)((char *)p + LIVE_HEADER_BYTES);
        live_maps[bits] = m;
    }
    return live_maps[bits];
}

/* Gives a class's pages back; reads of it keep working and return zeros (empty slots). */
static void live_map_release(struct live_map *m)
{
    madvise(m->slots, live_map_bytes(m->bits) - LIVE_HEADER_BYTES, MADV_DONTNEED);
}

static uint64_t slot_of(const struct live_map *m, uint64_t addr)
{
    /* Blocks are 16-aligned; Fibonacci hashing spreads the remaining bits. */
    return ((addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - m->bits);
}

static uint64_t filter_index(uint64_t addr)
{
    return ((addr >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - HOOK_LIVE_FILTER_BITS);
}

/* Publishes whether counter i is non-zero (one writer: the lock's holder). */
static void filter_bit_set(uint64_t i, int on)
{
    uint64_t *word = &hook_live_filter_bits[i >> 6];
    uint64_t v = __atomic_load_n(word, __ATOMIC_RELAXED);
    v = on ? v | (1ull << (i & 63)) : v & ~(1ull << (i & 63));
    __atomic_store_n(word, v, __ATOMIC_RELAXED);
}

static void filter_add(uint64_t addr)
{
    uint64_t i = filter_index(addr);
    if (filter_counts[i] < 255)
        filter_counts[i]++;
    filter_bit_set(i, 1);
}

static void filter_remove(uint64_t addr)
{
    uint64_t i = filter_index(addr);
    uint8_t v = filter_counts[i];
    if (v > 0 && v < 255) { /* a saturated counter no longer knows its count: it stays */
        filter_counts[i] = (uint8_t)(v - 1);
        if (v == 1)
            filter_bit_set(i, 0);
    }
}

static void filter_clear(void)
{
    memset(filter_counts, 0, sizeof filter_counts);
    for (size_t i = 0; i < sizeof hook_live_filter_bits / sizeof hook_live_filter_bits[0]; i++)
        __atomic_store_n(&hook_live_filter_bits[i], 0, __ATOMIC_RELAXED);
}

static uint64_t load_u64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void store_u64(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

int hook_live_begin(void)
{
    struct live_map *m = live_map_get(LIVE_MIN_BITS);
    if (!m)
        return -1;
    store_u64(&live_entries, 0);
    filter_clear();
    __atomic_store_n(&live_current, m, __ATOMIC_RELEASE);
    return 0;
}

static void slot_put(struct live_map *m, uint64_t addr, uint64_t size)
{
    uint64_t i = slot_of(m, addr);
    while (load_u64(&m->slots[i].addr) != 0)
        i = (i + 1) & m->mask;
    store_u64(&m->slots[i].size, size);
    store_u64(&m->slots[i].addr, addr);
}

/* Rehash into the next class, then release the old one. */
static int live_grow(void)
{
    struct live_map *old = live_current;
    struct live_map *m = live_map_get(old->bits + 1);
    if (!m)
        return -1;
    for (uint64_t i = 0; i <= old->mask; i++) {
        uint64_t a = load_u64(&old->slots[i].addr);
        if (a)
            slot_put(m, a, old->slots[i].size);
    }
    __atomic_store_n(&live_current, m, __ATOMIC_RELEASE);
    live_map_release(old);
    return 0;
}

/* Replaces addr's size if present, else adds it: 1 or 0. */
static int slot_upsert(struct live_map *m, uint64_t addr, uint64_t size, uint64_t *old_size)
{
    uint64_t i = slot_of(m, addr);
    for (;;) {
        uint64_t a = load_u64(&m->slots[i].addr);
        if (a == addr) {
            *old_size = m->slots[i].size;
            store_u64(&m->slots[i].size, size);
            return 1;
        }
        if (a == 0)
            break;
        i = (i + 1) & m->mask;
    }
    store_u64(&m->slots[i].size, size);
    store_u64(&m->slots[i].addr, addr);
    return 0;
}

int hook_live_insert(uint64_t addr, uint64_t size, uint64_t *old_size)
{
    struct live_map *m = live_current;
    if (!m || addr == 0)
        return -1;
    /* keep the load under 1/2 so probes stay short */
    if ((live_entries + 1) * 2 > m->mask + 1) {
        if (live_grow() != 0)
            return -1;
        m = live_current;
    }
    if (slot_upsert(m, addr, size, old_size))
        return 1;
    filter_add(addr);
    store_u64(&live_entries, live_entries + 1);
    return 0;
}

static int64_t slot_find(const struct live_map *m, uint64_t addr)
{
    uint64_t i = slot_of(m, addr);
    for (uint64_t probes = 0; probes <= m->mask; probes++) {
        uint64_t a = load_u64(&m->slots[i].addr);
        if (a == addr)
            return (int64_t)i;
        if (a == 0)
            return -1;
        i = (i + 1) & m->mask;
    }
    return -1;
}

int hook_live_remove(uint64_t addr, uint64_t *size)
{
    struct live_map *m = live_current;
    if (!m || addr == 0)
        return -1;
    int64_t found = slot_find(m, addr);
    if (found < 0)
        return -1;
    uint64_t hole = (uint64_t)found;
    *size = m->slots[hole].size;
    /* Backward shift: pull later entries of the cluster into the hole when their home slot
     * does not lie cyclically in (hole, j], so every entry stays reachable from its home. */
    uint64_t j = hole;
    for (;;) {
        j = (j + 1) & m->mask;
        uint64_t a = load_u64(&m->slots[j].addr);
        if (a == 0)
            break;
        uint64_t home = slot_of(m, a);
        int stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        store_u64(&m->slots[hole].size, m->slots[j].size);
        store_u64(&m->slots[hole].addr, a);
        hole = j;
    }
    store_u64(&m->slots[hole].addr, 0);
    store_u64(&m->slots[hole].size, 0);
    store_u64(&live_entries, live_entries - 1);
    filter_remove(addr);
    return 0;
}

void hook_live_prefetch(uint64_t addr)
{
    const struct live_map *m = __atomic_load_n(&live_current, __ATOMIC_ACQUIRE);
    if (m)
        __builtin_prefetch(&m->slots[slot_of(m, addr)], 1);
}

int hook_live_contains(uint64_t addr)
{
    if (!hook_live_maybe(addr) || load_u64(&live_entries) == 0)
        return 0;
    const struct live_map *m = __atomic_load_n(&live_current, __ATOMIC_ACQUIRE);
    return m && slot_find(m, addr) >= 0;
}

uint64_t hook_live_count(void)
{
    return load_u64(&live_entries);
}

void hook_live_reset(void)
{
    struct live_map *m = live_current;
    store_u64(&live_entries, 0);
    filter_clear();
    if (m)
        live_map_release(m);
}
