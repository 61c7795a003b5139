/*
 * code_table.h - the target's code objects as the hook announced them through the ring.
 *
 * The hook writes a MSHOOK_REC_CODE record (name, file name, first line, line table) before
 * the first recorded stack that references a code object, and MSHOOK_REC_CODE_GONE when that
 * object is freed (hook/hook_abi.h). Fed those records in ring order, this table knows, at
 * every ALLOC record, exactly which code object each frame address holds, with no read of the
 * target's memory: code objects that died before the drain (a module's top-level code) are
 * named as well as live ones.
 *
 * It answers the code/line half of a stacks.h resolver. Every announcement gets a new
 * identity (a generation number), so the stacks cache, which compares identities, forgets a
 * location as soon as its address is announced again or gone.
 *
 * Bounds (the records come from a possibly hostile target): at most CODE_TABLE_MAX_ENTRIES
 * code objects at once (further announcements are ignored and their frames are
 * "<unknown>"), and at most CODE_TABLE_MAX_TABLE_BYTES of line tables (further code objects
 * keep their names and get their first line for every frame). Not thread-safe.
 */
#ifndef MEMSNAP_CODE_TABLE_H
#define MEMSNAP_CODE_TABLE_H

#include <stdint.h>

#include "error.h"
#include "py_offsets.h"
#include "ring_reader.h"
#include "stacks.h"

#define CODE_TABLE_MAX_ENTRIES     (1u << 20)
#define CODE_TABLE_MAX_TABLE_BYTES (256ull << 20)

struct code_table;

/* An empty table decoding instruction fields and line tables the way off's version does
 * (off is borrowed and must outlive the table). NULL on ENOMEM. */
struct code_table *code_table_new(const struct py_offsets *off);
void code_table_free(struct code_table *t);

/* A CODE record: decodes its strings to UTF-8 and replaces any entry for the same address.
 * Returns 0 (also when a bound made it ignore the record), or -1 with err on ENOMEM. */
int code_table_add(struct code_table *t, const struct ring_code *rc, ms_error *err);

/* A CODE_GONE record: forgets the address (unknown addresses are ignored). */
void code_table_remove(struct code_table *t, uint64_t code);

/* Number of code objects known now. */
uint32_t code_table_count(const struct code_table *t);

/* The stacks.h resolver callbacks, ctx being the table: what code_addr holds now (-1 when
 * nothing was announced there), and the line of a raw instruction field in it (-1 when the
 * table cannot tell). The strings stay valid until the address is announced again or gone. */
int code_table_resolve(void *ctx, uint64_t code_addr, struct stacks_code *out);
int code_table_line(void *ctx, const struct stacks_code *code, uint64_t code_addr,
                    uint64_t raw_lasti);

#endif
