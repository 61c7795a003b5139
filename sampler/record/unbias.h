/*
 * unbias.h - turning Poisson-sampled allocations back into estimates of the real totals.
 *
 * The hook samples on bytes with an exponential countdown of mean `rate`: a block of k bytes
 * is recorded with probability p(k) = 1 - exp(-k/rate), independently of every other block
 * (the sampling points are a Poisson process over the stream of allocated bytes). Each
 * sampled block is weighed on its own by 1/p(its size) (the Horvitz-Thompson estimator): it
 * stands for 1/p(k) blocks and k/p(k) bytes. Summed over any set of sampled blocks - one
 * stack's allocations, its live blocks, the live set at the peak - these weights give
 * unbiased estimates of that set's real block count and bytes, whatever mix of sizes it
 * holds. Profile values are stored already unbiased (what pprof readers expect).
 *
 * Go's runtime/pprof scales a whole record by the probability of its average block instead;
 * that is right only when the record holds one size (Go keys its records by stack and size).
 * memsnap keeps one record per stack, where a stack that makes many tiny objects and a few
 * large blocks (a list comprehension: its strs and its growing list buffer) has an average
 * far above its typical block, and counts came out 50-85x too low (docs/sampling.md).
 *
 * rate <= 1 means "every allocation was recorded": every weight is 1 and sums are exact.
 */
#ifndef MEMSNAP_UNBIAS_H
#define MEMSNAP_UNBIAS_H

#include <stdint.h>

/* The number of real blocks one sampled block of `size` bytes stands for: 1 / p(size), at
 * least 1; exactly 1 at rate <= 1 (and for size 0, which the countdown never samples but a
 * caller may still report). */
double unbias_weight(uint64_t size, uint64_t rate);

/* The real bytes one sampled block of `size` bytes stands for: size * unbias_weight(). */
double unbias_block_bytes(uint64_t size, uint64_t rate);

/* The variance one real block of `size` bytes adds to an estimated block count, (1 - p) / p,
 * and to estimated bytes, size^2 (1 - p) / p: for documentation and tests of the spread. */
double unbias_count_variance(uint64_t size, uint64_t rate);
double unbias_bytes_variance(uint64_t size, uint64_t rate);

/* A sum of weights as a profile value: rounded, negatives (floating drift after many adds
 * and subtracts of the same weights) 0, saturating at INT64_MAX. */
int64_t unbias_round(double v);

#endif
