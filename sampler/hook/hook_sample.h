/*
 * hook_sample.h - which allocations get sampled: a Poisson process over allocated bytes.
 *
 * Sampling points fall on the stream of allocated bytes with exponentially distributed gaps of
 * mean `rate`, so a block of n bytes is sampled with probability 1 - exp(-n / rate) and the
 * collector can unbias sizes exactly (Go and tcmalloc do the same). The gap is a countdown of
 * bytes; an allocation that reaches it is sampled and a fresh gap is drawn (the exponential is
 * memoryless, so the part of the block beyond the point needs no carry-over).
 *
 * The state is plain data owned by the caller; it is used under the GIL (the MEM and OBJ
 * domains are only called with it held), so it needs no atomics. No libm: -ln(u) is computed
 * here (hook_sample.c) because the hook depends on libc alone.
 */
#ifndef MEMSNAP_HOOK_SAMPLE_H
#define MEMSNAP_HOOK_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct hook_sampler {
    int64_t countdown; /* bytes left before the next sampling point; <= 0 means sample */
    uint64_t rate;     /* mean gap in bytes; <= 1 samples every allocation */
    uint64_t rng;      /* xorshift64* state, never 0 */
    /* The bytes that went through the countdown are counted without a store per allocation:
     * those of the finished gaps (consumed) plus gap - countdown of the current one. */
    int64_t gap;
    uint64_t consumed;
};

/* Seeds the generator (any seed, 0 included) and draws the first gap. */
void hook_sampler_init(struct hook_sampler *s, uint64_t rate, uint64_t seed);

/* Next 64 random bits (xorshift64*). */
uint64_t hook_sampler_random(struct hook_sampler *s);

/* A gap drawn from the exponential distribution of mean s->rate, in bytes, at least 1
 * (0 when rate <= 1: every allocation is sampled). */
int64_t hook_sampler_gap(struct hook_sampler *s);

/* -ln(u) for u in (0, 1], to about 1e-12 relative error, without libm. */
double hook_neg_log(double u);

/* The hot path: 1 when the allocation of `size` bytes is to be sampled (then the next gap is
 * already drawn), else 0. */
static inline int hook_sampler_take(struct hook_sampler *s, size_t size)
{
    s->countdown -= (int64_t)size;
    if (__builtin_expect(s->countdown > 0, 1))
        return 0;
    s->consumed += (uint64_t)(s->gap - s->countdown);
    s->gap = hook_sampler_gap(s);
    s->countdown = s->gap;
    return 1;
}

/* The fast half of hook_sampler_take: counts size down and returns 1 while no sampling
 * point is reached. At 0 the countdown is spent, and the caller must call hook_sampler_take
 * with size 0 (which draws the next gap and returns 1). */
static inline int hook_sampler_skip(struct hook_sampler *s, size_t size)
{
    s->countdown -= (int64_t)size;
    return __builtin_expect(s->countdown > 0, 1);
}

/* Bytes passed to hook_sampler_take since hook_sampler_init. */
static inline uint64_t hook_sampler_bytes(const struct hook_sampler *s)
{
    return s->consumed + (uint64_t)(s->gap - s->countdown);
}

#endif
