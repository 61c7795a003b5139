/*
 * py_offsets.c - looks up the generated per-version offset row (py_offsets_table.c).
 *
 * Kept apart from the generated table so the table file holds nothing but generated data.
 */
#include "py_offsets.h"

#include <stddef.h>

const struct py_offsets *py_offsets_find(int major, int minor)
{
    for (int i = 0; i < py_offsets_count; i++) {
        if (py_offsets_table[i].major == major && py_offsets_table[i].minor == minor)
            return &py_offsets_table[i];
    }
    return NULL;
}
