/*
 * units.c - formats bytes, counts and durations for people (see units.h).
 *
 * Binary units because that is what the allocators and /proc speak; three significant digits
 * because a flame graph tooltip is read at a glance, not audited.
 */
#include <stdio.h>

#include "units.h"

char *units_bytes(int64_t bytes, char *buf, size_t len)
{
    static const char *const suffix[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    /* Work on the magnitude in double: INT64_MIN has no positive int64 counterpart. */
    double v = bytes < 0 ? -(double)bytes : (double)bytes;
    const char *sign = bytes < 0 ? "-" : "";
    size_t unit = 0;
    while (v >= 1024.0 && unit + 1 < sizeof suffix / sizeof suffix[0]) {
        v /= 1024.0;
        unit++;
    }
    if (unit == 0)
        snprintf(buf, len, "%s%.0f B", sign, v);
    else if (v < 9.995)
        snprintf(buf, len, "%s%.2f %s", sign, v, suffix[unit]);
    else if (v < 99.95)
        snprintf(buf, len, "%s%.1f %s", sign, v, suffix[unit]);
    else
        snprintf(buf, len, "%s%.0f %s", sign, v, suffix[unit]);
    return buf;
}

char *units_count(int64_t n, char *buf, size_t len)
{
    char digits[24];
    /* Unsigned magnitude so that INT64_MIN prints correctly. */
    uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)mag);
    char out[40];
    size_t o = 0;
    if (n < 0)
        out[o++] = '-';
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, len, "%s", out);
    return buf;
}

char *units_duration(int64_t ns, char *buf, size_t len)
{
    if (ns < 0)
        ns = 0;
    double s = (double)ns / 1e9;
    if (s < 1.0)
        snprintf(buf, len, "%.0f ms", s * 1e3);
    else if (s < 60.0)
        snprintf(buf, len, "%.1f s", s);
    else if (s < 3600.0)
        snprintf(buf, len, "%d min %d s", (int)(s / 60), (int)s % 60);
    else /* integer seconds: a hostile duration must not overflow an int */
        snprintf(buf, len, "%lld h %lld min", (long long)(ns / 1000000000 / 3600),
                 (long long)(ns / 1000000000 % 3600 / 60));
    return buf;
}
