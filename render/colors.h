/*
 * colors.h - the fill colour of each frame, as "#rrggbb".
 *
 * Normal graphs colour by where the code lives, so a glance separates the program from its
 * libraries: the program's own files warm (red-orange-yellow), installed packages
 * (site-packages, dist-packages) green, the standard library and frozen modules blue,
 * collapsed imports purple, "(other)" and the root grey. Within a family the shade is a hash
 * of the file name, so one file keeps one colour across frames and across renders.
 *
 * Differential graphs colour by change: red grew, blue shrank, white unchanged, the
 * intensity proportional to the relative change |after - before| / max(before, after).
 */
#ifndef MEMSNAP_COLORS_H
#define MEMSNAP_COLORS_H

#include <stdint.h>

#include "flametree.h"

/* out receives 8 bytes: "#rrggbb" and NUL. */
void colors_frame(const char *file, int kind, char out[8]);
void colors_diff(int64_t before, int64_t after, char out[8]);

#endif
