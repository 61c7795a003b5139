/*
 * hook_sample.c - the random number generator and the exponential gaps; see hook_sample.h.
 */
#include "hook_sample.h"

#include <string.h>

void hook_sampler_init(struct hook_sampler *s, uint64_t rate, uint64_t seed)
{
    s->rate = rate;
    /* splitmix64 of the seed, so nearby seeds give unrelated streams and 0 is usable */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    s->rng = z ? z : 0x2545f4914f6cdd1dull;
    s->consumed = 0;
    s->gap = hook_sampler_gap(s);
    s->countdown = s->gap;
}

uint64_t hook_sampler_random(struct hook_sampler *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

double hook_neg_log(double u)
{
    if (!(u > 0.0))
        return 745.0; /* -ln of the smallest double; u is never 0 in practice */
    if (u >= 1.0)
        return 0.0;
    /* u = m * 2^e with m in [sqrt(1/2), sqrt(2)): ln u = e ln2 + ln m, and ln m comes from
     * the atanh series in s = (m - 1) / (m + 1), |s| <= 0.172, which converges fast. */
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1, 2) */
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e += 1;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    /* 2 (s + s^3/3 + ... + s^17/17): the next term is below 1e-14 */
    double poly = 1.0 / 17;
    for (int k = 15; k >= 1; k -= 2)
        poly = poly * s2 + 1.0 / k;
    double ln_m = 2.0 * s * poly;
    return -((double)e * 0.6931471805599453 + ln_m);
}

int64_t hook_sampler_gap(struct hook_sampler *s)
{
    if (s->rate <= 1)
        return 0;
    /* u in (0, 1]: 53 random bits, plus one so 0 never happens */
    double u = (double)((hook_sampler_random(s) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double gap = hook_neg_log(u) * (double)s->rate;
    if (gap < 1.0)
        return 1;
    if (gap > 9.0e18)
        return INT64_MAX;
    return (int64_t)gap;
}
