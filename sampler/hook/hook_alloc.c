/*
 * hook_alloc.c - the wrappers installed into CPython's allocator domains; see hook_alloc.h.
 *
 * The wrappers are the hot path of the whole profiler (tens of millions of calls a second),
 * so their common case is: a relaxed flag load, then for an allocation one counter bump that
 * is also the tick clock and the sampler's byte countdown, for a free the live filter's byte
 * (and, in the object domain, the block's type), then a TAIL CALL to the original allocator,
 * with no frame of our own. The sampling decision is taken
 * before the allocation for that reason; only sampled events (about one per rate bytes) and
 * frees the filter cannot rule out take the out-of-line paths that call the original and
 * record afterwards.
 *
 * The wrappers also carry the session's periodic duties, because the hook keeps no thread
 * while recording (a thread would change the target: CPython 3.12+ warns on fork() in a
 * multi-threaded process). Every WRAP_TICK_CALLS allocations, as the allocation counter
 * counts them, they call the session's tick (hook.c) with the GIL held,
 * before the call itself: a tick that ends the session leaves that very call a plain
 * pass-through to the original allocator.
 *
 * Frees in the object domain test whether the block is a code object (CODE_GONE records);
 * the memory domain never holds one, so it gets wrappers without that test.
 *
 * Routing sampled blocks through the raw domain (hook_alloc.h says when): the object and
 * memory domains keep pymalloc's own free, untouched, and a sampled request is made larger
 * than pymalloc's small-request limit, so that pymalloc itself hands it to PyMem_RawMalloc and,
 * when the program frees it, to PyMem_RawFree, where the raw domain's free wrapper (the only
 * raw function we wrap) sees it. pymalloc counts such blocks as its own "raw" blocks on both
 * ways, so sys.getallocatedblocks() is unchanged.
 */
#include "hook_alloc.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>

#include "hook_abi.h"
#include "hook_live.h"
#include "hook_record.h"
#include "hook_safe.h"

/* 16 slots: three per session, plus room for sessions whose wrappers someone else re-wrapped. */
#define WRAP_SLOTS 16

/* pymalloc serves requests up to 512 bytes from its pools and passes larger ones to
 * PyMem_RawMalloc (SMALL_REQUEST_THRESHOLD, 512 on 3.8-3.13): a routed sample asks for at least
 * one byte more. */
#define PYMALLOC_SMALL_MAX 512

/* Allocations between ticks, a power of two: a tick costs a clock read and a few stores into
 * the shared header (a few hundred ns), so 1/1024 of it is lost in the noise of one wrapped
 * call, while a busy target notices a stop request or a dead memsnap within microseconds and
 * a slow one (a thousand allocations a second) within a second or so. */
#define WRAP_TICK_CALLS 1024u

enum wrap_state {
    WRAP_FREE = 0,
    WRAP_INSTALLED = 1,
    WRAP_RETIRED = 2, /* left in someone's chain as a pass-through: never reused */
};

struct hook_wrap {
    struct hook_allocator orig; /* what we call */
    struct hook_allocator mine; /* what we installed (uninstall checks it is still on top) */
    uint32_t recording;         /* read on every call, relaxed */
    uint32_t state;             /* enum wrap_state */
    int domain;
    int route_raw; /* object/memory domain: sampled requests go to raw memory */
};

static struct hook_wrap wrap_slots[WRAP_SLOTS];
static struct hook_wrap *wrap_installed[HOOK_DOMAIN_OBJ + 1]; /* this session's, per domain */
static void (*wrap_tick_fn)(void);                            /* the session's tick */
/* CPython's own raw free, for a call that raced PyMem_SetAllocator (see wrap_free_raw). Set
 * before the raw domain is first wrapped, never changed: routing requires the default. */
static void (*raw_free_default)(void *ctx, void *ptr);

static inline int wrap_recording(const struct hook_wrap *w)
{
    return __atomic_load_n(&w->recording, __ATOMIC_RELAXED) != 0;
}

