/*
 * unbias.c - Go-style scaling of sampled heap totals (see unbias.h for the model).
 */
#include "unbias.h"

#include <math.h>

/* 1 / P(block of avg bytes is sampled). expm1 keeps precision when avg << rate, where
 * 1 - exp(-x) would cancel catastrophically. */
static double sample_scale(double avg, uint64_t rate)
{
    double p = -expm1(-avg / (double)rate);
    if (!(p > 0))
        return 1.0;
    return 1.0 / p;
}

static int64_t to_int64_saturated(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    return llround(v);
}

struct unbias_totals unbias_scale(uint64_t count, uint64_t bytes, uint64_t rate)
{
    struct unbias_totals t = {0, 0};
    if (count == 0 || bytes == 0)
        return t;
    if (rate <= 1) {
        t.count = count > INT64_MAX ? INT64_MAX : (int64_t)count;
        t.bytes = bytes > INT64_MAX ? INT64_MAX : (int64_t)bytes;
        return t;
    }
    double scale = sample_scale((double)bytes / (double)count, rate);
    t.count = to_int64_saturated((double)count * scale);
    t.bytes = to_int64_saturated((double)bytes * scale);
    return t;
}

double unbias_block_bytes(uint64_t size, uint64_t rate)
{
    if (rate <= 1 || size == 0)
        return (double)size;
    return (double)size * sample_scale((double)size, rate);
}
