/*
 * summary.h - the facts about a recording that head both the SVG and the text report:
 * mode, pid, Python version, command, duration, sampling rate, peaks, totals, drops.
 *
 * summary_items() formats them as (label, value) pairs in display order, skipping what the
 * profile does not know (a profile from another tool has no memsnap metadata: then only the
 * metric's total and the sample count remain). Strings point into `out`, which the caller
 * provides and owns; values longer than the buffer are cut.
 */
#ifndef MEMSNAP_SUMMARY_H
#define MEMSNAP_SUMMARY_H

#include <stddef.h>

#include "flametree.h"
#include "profile.h"

#define SUMMARY_MAX_ITEMS 16

struct summary_item {
    const char *label;
    char value[256];
};

struct summary {
    struct summary_item items[SUMMARY_MAX_ITEMS];
    size_t n;
};

/* Fills `out` from the profile's metadata and the tree's totals (tree may be NULL). */
void summary_items(const struct profile *p, const struct flame_tree *t, struct summary *out);

/* A value of the tree's metric in its unit: bytes in KiB/MiB, counts grouped, else raw. */
char *summary_value(const struct flame_tree *t, int64_t v, char *buf, size_t len);

#endif
