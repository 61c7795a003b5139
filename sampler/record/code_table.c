/*
 * code_table.c - code objects announced by the hook, by address; see code_table.h.
 *
 * Open addressing over entry pointers (linear probing, power-of-two size, grown at 1/2
 * load, deletion by backward shift so no tombstones pile up as code objects come and go).
 * Each entry is one allocation: the struct, then its UTF-8 name and file name, then its line
 * table.
 */
#include "code_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"
#include "pystring.h"

struct code_entry {
    uint64_t code;
    uint64_t generation; /* the identity handed to stacks.h */
    const char *name, *filename;
    const uint8_t *table; /* NULL: none */
    uint32_t table_len;
    int firstlineno;
};

struct code_table {
    const struct py_offsets *off;
    struct code_entry **slots;
    uint32_t cap, used;
    uint64_t generation;
    uint64_t table_bytes; /* line table bytes held */
};

static uint32_t home_of(uint64_t code, uint32_t cap)
{
    uint64_t x = (code >> 4) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32) & (cap - 1);
}

struct code_table *code_table_new(const struct py_offsets *off)
{
    struct code_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->off = off;
    t->cap = 1024;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    return t;
}

void code_table_free(struct code_table *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->cap; i++)
        free(t->slots[i]);
    free(t->slots);
    free(t);
}

uint32_t code_table_count(const struct code_table *t)
{
    return t->used;
}

static int64_t slot_find(const struct code_table *t, uint64_t code)
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = home_of(code, t->cap), n = 0; n < t->cap; i = (i + 1) & mask, n++) {
        if (!t->slots[i])
            return -1;
        if (t->slots[i]->code == code)
            return i;
    }
    return -1;
}

static void slot_put(struct code_entry **slots, uint32_t cap, struct code_entry *e)
{
    uint32_t i = home_of(e->code, cap);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = e;
}

static int table_grow(struct code_table *t)
{
    uint32_t cap = t->cap * 2;
    struct code_entry **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            slot_put(slots, cap, t->slots[i]);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Removes the entry in slot i (backward shift) and frees it. */
static void slot_delete(struct code_table *t, uint32_t i)
{
    uint32_t mask = t->cap - 1, hole = i;
    struct code_entry *gone = t->slots[i];
    for (uint32_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        uint32_t home = home_of(t->slots[j]->code, t->cap);
        int stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        t->slots[hole] = t->slots[j];
        hole = j;
    }
    t->slots[hole] = NULL;
    t->used--;
    if (gone->table)
        t->table_bytes -= gone->table_len;
    free(gone);
}

void code_table_remove(struct code_table *t, uint64_t code)
{
    int64_t i = slot_find(t, code);
    if (i >= 0)
        slot_delete(t, (uint32_t)i);
}

/* UTF-8 needs at most 4 bytes per character of any kind (3 for UCS-2, 2 for Latin-1). */
static size_t utf8_room(uint32_t len)
{
    return (size_t)len * 4 + 1;
}

int code_table_add(struct code_table *t, const struct ring_code *rc, ms_error *err)
{
    code_table_remove(t, rc->code);
    if (t->used >= CODE_TABLE_MAX_ENTRIES)
        return 0;
    int keep_table = !(rc->flags & MSHOOK_CODE_NO_TABLE) &&
                     t->table_bytes + rc->table_len <= CODE_TABLE_MAX_TABLE_BYTES;
    size_t name_room = utf8_room(rc->name_len), file_room = utf8_room(rc->filename_len);
    size_t bytes =
        sizeof(struct code_entry) + name_room + file_room + (keep_table ? rc->table_len : 0);
    struct code_entry *e = malloc(bytes);
    if (!e)
        return ms_error_errno(err, ENOMEM, "remembering a code object");
    char *name = (char *)(e + 1), *filename = name + name_room;
    uint8_t *table = (uint8_t *)filename + file_room;
    if (pystr_to_utf8(rc->name, rc->name_len, rc->name_kind, name, name_room) <= 0)
        strcpy(name, "<unknown>"); /* the hook could not read a name */
    if (pystr_to_utf8(rc->filename, rc->filename_len, rc->filename_kind, filename, file_room) < 0)
        filename[0] = 0;
    if (keep_table)
        memcpy(table, rc->table, rc->table_len);
    *e = (struct code_entry){
        .code = rc->code,
        .generation = ++t->generation,
        .name = name,
        .filename = filename,
        .table = keep_table ? table : NULL,
        .table_len = keep_table ? rc->table_len : 0,
        .firstlineno = rc->firstlineno,
    };
    if ((t->used + 1) * 2 > t->cap && table_grow(t) < 0) {
        free(e);
        return ms_error_errno(err, ENOMEM, "remembering a code object");
    }
    slot_put(t->slots, t->cap, e);
    t->used++;
    if (e->table)
        t->table_bytes += e->table_len;
    return 0;
}

int code_table_resolve(void *ctx, uint64_t code_addr, struct stacks_code *out)
{
    const struct code_table *t = ctx;
    int64_t i = slot_find(t, code_addr);
    if (i < 0)
        return -1;
    const struct code_entry *e = t->slots[i];
    out->identity = (const void *)(uintptr_t)e->generation;
    out->name = e->name;
    out->filename = e->filename;
    out->firstlineno = e->firstlineno;
    return 0;
}

int code_table_line(void *ctx, const struct stacks_code *code, uint64_t code_addr,
                    uint64_t raw_lasti)
{
    const struct code_table *t = ctx;
    int64_t i = slot_find(t, code_addr);
    if (i < 0)
        return -1;
    const struct code_entry *e = t->slots[i];
    if ((const void *)(uintptr_t)e->generation != code->identity || !e->table)
        return -1;
    int64_t offset =
        linetable_offset(t->off->lasti_model, raw_lasti, code_addr, t->off->code_code_adaptive);
    return linetable_line(t->off->linetable_model, e->table, e->table_len, e->firstlineno, offset);
}
