/*
 * fuzz_pystring.c - libFuzzer target for str decoding (sampler/python/pystring.c).
 *
 * A str header and its characters come from a possibly hostile process: pystr_parse() must
 * accept only consistent headers (kind 1/2/4, bounded length, no address wrap) and
 * pystr_to_utf8() must always write valid, NUL-terminated UTF-8 inside the buffer it is
 * given, or fail. Inputs sit in exact-size heap copies so ASan sees overreads. Built and run
 * by scripts/fuzz.d/lines.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "py_offsets.h"
#include "pystring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when s[0..n) is well-formed UTF-8 without surrogates or code points past U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t more = c < 0x80                ? 0
                      : c >= 0xc2 && c < 0xe0 ? 1
                      : c >= 0xe0 && c < 0xf0 ? 2
                      : c >= 0xf0 && c < 0xf5 ? 3
                                              : 9;
        if (more == 9 || more > n - i - 1)
            return 0;
        uint32_t cp = more ? c & (0x3f >> more) : c;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((more == 2 && cp < 0x800) || (more == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += more + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Layout: row selector, object address, output size, header bytes, character bytes. */
    if (size < 1 + 8 + 2 + 1 || py_offsets_count == 0)
        return 0;
    const struct py_offsets *row = &py_offsets_table[data[0] % py_offsets_count];
    uint64_t obj;
    uint16_t outn;
    memcpy(&obj, data + 1, 8);
    memcpy(&outn, data + 9, 2);
    size_t rest = size - 11;
    size_t hdrlen = rest < (size_t)row->unicode_data_ptr + 8 ? rest : row->unicode_data_ptr + 8;
    uint8_t *hdr = malloc(hdrlen ? hdrlen : 1);
    char *out = malloc(outn ? outn : 1);
    if (!hdr || !out)
        abort();
    memcpy(hdr, data + 11, hdrlen);

    struct pystr_info info;
    ms_error err;
    if (pystr_parse(row, obj, hdr, hdrlen, &info, &err) == 0) {
        if ((info.kind != 1 && info.kind != 2 && info.kind != 4) || info.length < 0 ||
            info.length >= PYSTR_MAX_LENGTH || (info.ascii && info.kind != 1))
            abort();
    } else if (err.msg[0] == 0) {
        abort();
    }

    /* Whatever follows the header is taken as characters of a kind chosen by the input. */
    size_t nchars_bytes = rest - hdrlen;
    int kind = 1 << (data[0] >> 6 & 3);
    if (kind == 8)
        kind = 4;
    uint8_t *chars = malloc(nchars_bytes ? nchars_bytes : 1);
    if (!chars)
        abort();
    memcpy(chars, data + 11 + hdrlen, nchars_bytes);
    int n = pystr_to_utf8(chars, (int64_t)(nchars_bytes / kind), kind, out, outn);
    if (n >= 0 && ((size_t)n >= outn || out[n] != 0 || !utf8_valid((unsigned char *)out, n)))
        abort();
    free(chars);
    free(out);
    free(hdr);
    return 0;
}