/* The tick, out of line: it runs once per WRAP_TICK_CALLS calls. Returns whether the call
 * is still to be recorded (the tick may have just ended the session). */
__attribute__((noinline)) static int wrap_tick(const struct hook_wrap *w)
{
    wrap_tick_fn();
    return wrap_recording(w);
}

/* Counts a call in *counter (GIL-serialised; relaxed so that the tick may read it) and runs
 * the tick when the count reaches a multiple of WRAP_TICK_CALLS. Returns whether the call is
 * to be recorded; a call the tick's end of the session turned into a pass-through is not
 * counted (exact mode: every counted allocation is a recorded one). */
static inline int wrap_count(const struct hook_wrap *w, uint64_t *counter)
{
    uint64_t n = __atomic_load_n(counter, __ATOMIC_RELAXED) + 1;
    if (__builtin_expect((n & (WRAP_TICK_CALLS - 1)) == 0, 0) && !wrap_tick(w))
        return 0;
    __atomic_store_n(counter, n, __ATOMIC_RELAXED);
    return 1;
}

/* The next count of *counter when this call neither is a tick's nor needs anything but the
 * fast path, else 0: the common case decides with no call of its own, so every wrapper's
 * fast path ends in a tail call and needs no saved registers. */
static inline uint64_t wrap_next_count(const uint64_t *counter)
{
    uint64_t n = __atomic_load_n(counter, __ATOMIC_RELAXED) + 1;
    return (n & (WRAP_TICK_CALLS - 1)) != 0 ? n : 0;
}

static inline void wrap_store_count(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, n, __ATOMIC_RELAXED);
}

/* Whether a request of size bytes leaves the sampling point ahead, without counting it: then
 * *left is the countdown once it is counted (the caller stores it). Fast paths whose slow path
 * counts for itself (calloc, realloc) test first and count only when they stay fast. */
static inline int sampler_would_skip(size_t size, int64_t *left)
{
    *left = hook_recorder.sampler.countdown - (int64_t)size;
    return *left > 0;
}

/* The size to ask the original for, for a sampled request of size bytes. */
static inline size_t sampled_request(const struct hook_wrap *w, size_t size)
{
    return w->route_raw && size <= PYMALLOC_SMALL_MAX ? PYMALLOC_SMALL_MAX + 1 : size;
}

/* An allocation the sampler picked, or any allocation whose count is a tick's. Its size is
 * already counted down (sampled: the countdown reached its point). */
__attribute__((noinline)) static void *malloc_slow(struct hook_wrap *w, size_t size, int sampled)
{
    if (!wrap_count(w, &hook_recorder.counters.alloc_count) || !sampled)
        return w->orig.malloc(w->orig.ctx, size);
    hook_record_alloc_take(0); /* draws the next gap */
    void *p = w->orig.malloc(w->orig.ctx, sampled_request(w, size));
    if (p)
        hook_record_sampled_alloc(p, size, 0);
    return p;
}

static void *wrap_malloc(void *ctx, size_t size)
{
    struct hook_wrap *w = ctx;
    if (wrap_recording(w)) {
        uint64_t n = wrap_next_count(&hook_recorder.counters.alloc_count);
        int sampled = !hook_sampler_skip(&hook_recorder.sampler, size);
        if (__builtin_expect(n == 0 || sampled, 0))
            return malloc_slow(w, size, sampled);
        wrap_store_count(&hook_recorder.counters.alloc_count, n);
    }
    return w->orig.malloc(w->orig.ctx, size);
}

__attribute__((noinline)) static void *calloc_slow(struct hook_wrap *w, size_t nelem, size_t elsize)
{
    size_t size;
    if (__builtin_mul_overflow(nelem, elsize, &size))
        size = SIZE_MAX; /* the original refuses it; the countdown just sees a big request */
    if (!wrap_count(w, &hook_recorder.counters.alloc_count) || !hook_record_alloc_take(size))
        return w->orig.calloc(w->orig.ctx, nelem, elsize);
    void *p = sampled_request(w, size) != size
                  ? w->orig.calloc(w->orig.ctx, 1, sampled_request(w, size))
                  : w->orig.calloc(w->orig.ctx, nelem, elsize);
    if (p)
        hook_record_sampled_alloc(p, size, 0);
    return p;
}

