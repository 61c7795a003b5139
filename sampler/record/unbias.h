/*
 * unbias.h - turning Poisson-sampled allocation totals back into estimates of the real ones.
 *
 * The hook samples on bytes with an exponential countdown of mean `rate`: a block of k bytes
 * is recorded with probability 1 - exp(-k/rate). Summing sampled blocks therefore
 * under-counts small blocks; dividing by that probability makes the sums unbiased. This is
 * the correction Go's runtime/pprof applies to heap profiles (scaleHeapSample), which pprof
 * readers expect: profile values are stored already unbiased.
 *
 * rate <= 1 means "every allocation was recorded": the values are exact and pass through.
 */
#ifndef MEMSNAP_UNBIAS_H
#define MEMSNAP_UNBIAS_H

#include <stdint.h>

/* Scaled totals of one stack. */
struct unbias_totals {
    int64_t count;
    int64_t bytes;
};

/* Estimates the true (count, bytes) behind `count` sampled blocks totalling `bytes`, using
 * their average size (Go's convention: one scale per stack, from the average block).
 * count == 0 or bytes == 0 gives (0, 0). Results saturate at INT64_MAX. */
struct unbias_totals unbias_scale(uint64_t count, uint64_t bytes, uint64_t rate);

/* The expected number of real bytes one sampled block of `size` bytes stands for:
 * size / (1 - exp(-size/rate)), or size itself at rate <= 1. Used for a running heap
 * estimate that can be updated per event (sum over live sampled blocks). */
double unbias_block_bytes(uint64_t size, uint64_t rate);

#endif
