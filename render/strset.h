/*
 * strset.h - a set of strings compared by content, each with a small dense id.
 *
 * The renderer merges frames from two profiles (--diff), whose string tables number the
 * same text differently; interning every name and filename here gives one numbering for
 * both. Ids are 0, 1, 2... in insertion order; the set owns copies of the strings.
 */
#ifndef MEMSNAP_STRSET_H
#define MEMSNAP_STRSET_H

#include <stddef.h>
#include <stdint.h>

struct strset {
    char **strs; /* strs[id], NUL-terminated copies */
    size_t n;
    size_t cap;
    uint32_t *slots; /* open addressing: id + 1, 0 = empty */
    size_t n_slots;  /* power of two */
};

/* Zero-initialise a struct strset to start; strset_free() releases it. */
void strset_free(struct strset *s);

/* The id of `str` (len bytes, need not be NUL-terminated), adding a copy when new.
 * Returns UINT32_MAX on allocation failure; the set stays usable. */
uint32_t strset_intern(struct strset *s, const char *str, size_t len);

/* The id of `str` if present, else UINT32_MAX. */
uint32_t strset_find(const struct strset *s, const char *str, size_t len);

#endif
