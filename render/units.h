/*
 * units.h - human-readable quantities for everything the renderer prints: bytes in binary
 * units (KiB, MiB, GiB), plain counts with thousands grouping, and durations.
 *
 * Every function writes a NUL-terminated string into buf (always, even when it has to
 * truncate) and returns buf, so calls can be used directly as printf arguments. Negative
 * values keep their sign, which diff output needs ("-1.5 MiB").
 */
#ifndef MEMSNAP_UNITS_H
#define MEMSNAP_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Large enough for any value any of these functions produces. */
#define UNITS_BUF 32

/* "0 B", "512 B", "1.5 KiB", "12.3 MiB", "1.02 GiB": three significant digits. */
char *units_bytes(int64_t bytes, char *buf, size_t len);

/* "1,234,567". */
char *units_count(int64_t n, char *buf, size_t len);

/* "850 ms", "12.5 s", "3 min 20 s", "2 h 5 min". */
char *units_duration(int64_t ns, char *buf, size_t len);

#endif