static void *wrap_calloc(void *ctx, size_t nelem, size_t elsize)
{
    struct hook_wrap *w = ctx;
    if (wrap_recording(w)) {
        uint64_t n = wrap_next_count(&hook_recorder.counters.alloc_count);
        size_t size;
        int64_t left;
        if (__builtin_expect(n == 0 || __builtin_mul_overflow(nelem, elsize, &size) ||
                                 !sampler_would_skip(size, &left),
                             0))
            return calloc_slow(w, nelem, elsize);
        hook_recorder.sampler.countdown = left;
        wrap_store_count(&hook_recorder.counters.alloc_count, n);
    }
    return w->orig.calloc(w->orig.ctx, nelem, elsize);
}

/* A free of a code object, or one that the live filter could not rule out. */
__attribute__((noinline)) static void free_slow(struct hook_wrap *w, void *ptr)
{
    /* Code objects come from and go back to the object domain (PyObject_Malloc/Free on
     * 3.8-3.13). Before the free: the block still holds the object. */
    if (w->domain == HOOK_DOMAIN_OBJ && hook_record_is_code(ptr))
        hook_record_code_free(ptr);
    int maybe = hook_record_free_maybe(ptr);
    if (maybe && !hook_recorder.exact)
        hook_live_prefetch((uint64_t)(uintptr_t)ptr); /* overlaps the original free */
    w->orig.free(w->orig.ctx, ptr);
    if (maybe)
        hook_record_sampled_free(ptr);
}

/* Frees are not counted (no one reads the count) and do not tick: allocations do, and a
 * program that frees keeps allocating. */
static void wrap_free_mem(void *ctx, void *ptr)
{
    struct hook_wrap *w = ctx;
    if (ptr && wrap_recording(w) && __builtin_expect(hook_record_free_maybe(ptr), 0))
        return free_slow(w, ptr);
    w->orig.free(w->orig.ctx, ptr);
}

static void wrap_free_obj(void *ctx, void *ptr)
{
    struct hook_wrap *w = ctx;
    if (ptr && wrap_recording(w) &&
        __builtin_expect(hook_record_is_code(ptr) || hook_record_free_maybe(ptr), 0))
        return free_slow(w, ptr);
    w->orig.free(w->orig.ctx, ptr);
}

/* A raw free the live filter could not rule out. The FREE is recorded before the block goes
 * back: raw frees need no GIL, so once it is back another thread may get the address from
 * malloc, and a sampled allocation there must follow this FREE in the ring. */
__attribute__((noinline)) static void free_slow_raw(struct hook_wrap *w, void *ptr)
{
    hook_record_sampled_free(ptr);
    w->orig.free(w->orig.ctx, ptr);
}

/* The raw domain's free while sampled blocks are routed to it: every free of a routed block
 * comes here (from pymalloc's free, GIL held), among all of the program's raw frees (from any
 * thread). ctx is NULL when the caller read the domain's ctx and free on either side of
 * PyMem_SetAllocator's copy (installing or restoring): CPython's own free then, which ignores
 * ctx, as routing requires. */
static void wrap_free_raw(void *ctx, void *ptr)
{
    struct hook_wrap *w = ctx;
    if (__builtin_expect(!w, 0))
        return raw_free_default(NULL, ptr);
    if (ptr && wrap_recording(w) && __builtin_expect(hook_live_maybe((uintptr_t)ptr), 0))
        return free_slow_raw(w, ptr);
    w->orig.free(w->orig.ctx, ptr);
}

/* realloc is a free of the old block and an allocation of the new one, recorded (when
 * sampled) only once the original has succeeded: a failed realloc leaves the old block. */
