/*
 * hook_safe.c - fault-safe reads and the proven-code cache; see hook_safe.h.
 */
#include "hook_safe.h"

#include <errno.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define CACHE_BITS 13  /* 8192 entries of 64 bytes: 512 KiB of static memory, touched on use */
#define SPAN_MAX   512 /* the most header bytes read at once (every offset in use is < 256) */
#define TOUCH_BUF  256
/* A line table longer than this is absurd (CPython's longest are a few hundred KiB): bad. */
#define TABLE_SANE_MAX ((int64_t)1 << 26)

/* The str state byte, the same in 3.8-3.13 (see sampler/pystring.c). */
#define STATE_KIND_SHIFT 2
#define STATE_KIND_MASK  7
#define STATE_COMPACT    0x20
#define STATE_ASCII      0x40

struct cache_entry {
    uint64_t code; /* 0 = empty; written last */
    uint64_t name, filename, table;
    int64_t table_len; /* -1: the table is not a bytes object, never read past its header */
    uint64_t fingerprint;
    int32_t firstlineno;
    uint16_t verdict; /* enum hook_safe_verdict */
    uint16_t _pad;
    uint32_t session;
    uint32_t epoch; /* bad verdicts: the epoch they belong to */
};

static struct cache_entry cache[1u << CACHE_BITS] __attribute__((aligned(64)));
static uint32_t cache_session = 1;
static pid_t self_pid;

int hook_safe_read(const void *addr, void *out, size_t n)
{
    int saved = errno;
    struct iovec local = {out, n}, remote = {(void *)(uintptr_t)addr, n};
    ssize_t got = syscall(SYS_process_vm_readv, self_pid, &local, 1ul, &remote, 1ul, 0ul);
    errno = saved;
    return got == (ssize_t)n ? 0 : -1;
}

/* Whether n bytes at addr are readable, without keeping them: every local vector names one
 * small buffer, so a few KiB are checked with one syscall and no big buffer on the stack. */
static int safe_touch(const void *addr, size_t n)
{
    unsigned char buf[TOUCH_BUF];
    struct iovec local[16];
    size_t vecs = (n + TOUCH_BUF - 1) / TOUCH_BUF;
    if (n == 0)
        return 0;
    if (vecs > 16)
        return -1;
    for (size_t i = 0; i < vecs; i++)
        local[i] = (struct iovec){buf, i + 1 < vecs ? TOUCH_BUF : n - i * TOUCH_BUF};
    struct iovec remote = {(void *)(uintptr_t)addr, n};
    int saved = errno;
    ssize_t got =
        syscall(SYS_process_vm_readv, self_pid, local, (unsigned long)vecs, &remote, 1ul, 0ul);
    errno = saved;
    return got == (ssize_t)n ? 0 : -1;
}

int hook_safe_begin(void)
{
    self_pid = getpid();
    uint64_t probe = 0x5afe, copy = 0;
    int saved = errno;
    struct iovec local = {&copy, sizeof copy}, remote = {&probe, sizeof probe};
    ssize_t got = syscall(SYS_process_vm_readv, self_pid, &local, 1ul, &remote, 1ul, 0ul);
    int why = got < 0 ? errno : 0;
    errno = saved;
    if (got != (ssize_t)sizeof copy || copy != probe)
        return why ? why : EIO;
    return 0;
}

void hook_safe_reset(void)
{
    __atomic_store_n(&cache_session, cache_session + 1 ? cache_session + 1 : 1, __ATOMIC_RELAXED);
}

