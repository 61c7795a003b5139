/*
 * fuzz_linetable.c - libFuzzer target for the line-table decoders (sampler/python/linetable.c).
 *
 * Line tables are copied out of a possibly hostile process, so any bytes must decode without
 * reading past the table, without undefined behaviour, and to a line >= -1. The table is
 * placed in an exact-size heap copy so AddressSanitizer sees any overread. Built and run by
 * scripts/fuzz.d/lines.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"
#include "py_offsets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Layout: model selector, firstlineno, offset, raw instruction field, then the table. */
    if (size < 1 + 4 + 4 + 8)
        return 0;
    int model = data[0] % 4; /* 0 is an invalid model, kept on purpose */
    int32_t first;
    int32_t offset;
    uint64_t raw;
    memcpy(&first, data + 1, 4);
    memcpy(&offset, data + 5, 4);
    memcpy(&raw, data + 9, 8);
    size_t len = size - 17;
    uint8_t *table = malloc(len ? len : 1);
    if (!table)
        return 0;
    memcpy(table, data + 17, len);

    if (linetable_line(model, len ? table : NULL, len, first, offset) < -1 && offset >= 0)
        abort();
    /* Every offset a real frame could be at, for small tables. */
    for (int64_t at = 0; len < 256 && at < 2 * (int64_t)len + 4; at += 2) {
        if (linetable_line(model, table, len, first, at) < -1)
            abort();
    }
    int64_t at =
        linetable_offset(1 + data[0] % 5, raw, raw ^ (uint64_t)first * 0x9e3779b9u, offset);
    if (at < -1)
        abort();
    free(table);
    return 0;
}
