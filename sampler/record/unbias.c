/*
 * unbias.c - per-block Horvitz-Thompson weights of sampled allocations (see unbias.h).
 */
#include "unbias.h"

#include <math.h>

/* P(block of size bytes is sampled). expm1 keeps precision when size << rate, where
 * 1 - exp(-x) would cancel catastrophically. 1 at rate <= 1. */
static double sample_probability(uint64_t size, uint64_t rate)
{
    if (rate <= 1 || size == 0)
        return 1.0;
    double p = -expm1(-(double)size / (double)rate);
    return p > 0 ? p : 1.0;
}

double unbias_weight(uint64_t size, uint64_t rate)
{
    if (rate <= 1 || size == 0)
        return 1.0;
    return 1.0 / sample_probability(size, rate);
}

double unbias_block_bytes(uint64_t size, uint64_t rate)
{
    if (rate <= 1 || size == 0)
        return (double)size;
    return (double)size * unbias_weight(size, rate);
}

double unbias_count_variance(uint64_t size, uint64_t rate)
{
    double p = sample_probability(size, rate);
    return (1.0 - p) / p;
}

double unbias_bytes_variance(uint64_t size, uint64_t rate)
{
    return (double)size * (double)size * unbias_count_variance(size, rate);
}

int64_t unbias_round(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    return llround(v);
}