static struct cache_entry *slot_of(uint64_t code)
{
    return &cache[((code >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - CACHE_BITS)];
}

void hook_safe_forget(uint64_t addr)
{
    struct cache_entry *e = slot_of(addr);
    if (__atomic_load_n(&e->code, __ATOMIC_RELAXED) == addr)
        __atomic_store_n(&e->code, 0, __ATOMIC_RELEASE);
}

static int plausible(uint64_t p)
{
    return p && (p & 7) == 0 && p >= 4096;
}

static uint64_t word_at(const unsigned char *buf, int32_t off)
{
    uint64_t v;
    __builtin_memcpy(&v, buf + off, sizeof v);
    return v;
}

static int32_t span_of(const int32_t *offs, size_t n)
{
    int32_t span = 0;
    for (size_t i = 0; i < n; i++)
        if (offs[i] + 8 > span)
            span = offs[i] + 8;
    return span;
}

/* A str the describer will copy from: 0 when what it will read is readable (or it will read
 * nothing past the header: not a str, an odd one), -1 when not. cap as hook_code_describe's. */
static int str_proven(const struct hook_code_layout *l, uint64_t obj, uint32_t cap)
{
    if (!plausible(obj))
        return 0; /* not followed by the describer */
    const int32_t offs[] = {l->object_type, l->unicode_length, l->unicode_state,
                            l->unicode_data_ptr};
    int32_t span = span_of(offs, sizeof offs / sizeof offs[0]);
    unsigned char buf[SPAN_MAX];
    if (span > SPAN_MAX || hook_safe_read((const void *)(uintptr_t)obj, buf, (size_t)span) != 0)
        return -1;
    if ((const void *)(uintptr_t)word_at(buf, l->object_type) != l->unicode_type)
        return 0;
    int64_t length = (int64_t)word_at(buf, l->unicode_length);
    uint8_t state = buf[l->unicode_state];
    uint32_t k = (state >> STATE_KIND_SHIFT) & STATE_KIND_MASK;
    if ((k != 1 && k != 2 && k != 4) || ((state & STATE_ASCII) && k != 1) || length < 0)
        return 0;
    uint64_t chars;
    if (state & STATE_COMPACT)
        chars = obj +
                (uint64_t)((state & STATE_ASCII) ? l->unicode_ascii_size : l->unicode_compact_size);
    else
        chars = word_at(buf, l->unicode_data_ptr);
    if (!chars)
        return 0;
    uint64_t n = (uint64_t)length;
    if (n > cap / k)
        n = cap / k;
    return safe_touch((const void *)(uintptr_t)chars, (size_t)(n * k));
}

/* The fingerprint (hook_stack.h) of a code object whose fields are those of e, its table (when
 * e->table_len >= 0) read live: the caller made sure the object still has e's fields, so its
 * table has e's length and the 8 bytes at either end lie in bytes proven readable. */
static uint64_t fingerprint_of(const struct hook_stack_layout *sl, const struct cache_entry *e)
{
    uint64_t fp = e->code ^ (e->name * 0x9e3779b97f4a7c15ull) ^
                  (e->filename * 0xc2b2ae3d27d4eb4full) ^ (e->table * 0x165667b19e3779f9ull) ^
                  ((uint64_t)(uint32_t)e->firstlineno << 32);
    if (e->table_len >= 0) {
        int64_t n = e->table_len;
        const unsigned char *bytes = (const unsigned char *)(uintptr_t)e->table + sl->bytes_sval;
        uint64_t head = 0, tail = 0;
        size_t k = n < 8 ? (size_t)n : 8;
        for (size_t i = 0; i < k; i++) {
            head = head << 8 | bytes[i];
            tail = tail << 8 | bytes[(size_t)n - k + i];
        }
        fp ^= ((uint64_t)n * 0xd6e8feb86659fd93ull) ^ (head * 0xa0761d6478bd642full) ^
              (tail * 0xe7037ed1a0b428dbull);
    }
    return fp;
}

/* The slow path: proves the object at code from scratch into e. */
static int code_prove(const struct hook_stack_layout *sl, const struct hook_code_layout *cl,
                      uint64_t code, uint32_t epoch, struct cache_entry *e)
{
    struct cache_entry v = {.code = code,
                            .session = cache_session,
                            .epoch = epoch,
                            .verdict = HOOK_SAFE_BAD,
                            .table_len = -1};
    const int32_t offs[] = {sl->object_type, sl->code_name, sl->code_filename, sl->code_linetable,
                            sl->code_firstlineno};
    int32_t span = span_of(offs, sizeof offs / sizeof offs[0]);
    unsigned char buf[SPAN_MAX];
    if (span > SPAN_MAX || hook_safe_read((const void *)(uintptr_t)code, buf, (size_t)span) != 0 ||
        (const void *)(uintptr_t)word_at(buf, sl->object_type) != sl->code_type)
        goto done;
    v.name = word_at(buf, sl->code_name);
    v.filename = word_at(buf, sl->code_filename);
    v.table = word_at(buf, sl->code_linetable);
    __builtin_memcpy(&v.firstlineno, buf + sl->code_firstlineno, sizeof v.firstlineno);
    if (plausible(v.table)) {
        const int32_t toffs[] = {sl->object_type, sl->bytes_size};
        int32_t tspan = span_of(toffs, 2);
        if (tspan > SPAN_MAX ||
            hook_safe_read((const void *)(uintptr_t)v.table, buf, (size_t)tspan) != 0)
            goto done;
        if ((const void *)(uintptr_t)word_at(buf, sl->object_type) == sl->bytes_type) {
            int64_t n = (int64_t)word_at(buf, sl->bytes_size);
            if (n < 0 || n > TABLE_SANE_MAX)
                goto done;
            size_t k = n < 8 ? (size_t)n : 8;
            unsigned char ends[16];
            const unsigned char *bytes = (const unsigned char *)(uintptr_t)v.table + sl->bytes_sval;
            if (k && (hook_safe_read(bytes, ends, k) != 0 ||
                      hook_safe_read(bytes + n - (int64_t)k, ends + 8, k) != 0))
                goto done;
            v.table_len = n;
        }
    }
    if (str_proven(cl, v.name, MSHOOK_CODE_NAME_MAX) != 0 ||
        str_proven(cl, v.filename, MSHOOK_CODE_FILENAME_MAX) != 0)
        goto done;
    v.verdict = HOOK_SAFE_CODE;
done:
    __atomic_store_n(&e->code, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    e->name = v.name;
    e->filename = v.filename;
    e->table = v.table;
    e->table_len = v.table_len;
    e->firstlineno = v.firstlineno;
    e->fingerprint = v.verdict == HOOK_SAFE_CODE ? fingerprint_of(sl, &v) : 0;
    e->verdict = v.verdict;
    e->session = v.session;
    e->epoch = v.epoch;
    __atomic_store_n(&e->code, code, __ATOMIC_RELEASE);
    return v.verdict;
}

/* A good entry's object still has the fields it was proven with (its own memory and its
 * table's header were proven readable). */
static int code_unchanged(const struct hook_stack_layout *sl, const struct cache_entry *e,
                          const char *c)
{
    if (*(const void *const *)(c + sl->object_type) != sl->code_type ||
        *(const uint64_t *)(c + sl->code_name) != e->name ||
        *(const uint64_t *)(c + sl->code_filename) != e->filename ||
        *(const uint64_t *)(c + sl->code_linetable) != e->table ||
        *(const int32_t *)(c + sl->code_firstlineno) != e->firstlineno)
        return 0;
    if (e->table_len >= 0 &&
        (*(const void *const *)((const char *)(uintptr_t)e->table + sl->object_type) !=
             sl->bytes_type ||
         *(const int64_t *)((const char *)(uintptr_t)e->table + sl->bytes_size) != e->table_len))
        return 0;
    return 1;
}

int hook_safe_code(const struct hook_stack_layout *sl, const struct hook_code_layout *cl,
                   const void *code, int reread, uint32_t epoch, uint64_t *fingerprint)
{
    uint64_t addr = (uint64_t)(uintptr_t)code;
    struct cache_entry *e = slot_of(addr);
    uint64_t first = __atomic_load_n(&e->code, __ATOMIC_ACQUIRE);
    if (first == addr) {
        uint32_t verdict = e->verdict, session = e->session, when = e->epoch;
        uint64_t fp = e->fingerprint;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&e->code, __ATOMIC_RELAXED) == addr && session == cache_session) {
            if (verdict == HOOK_SAFE_BAD && when == epoch)
                return HOOK_SAFE_BAD;
            if (verdict == HOOK_SAFE_CODE && !reread) {
                *fingerprint = fp;
                return HOOK_SAFE_CODE;
            }
            if (verdict == HOOK_SAFE_CODE && code_unchanged(sl, e, code)) {
                /* recomputed: a table reborn at the same address with the same length may
                 * differ in its bytes (what the fingerprint's ends are for) */
                *fingerprint = fingerprint_of(sl, e);
                return HOOK_SAFE_CODE;
            }
        }
    }
    int verdict = code_prove(sl, cl, addr, epoch, e);
    if (verdict == HOOK_SAFE_CODE)
        *fingerprint = e->fingerprint;
    return verdict;
}