__attribute__((noinline)) static void *realloc_slow(struct hook_wrap *w, void *ptr, size_t size)
{
    if (!wrap_count(w, &hook_recorder.counters.alloc_count))
        return w->orig.realloc(w->orig.ctx, ptr, size);
    int old_maybe = 0;
    if (ptr) {
        if (w->domain == HOOK_DOMAIN_OBJ && hook_record_is_code(ptr))
            hook_record_code_free(ptr); /* never done by CPython; a C extension might */
        old_maybe = hook_record_free_maybe(ptr);
    }
    int take = hook_record_alloc_take(size);
    void *p = w->orig.realloc(w->orig.ctx, ptr, take ? sampled_request(w, size) : size);
    if (!p)
        return p;
    if (old_maybe)
        hook_record_sampled_free(ptr);
    if (take)
        hook_record_sampled_alloc(p, size, MSHOOK_ALLOC_REALLOC);
    return p;
}

static void *wrap_realloc(void *ctx, void *ptr, size_t size)
{
    struct hook_wrap *w = ctx;
    if (wrap_recording(w)) {
        uint64_t n = wrap_next_count(&hook_recorder.counters.alloc_count);
        int64_t left;
        if (__builtin_expect(
                n == 0 || !sampler_would_skip(size, &left) ||
                    (ptr && (hook_record_free_maybe(ptr) ||
                             (w->domain == HOOK_DOMAIN_OBJ && hook_record_is_code(ptr)))),
                0))
            return realloc_slow(w, ptr, size);
        hook_recorder.sampler.countdown = left;
        wrap_store_count(&hook_recorder.counters.alloc_count, n);
    }
    return w->orig.realloc(w->orig.ctx, ptr, size);
}

/* ---- Exact mode (rate 1): every call is recorded, so the wrappers skip the sampler and the
 * live filter and record straight away. Only the object and memory domains are wrapped (no
 * routing), so every call holds the GIL. ---- */

/* Counts an allocation of size bytes; 0 when the tick just ended the session. */
static inline int exact_count(const struct hook_wrap *w, size_t size)
{
    if (!wrap_count(w, &hook_recorder.counters.alloc_count))
        return 0;
    hook_recorder.sampler.consumed += size; /* the alloc_bytes counter (hook_sampler_bytes) */
    return 1;
}

static void *wrap_malloc_exact(void *ctx, size_t size)
{
    struct hook_wrap *w = ctx;
    if (!wrap_recording(w) || !exact_count(w, size))
        return w->orig.malloc(w->orig.ctx, size);
    void *p = w->orig.malloc(w->orig.ctx, size);
    if (p)
        hook_record_sampled_alloc(p, size, 0);
    return p;
}

static void *wrap_calloc_exact(void *ctx, size_t nelem, size_t elsize)
{
    struct hook_wrap *w = ctx;
    size_t size;
    if (__builtin_mul_overflow(nelem, elsize, &size))
        size = SIZE_MAX; /* the original refuses it */
    if (!wrap_recording(w) || !exact_count(w, size))
        return w->orig.calloc(w->orig.ctx, nelem, elsize);
    void *p = w->orig.calloc(w->orig.ctx, nelem, elsize);
    if (p)
        hook_record_sampled_alloc(p, size, 0);
    return p;
}

/* The FREE goes first: the block still holds a code object's type, and the GIL keeps any
 * other thread from getting the address before the FREE is in the ring. */
static void exact_free(const struct hook_wrap *w, void *ptr)
{
    if (w->domain == HOOK_DOMAIN_OBJ && hook_record_is_code(ptr))
        hook_record_code_free(ptr);
    hook_record_sampled_free(ptr);
}

static void *wrap_realloc_exact(void *ctx, void *ptr, size_t size)
{
    struct hook_wrap *w = ctx;
    if (!wrap_recording(w) || !exact_count(w, size))
        return w->orig.realloc(w->orig.ctx, ptr, size);
    if (ptr && w->domain == HOOK_DOMAIN_OBJ && hook_record_is_code(ptr))
        hook_record_code_free(ptr); /* never done by CPython; a C extension might */
    void *p = w->orig.realloc(w->orig.ctx, ptr, size);
    if (!p)
        return p; /* the old block stays */
    if (ptr)
        hook_record_sampled_free(ptr);
    hook_record_sampled_alloc(p, size, MSHOOK_ALLOC_REALLOC);
    return p;
}

