/*
 * hook_alloc.c - the wrappers installed into CPython's allocator domains; see hook_alloc.h.
 *
 * The wrappers are the hot path of the whole profiler: one extra indirect call, a relaxed
 * flag load, two counter bumps and a countdown per allocation; frees add one lock-free probe
 * of the live table. Everything else happens only for sampled blocks.
 *
 * The wrappers also carry the session's periodic duties, because the hook keeps no thread
 * while recording (a thread would change the target: CPython 3.12+ warns on fork() in a
 * multi-threaded process). Every WRAP_TICK_CALLS wrapped calls, one plain countdown, they call
 * the session's tick (hook.c) with the GIL held, before the call itself: a tick that ends the
 * session leaves that very call a plain pass-through to the original allocator.
 */
#include "hook_alloc.h"

#include "hook_abi.h"
#include "hook_record.h"

/* 16 slots: two per session, plus room for sessions whose wrappers someone else re-wrapped. */
#define WRAP_SLOTS 16

/* Calls (allocations and frees) between ticks: a tick costs a clock read and a few stores
 * into the shared header, so 1/4096 of it is lost in the noise of one wrapped call, while a
 * busy target still notices a stop request or a dead memsnap within microseconds. */
#define WRAP_TICK_CALLS 4096u

enum wrap_state {
    WRAP_FREE = 0,
    WRAP_INSTALLED = 1,
    WRAP_RETIRED = 2, /* left in someone's chain as a pass-through: never reused */
};

struct hook_wrap {
    struct hook_allocator orig; /* what we call */
    uint32_t recording;         /* read on every call, relaxed */
    uint32_t state;             /* enum wrap_state */
    int domain;
};

static struct hook_wrap wrap_slots[WRAP_SLOTS];
static struct hook_wrap *wrap_installed[HOOK_DOMAIN_OBJ + 1]; /* this session's, per domain */
static void (*wrap_tick_fn)(void);                            /* the session's tick */
static uint32_t wrap_tick_countdown = WRAP_TICK_CALLS;        /* GIL-serialised; relaxed */

static int wrap_recording(const struct hook_wrap *w)
{
    return __atomic_load_n(&w->recording, __ATOMIC_RELAXED) != 0;
}

/* Counts a wrapped call and runs the tick when due. Returns whether the call is to be recorded
 * (the tick may have just ended the session). */
static int wrap_enter(const struct hook_wrap *w)
{
    if (!wrap_recording(w))
        return 0;
    uint32_t left = __atomic_load_n(&wrap_tick_countdown, __ATOMIC_RELAXED);
    if (__builtin_expect(left > 1, 1)) {
        __atomic_store_n(&wrap_tick_countdown, left - 1, __ATOMIC_RELAXED);
        return 1;
    }
    __atomic_store_n(&wrap_tick_countdown, WRAP_TICK_CALLS, __ATOMIC_RELAXED);
    wrap_tick_fn();
    return wrap_recording(w);
}

static void *wrap_malloc(void *ctx, size_t size)
{
    struct hook_wrap *w = ctx;
    int recording = wrap_enter(w);
    void *p = w->orig.malloc(w->orig.ctx, size);
    if (p && recording)
        hook_record_alloc(p, size, 0);
    return p;
}

static void *wrap_calloc(void *ctx, size_t nelem, size_t elsize)
{
    struct hook_wrap *w = ctx;
    int recording = wrap_enter(w);
    void *p = w->orig.calloc(w->orig.ctx, nelem, elsize);
    if (p && recording)
        hook_record_alloc(p, nelem * elsize, 0); /* cannot overflow: the allocation succeeded */
    return p;
}

static void *wrap_realloc(void *ctx, void *ptr, size_t size)
{
    struct hook_wrap *w = ctx;
    if (!wrap_enter(w))
        return w->orig.realloc(w->orig.ctx, ptr, size);
    if (ptr && w->domain == HOOK_DOMAIN_OBJ && __builtin_expect(hook_record_is_code(ptr), 0))
        hook_record_code_free(ptr); /* never done by CPython; a C extension might */
    void *p = w->orig.realloc(w->orig.ctx, ptr, size);
    if (!p)
        return p; /* failed: the old block is untouched */
    if (ptr && hook_record_free_begin(ptr))
        hook_record_sampled_free(ptr);
    hook_record_alloc(p, size, MSHOOK_ALLOC_REALLOC);
    return p;
}

static void wrap_free(void *ctx, void *ptr)
{
    struct hook_wrap *w = ctx;
    int sampled = 0;
    if (ptr && wrap_enter(w)) {
        /* Code objects come from and go back to the object domain (PyObject_Malloc/Free on
         * 3.8-3.13): PyMem frees skip the test. Before the free: the block still holds the
         * object. */
        if (w->domain == HOOK_DOMAIN_OBJ && __builtin_expect(hook_record_is_code(ptr), 0))
            hook_record_code_free(ptr);
        sampled = hook_record_free_begin(ptr);
    }
    w->orig.free(w->orig.ctx, ptr);
    if (__builtin_expect(sampled, 0))
        hook_record_sampled_free(ptr);
}

static struct hook_wrap *slot_claim(void)
{
    for (int i = 0; i < WRAP_SLOTS; i++)
        if (wrap_slots[i].state == WRAP_FREE)
            return &wrap_slots[i];
    return NULL;
}

int hook_alloc_install(const struct hook_python *api, uint32_t domains, void (*tick)(void))
{
    wrap_tick_fn = tick;
    __atomic_store_n(&wrap_tick_countdown, WRAP_TICK_CALLS, __ATOMIC_RELAXED);
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
        w->state = WRAP_INSTALLED;
        __atomic_store_n(&w->recording, 1, __ATOMIC_RELEASE);
        struct hook_allocator mine = {
            .ctx = w,
            .malloc = wrap_malloc,
            .calloc = wrap_calloc,
            .realloc = wrap_realloc,
            .free = wrap_free,
        };
        api->set_allocator(wanted[i].domain, &mine);
        wrap_installed[wanted[i].domain] = w;
    }
    return 0;
}

void hook_alloc_uninstall(const struct hook_python *api)
{
    for (int d = 0; d <= HOOK_DOMAIN_OBJ; d++) {
        struct hook_wrap *w = wrap_installed[d];
        if (!w)
            continue;
        __atomic_store_n(&w->recording, 0, __ATOMIC_RELEASE);
        struct hook_allocator cur;
        api->get_allocator(d, &cur);
        if (cur.malloc == wrap_malloc && cur.ctx == w) {
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
