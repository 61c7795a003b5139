/*
 * linetable.c - decoders for CPython's three line-number table formats; see linetable.h.
 *
 * Every table comes from a hostile process, so each decoder walks it with an explicit
 * position and stops, returning -1, the moment an entry would need a byte at or past len.
 * The rules are those of CPython's own decoders (Objects/codeobject.c of each version),
 * re-derived and checked against PyCode_Addr2Line() over whole stdlib modules.
 */
#include "linetable.h"

#include <stdint.h>

#include "py_offsets.h"

/* Location-table entry codes (3.11+), bits 3-6 of an entry's first byte. */
enum {
    LOC_ONE_LINE0 = 10, /* 10..12: line delta is code - 10, two column bytes follow */
    LOC_NO_COLUMNS = 13,
    LOC_LONG = 14,
    LOC_NONE = 15, /* the instructions have no location at all */
};

int64_t linetable_offset(int lasti_model, uint64_t raw, uint64_t code_addr,
                         int32_t code_adaptive_off)
{
    switch (lasti_model) {
    case PY_LASTI_BYTES:
    case PY_LASTI_WORDS: {
        int32_t lasti = (int32_t)(uint32_t)raw;
        if (lasti < 0)
            return -1;
        return lasti_model == PY_LASTI_WORDS ? (int64_t)lasti * 2 : lasti;
    }
    case PY_LASTI_PREV_INSTR:
    case PY_LASTI_INSTR_PTR: {
        if (code_adaptive_off < 0)
            return -1;
        uint64_t base = code_addr + (uint64_t)code_adaptive_off;
        if (base < code_addr || raw < base || raw - base > INT32_MAX)
            return -1;
        return (int64_t)(raw - base);
    }
    default:
        return -1;
    }
}

/* 3.8/3.9 co_lnotab: (address increment u8, line increment s8) pairs, starting at
 * (0, firstlineno); the line of `offset` is the line reached before the address passes it. */
static int lnotab_line(const uint8_t *t, size_t len, int firstlineno, int64_t offset)
{
    if (len % 2)
        return -1;
    int64_t addr = 0;
    int64_t line = firstlineno;
    for (size_t i = 0; i < len; i += 2) {
        addr += t[i];
        if (addr > offset)
            break;
        line += (int8_t)t[i + 1];
    }
    return line < 0 || line > INT32_MAX ? -1 : (int)line;
}

/* 3.10 co_linetable (PEP 626): (byte length u8, line delta s8) pairs, each covering
 * [start, start + length); a delta of -128 marks instructions without a line and leaves the
 * running line unchanged. Offsets past the last entry have no line. */
static int pep626_line(const uint8_t *t, size_t len, int firstlineno, int64_t offset)
{
    int64_t end = 0;
    int64_t line = firstlineno;
    for (size_t i = 0; i + 1 < len; i += 2) {
        int64_t start = end;
        end += t[i];
        int8_t delta = (int8_t)t[i + 1];
        if (delta != -128)
            line += delta;
        if (start <= offset && offset < end) {
            if (delta == -128 || line < 0 || line > INT32_MAX)
                return -1;
            return (int)line;
        }
    }
    return -1;
}

/* Reads an unsigned 6-bit-chunk varint (0x40 = more chunks follow) at t[*pos]. */
static int varint_read(const uint8_t *t, size_t len, size_t *pos, uint32_t *out)
{
    uint32_t value = 0;
    for (unsigned shift = 0; shift < 32; shift += 6) {
        if (*pos >= len)
            return -1;
        uint8_t b = t[(*pos)++];
        value |= (uint32_t)(b & 63) << shift;
        if (!(b & 64)) {
            *out = value;
            return 0;
        }
    }
    return -1; /* longer than any int CPython writes */
}

/* 3.11+ location table: entries of one header byte (bit 7 set, code in bits 3-6, length - 1
 * in code units in bits 0-2) then code-specific bytes; only the line delta matters here. */
static int locations_line(const uint8_t *t, size_t len, int firstlineno, int64_t offset)
{
    int64_t end = 0;
    int64_t line = firstlineno;
    size_t pos = 0;
    while (pos < len) {
        uint8_t head = t[pos];
        if (!(head & 0x80))
            return -1; /* not at an entry boundary: corrupt */
        int code = (head >> 3) & 15;
        int64_t start = end;
        end += 2 * ((head & 7) + 1);
        pos++;
        if (code == LOC_NO_COLUMNS || code == LOC_LONG) {
            uint32_t zigzag;
            if (varint_read(t, len, &pos, &zigzag) < 0)
                return -1;
            line += (zigzag & 1) ? -(int64_t)(zigzag >> 1) : (int64_t)(zigzag >> 1);
        } else if (code >= LOC_ONE_LINE0 && code < LOC_NO_COLUMNS) {
            line += code - LOC_ONE_LINE0;
        }
        if (start <= offset && offset < end) {
            if (code == LOC_NONE || line < 0 || line > INT32_MAX)
                return -1;
            return (int)line;
        }
        /* Skip the columns (and, for LONG, end line and columns) to the next entry. */
        while (pos < len && !(t[pos] & 0x80))
            pos++;
    }
    return -1;
}

int linetable_line(int linetable_model, const uint8_t *table, size_t len, int firstlineno,
                   int64_t offset)
{
    if (offset < 0)
        return firstlineno;
    if (!table && len)
        return -1;
    switch (linetable_model) {
    case PY_LINES_LNOTAB:
        return lnotab_line(table, len, firstlineno, offset);
    case PY_LINES_310:
        return pep626_line(table, len, firstlineno, offset);
    case PY_LINES_LOCATIONS:
        return locations_line(table, len, firstlineno, offset);
    default:
        return -1;
    }
}
