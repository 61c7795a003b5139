/*
 * pystring.h - decoding CPython str objects copied out of the target, 3.8-3.14.
 *
 * A str is a header (PyASCIIObject / PyCompactUnicodeObject) followed, for compact strings, by
 * its characters stored 1, 2 or 4 bytes each (PEP 393). memsnap reads the header, asks
 * pystr_parse() where and how big the characters are, reads them, and converts them with
 * pystr_to_utf8(). Names are decoded as real text in every kind: Latin-1, UCS-2 and UCS-4
 * become UTF-8, so non-ASCII function and file names survive.
 *
 * Both functions treat their input as hostile: every size is bounded, nothing is read beyond
 * the lengths given, and the output is always valid, NUL-terminated UTF-8.
 */
#ifndef MEMSNAP_PYSTRING_H
#define MEMSNAP_PYSTRING_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "py_offsets.h"

/* Longest str pystr_parse() accepts, in characters: names and file names are far shorter,
 * and a bound keeps a corrupt length from turning into a huge remote read. */
#define PYSTR_MAX_LENGTH (1 << 20)

struct pystr_info {
    int64_t length;     /* characters, 0 <= length < PYSTR_MAX_LENGTH */
    int kind;           /* 1,2,4: bytes per character */
    int ascii;          /* 1 when every character is < 128 (kind is then 1) */
    uint64_t data_addr; /* absolute address of the characters in the target */
};

/* Parses a str object's header: hdr holds the first off->unicode_compact_size bytes of the
 * object at obj_addr. Validates state bits, kind, length (< 1<<20).
 *
 * Compact strings (all str created by CPython itself, e.g. every code object name) need only
 * those bytes. A non-compact str (str subclasses, legacy C API strings) keeps a pointer to its
 * characters at off->unicode_data_ptr, just past the compact header: pass at least
 * off->unicode_data_ptr + 8 bytes to decode those too; with fewer they are refused. The type
 * of the object is not checked here (the caller compares ob_type with PyUnicode_Type).
 * Returns 0 and fills *out, or -1 with err set (out is then unspecified). */
int pystr_parse(const struct py_offsets *off, uint64_t obj_addr, const uint8_t *hdr, size_t hdrlen,
                struct pystr_info *out, ms_error *err);

/* Converts `length` characters of `kind` bytes each into NUL-terminated UTF-8. UCS1 is
 * Latin-1; lone surrogates and code points > 0x10FFFF become U+FFFD. Returns bytes written
 * (excluding NUL), or -1 when out is too small.
 *
 * data must hold length * kind bytes, in the target's (little-endian) byte order. Also -1 for
 * a kind other than 1, 2, 4, a negative length, or a result over INT_MAX; out is then "" when
 * outn > 0. Worst case needs 3 bytes per UCS-2 and 4 per UCS-4 character, plus 1. */
int pystr_to_utf8(const uint8_t *data, int64_t length, int kind, char *out, size_t outn);

#endif