static void wrap_free_exact(void *ctx, void *ptr)
{
    struct hook_wrap *w = ctx;
    if (ptr && wrap_recording(w))
        exact_free(w, ptr);
    w->orig.free(w->orig.ctx, ptr);
}

static struct hook_wrap *slot_claim(void)
{
    for (int i = 0; i < WRAP_SLOTS; i++)
        if (wrap_slots[i].state == WRAP_FREE)
            return &wrap_slots[i];
    return NULL;
}

int hook_alloc_can_route_raw(const struct hook_python *api)
{
    if (!api->allocator_name)
        return 0;
    const char *name = api->allocator_name();
    return name && strcmp(name, "pymalloc") == 0;
}

/* Puts `mine` on top of domain d with w as its context. */
static void wrap_set(const struct hook_python *api, struct hook_wrap *w, int d,
                     struct hook_allocator mine)
{
    w->mine = mine;
    api->set_allocator(d, &w->mine);
    wrap_installed[d] = w;
}

int hook_alloc_install(const struct hook_python *api, uint32_t domains, int route_raw,
                       void (*tick)(void))
{
    wrap_tick_fn = tick;
    if (route_raw) { /* first, so that the first routed block's free is seen */
        struct hook_wrap *w = slot_claim();
        if (!w)
            return -1;
        api->get_allocator(HOOK_DOMAIN_RAW, &w->orig);
        if (!raw_free_default)
            raw_free_default = w->orig.free;
        w->domain = HOOK_DOMAIN_RAW;
        w->route_raw = 0;
        w->state = WRAP_INSTALLED;
        __atomic_store_n(&w->recording, 1, __ATOMIC_RELEASE);
        wrap_set(api, w, HOOK_DOMAIN_RAW,
                 (struct hook_allocator){.ctx = w,
                                         .malloc = w->orig.malloc,
                                         .calloc = w->orig.calloc,
                                         .realloc = w->orig.realloc,
                                         .free = wrap_free_raw});
    }
    static const struct {
        uint32_t bit;
        int domain;
    } wanted[] = {{MSHOOK_DOMAIN_MEM, HOOK_DOMAIN_MEM}, {MSHOOK_DOMAIN_OBJ, HOOK_DOMAIN_OBJ}};
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (!(domains & wanted[i].bit))
            continue;
        struct hook_wrap *w = slot_claim();
        if (!w) {
            hook_alloc_uninstall(api);
            return -1;
        }
        api->get_allocator(wanted[i].domain, &w->orig);
        w->domain = wanted[i].domain;
        w->route_raw = route_raw;
        w->state = WRAP_INSTALLED;
        __atomic_store_n(&w->recording, 1, __ATOMIC_RELEASE);
        struct hook_allocator mine = {.ctx = w,
                                      .malloc = wrap_malloc,
                                      .calloc = wrap_calloc,
                                      .realloc = wrap_realloc,
                                      .free = wanted[i].domain == HOOK_DOMAIN_OBJ ? wrap_free_obj
                                                                                  : wrap_free_mem};
        /* Routed: pymalloc's own free, so its callers' inlined fast path stays in use. It
         * ignores its ctx. */
        if (route_raw)
            mine.free = w->orig.free;
        if (hook_recorder.exact && !route_raw)
            mine = (struct hook_allocator){.ctx = w,
                                           .malloc = wrap_malloc_exact,
                                           .calloc = wrap_calloc_exact,
                                           .realloc = wrap_realloc_exact,
                                           .free = wrap_free_exact};
        wrap_set(api, w, wanted[i].domain, mine);
    }
    return 0;
}

