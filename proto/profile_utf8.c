/*
 * profile_utf8.c - UTF-8 repair for every string that enters a profile.
 *
 * Strings come from hostile places: a target's remote memory (function and file names) and
 * profile files written by anyone. pprof declares them UTF-8, Python's and Go's decoders
 * reject files where they are not, and the renderer embeds them in SVG. So the builder and the
 * reader both pass strings through here: each byte that does not start a well-formed sequence
 * (overlong forms, surrogates, code points past U+10FFFF, truncated sequences) and each NUL
 * byte (which would silently cut a C string short) becomes U+FFFD.
 */
#include "profile_internal.h"

#include <string.h>

static const char replacement[3] = {(char)0xef, (char)0xbf, (char)0xbd};

/* Length of the well-formed sequence at s[0..n), or 0 when it is not one (or is NUL). */
static size_t utf8_sequence_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c >= 0x01 && c <= 0x7f)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

size_t utf8_repaired_len(const uint8_t *s, size_t len)
{
    size_t out = 0, i = 0;
    while (i < len) {
        /* ASCII runs dominate: skip them without the general decoder. */
        if (s[i] >= 0x01 && s[i] <= 0x7f) {
            i++;
            out++;
            continue;
        }
        size_t n = utf8_sequence_len(s + i, len - i);
        if (n) {
            i += n;
            out += n;
        } else {
            i++;
            out += sizeof replacement;
        }
    }
    return out;
}

void utf8_repair(const uint8_t *s, size_t len, char *dst)
{
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_sequence_len(s + i, len - i);
        if (n) {
            memcpy(dst, s + i, n);
            dst += n;
            i += n;
        } else {
            memcpy(dst, replacement, sizeof replacement);
            dst += sizeof replacement;
            i++;
        }
    }
}
