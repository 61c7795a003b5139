/*
 * fuzz_render.c - libFuzzer target: bytes -> profile reader -> flame tree -> every output.
 *
 * The reader validates its input; this checks that whatever it accepts (odd values, deep or
 * degenerate stacks, hostile names, missing metadata) draws without a crash, leak or UB, with
 * and without import collapsing and pruning, as SVG, folded stacks and the text report, and
 * as a diff against itself. The first input byte picks the options.
 */
#include <stdint.h>
#include <stdio.h>

#include "flametree.h"
#include "folded.h"
#include "svg.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opts = data[0];
    struct profile *p = NULL;
    ms_error err;
    if (profile_read_mem(data + 1, size - 1, &p, &err) < 0)
        return 0;
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    struct flame_options o = {
        .raw_imports = opts & 1,
        .min_fraction = (opts & 2) ? 0.1 / 1180 : 0,
        .diff_lines = (opts >> 4) & 1,
    };
    struct flame_tree *t = NULL;
    if (flametree_build(p, (opts & 4) ? p : NULL, &o, &t, &err) == 0) {
        struct svg_options so = {.flame = (opts >> 3) & 1, .min_px = (opts & 32) ? 1.0 : 0.1};
        svg_write(sink, p, t, &so, &err);
        folded_write(sink, t, &err);
        text_write(sink, p, t, 10, &err);
        flametree_free(t);
    }
    profile_free(p);
    return 0;
}