void hook_alloc_uninstall(const struct hook_python *api)
{
    /* Object and memory domains first: no block is routed once the raw domain is restored. */
    for (int d = HOOK_DOMAIN_OBJ; d >= HOOK_DOMAIN_RAW; d--) {
        struct hook_wrap *w = wrap_installed[d];
        if (!w)
            continue;
        __atomic_store_n(&w->recording, 0, __ATOMIC_RELEASE);
        struct hook_allocator cur;
        api->get_allocator(d, &cur);
        if (cur.ctx == w && cur.malloc == w->mine.malloc && cur.free == w->mine.free) {
            api->set_allocator(d, &w->orig);
            w->state = WRAP_FREE;
        } else {
            w->state = WRAP_RETIRED;
        }
        wrap_installed[d] = NULL;
    }
}

void hook_alloc_disable(void)
{
    for (int d = 0; d <= HOOK_DOMAIN_OBJ; d++) {
        struct hook_wrap *w = wrap_installed[d];
        if (!w)
            continue;
        __atomic_store_n(&w->recording, 0, __ATOMIC_RELEASE);
        w->state = WRAP_RETIRED;
        wrap_installed[d] = NULL;
    }
}

/* ---- Where the allocator tables are (hook_alloc_locate) ---- */

#define LOCATE_CHUNK 4096

struct locate_ctx {
    uintptr_t anchor; /* an address inside the object: PyMem_SetAllocator */
    uint64_t want_ctx[HOOK_DOMAIN_OBJ + 1], want_malloc[HOOK_DOMAIN_OBJ + 1];
    uint64_t found[HOOK_DOMAIN_OBJ + 1];
    int hit; /* the object was found */
};

/* Searches [start, end) 8 bytes at a time for each wanted (ctx, malloc) pair. */
static void locate_range(struct locate_ctx *lc, uintptr_t start, uintptr_t end)
{
    uint64_t buf[LOCATE_CHUNK / 8 + 1];
    start &= ~(uintptr_t)7;
    for (uintptr_t at = start; at < end; at += LOCATE_CHUNK) {
        size_t n = end - at < LOCATE_CHUNK ? (size_t)(end - at) & ~(size_t)7 : LOCATE_CHUNK;
        if (n < 16)
            break;
        /* one word more, for a pair across the chunk's end (when readable) */
        size_t want = n + 8 <= (size_t)(end - at) ? n + 8 : n;
        if (hook_safe_read((const void *)at, buf, want) != 0) {
            want = n;
            if (hook_safe_read((const void *)at, buf, want) != 0)
                continue; /* unreadable (a hostile mprotect): skip it */
        }
        for (size_t i = 0; i + 1 < want / 8; i++)
            for (int d = 0; d <= HOOK_DOMAIN_OBJ; d++)
                if (lc->want_ctx[d] && !lc->found[d] && buf[i] == lc->want_ctx[d] &&
                    buf[i + 1] == lc->want_malloc[d])
                    lc->found[d] = (uint64_t)(at + i * 8);
    }
}

static int locate_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct locate_ctx *lc = arg;
    int mine = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && lc->anchor >= lo && lc->anchor < lo + ph->p_memsz)
            mine = 1;
    }
    if (!mine)
        return 0;
    lc->hit = 1;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            locate_range(lc, lo, lo + ph->p_memsz);
        }
    }
    return 1;
}

void hook_alloc_locate(const struct hook_python *api, struct mshook_shared *shared)
{
    struct locate_ctx lc = {.anchor = (uintptr_t)api->set_allocator};
    for (int d = 0; d <= HOOK_DOMAIN_OBJ; d++) {
        const struct hook_wrap *w = wrap_installed[d];
        if (!w)
            continue;
        lc.want_ctx[d] = (uint64_t)(uintptr_t)w;
        lc.want_malloc[d] = (uint64_t)(uintptr_t)w->mine.malloc;
    }
    dl_iterate_phdr(locate_object, &lc);
    for (int d = 0; d <= HOOK_DOMAIN_OBJ; d++) {
        if (!lc.found[d])
            continue;
        shared->alloc_ctx[d] = lc.want_ctx[d];
        shared->alloc_malloc[d] = lc.want_malloc[d];
        __atomic_store_n(&shared->alloc_table[d], lc.found[d], __ATOMIC_RELEASE);
    }
}
