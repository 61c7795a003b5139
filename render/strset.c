/*
 * strset.c - content-keyed string interning for the renderer (see strset.h).
 *
 * Open addressing with linear probing over a power-of-two table kept at most half full;
 * FNV-1a is enough here because the inputs are function names and paths, and a hostile
 * profile can at worst make interning slower, never wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "strset.h"

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static int slot_matches(const struct strset *s, uint32_t slot, const char *str, size_t len)
{
    const char *have = s->strs[slot - 1];
    return strncmp(have, str, len) == 0 && have[len] == '\0';
}

uint32_t strset_find(const struct strset *s, const char *str, size_t len)
{
    if (!s->n_slots)
        return UINT32_MAX;
    size_t mask = s->n_slots - 1;
    for (size_t i = hash_bytes(str, len) & mask;; i = (i + 1) & mask) {
        uint32_t slot = s->slots[i];
        if (!slot)
            return UINT32_MAX;
        if (slot_matches(s, slot, str, len))
            return slot - 1;
    }
}

static int table_grow(struct strset *s)
{
    size_t n_slots = s->n_slots ? s->n_slots * 2 : 256;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t id = 0; id < s->n; id++) {
        size_t i = hash_bytes(s->strs[id], strlen(s->strs[id])) & (n_slots - 1);
        while (slots[i])
            i = (i + 1) & (n_slots - 1);
        slots[i] = (uint32_t)id + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->n_slots = n_slots;
    return 0;
}

uint32_t strset_intern(struct strset *s, const char *str, size_t len)
{
    uint32_t found = strset_find(s, str, len);
    if (found != UINT32_MAX)
        return found;
    if (s->n >= UINT32_MAX - 1)
        return UINT32_MAX;
    if ((s->n + 1) * 2 > s->n_slots && table_grow(s) < 0)
        return UINT32_MAX;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **strs = realloc(s->strs, cap * sizeof *strs);
        if (!strs)
            return UINT32_MAX;
        s->strs = strs;
        s->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return UINT32_MAX;
    memcpy(copy, str, len);
    copy[len] = '\0';
    size_t mask = s->n_slots - 1;
    size_t i = hash_bytes(str, len) & mask;
    while (s->slots[i])
        i = (i + 1) & mask;
    s->strs[s->n] = copy;
    s->slots[i] = (uint32_t)s->n + 1;
    return (uint32_t)s->n++;
}

void strset_free(struct strset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->strs[i]);
    free(s->strs);
    free(s->slots);
    memset(s, 0, sizeof *s);
}
