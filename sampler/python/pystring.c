/*
 * pystring.c - str header parsing and PEP 393 → UTF-8 conversion; see pystring.h.
 *
 * The bit layout of the str `state` word is not in py_offsets (it is not a field but bit
 * fields inside one): in every version 3.8-3.14 its first byte holds interned (bits 0-1),
 * kind (bits 2-4), compact (bit 5) and ascii (bit 6), on little-endian x86_64. Bit 7 is
 * `ready` up to 3.11 and `statically_allocated` from 3.12; a not-ready (legacy) str has
 * kind 0 and is refused by the kind check, so bit 7 is not consulted.
 */
#include "pystring.h"

#include <limits.h>
#include <string.h>

enum {
    STATE_KIND_SHIFT = 2,
    STATE_KIND_MASK = 7,
    STATE_COMPACT = 0x20,
    STATE_ASCII = 0x40,
};

static int64_t load_i64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t load_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* True when [off, off + n) fits in a buffer of len bytes; off < 0 means "no such field". */
static int field_fits(int32_t off, size_t n, size_t len)
{
    return off >= 0 && (size_t)off <= len && n <= len - (size_t)off;
}

int pystr_parse(const struct py_offsets *off, uint64_t obj_addr, const uint8_t *hdr, size_t hdrlen,
                struct pystr_info *out, ms_error *err)
{
    if (!off || !hdr || !out)
        return ms_error_set(err, "str at 0x%llx: nothing to parse", (unsigned long long)obj_addr);
    if (!field_fits(off->unicode_length, 8, hdrlen) || !field_fits(off->unicode_state, 1, hdrlen))
        return ms_error_set(err, "str at 0x%llx: header of %zu bytes is too short",
                            (unsigned long long)obj_addr, hdrlen);
    int64_t length = load_i64(hdr + off->unicode_length);
    uint8_t state = hdr[off->unicode_state];
    int kind = (state >> STATE_KIND_SHIFT) & STATE_KIND_MASK;
    int compact = (state & STATE_COMPACT) != 0;
    int ascii = (state & STATE_ASCII) != 0;

    if (kind != 1 && kind != 2 && kind != 4)
        return ms_error_set(err, "str at 0x%llx: invalid kind %d (state byte 0x%02x)",
                            (unsigned long long)obj_addr, kind, state);
    if (ascii && kind != 1)
        return ms_error_set(err, "str at 0x%llx: ASCII flag with %d-byte characters",
                            (unsigned long long)obj_addr, kind);
    if (length < 0 || length >= PYSTR_MAX_LENGTH)
        return ms_error_set(err, "str at 0x%llx: implausible length %lld",
                            (unsigned long long)obj_addr, (long long)length);

    uint64_t data;
    if (compact) {
        int32_t header_size = ascii ? off->unicode_ascii_size : off->unicode_compact_size;
        if (header_size <= 0)
            return ms_error_set(err, "str at 0x%llx: no header size for this version",
                                (unsigned long long)obj_addr);
        data = obj_addr + (uint64_t)header_size;
        if (data < obj_addr)
            return ms_error_set(err, "str at 0x%llx: address wraps around",
                                (unsigned long long)obj_addr);
    } else {
        if (!field_fits(off->unicode_data_ptr, 8, hdrlen))
            return ms_error_set(err,
                                "str at 0x%llx: non-compact string, its data pointer is "
                                "outside the %zu header bytes read",
                                (unsigned long long)obj_addr, hdrlen);
        data = load_u64(hdr + off->unicode_data_ptr);
        if (data == 0)
            return ms_error_set(err, "str at 0x%llx: non-compact string without data",
                                (unsigned long long)obj_addr);
    }
    if (data > UINT64_MAX - (uint64_t)length * (uint64_t)kind)
        return ms_error_set(err, "str at 0x%llx: characters would wrap the address space",
                            (unsigned long long)obj_addr);

    out->length = length;
    out->kind = kind;
    out->ascii = ascii;
    out->data_addr = data;
    return 0;
}

static uint32_t char_at(const uint8_t *data, int64_t i, int kind)
{
    const uint8_t *p = data + i * kind;
    switch (kind) {
    case 1:
        return p[0];
    case 2:
        return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    default:
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
}

/* Encodes cp (already valid: not a surrogate, <= 0x10FFFF) into buf; returns its length. */
static int utf8_encode(uint32_t cp, char *buf)
{
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | cp >> 6);
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | cp >> 12);
        buf[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | cp >> 18);
    buf[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    buf[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int pystr_to_utf8(const uint8_t *data, int64_t length, int kind, char *out, size_t outn)
{
    if (!out || outn == 0)
        return -1;
    out[0] = 0;
    if ((kind != 1 && kind != 2 && kind != 4) || length < 0 || (length > 0 && !data))
        return -1;
    size_t used = 0;
    for (int64_t i = 0; i < length; i++) {
        uint32_t cp = char_at(data, i, kind);
        /* Python strs may hold lone surrogates (e.g. from surrogateescape); UTF-8 may not. */
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            cp = 0xFFFD;
        char buf[4];
        int n = utf8_encode(cp, buf);
        if ((size_t)n >= outn - used || used + n > INT_MAX) {
            out[0] = 0;
            return -1;
        }
        memcpy(out + used, buf, n);
        used += n;
    }
    out[used] = 0;
    return (int)used;
}
