/*
 * folded.h - Brendan Gregg's folded stacks, the lingua franca of flame graph tools.
 *
 * One line per distinct stack that has a value of its own: frames root first, joined by ';',
 * a space, the value ("main (app.py:3);load (app.py:10) 1048576"). With a base profile
 * (--diff) each line carries both values, base first, as difffolded.pl writes them
 * ("stack 1000 1500"). Frames read "name (file:line)"; collapsed imports and "(other)" read
 * as their name. Semicolons and line breaks inside names become '_' so that the format
 * stays parseable.
 */
#ifndef MEMSNAP_FOLDED_H
#define MEMSNAP_FOLDED_H

#include <stdio.h>

#include "error.h"
#include "flametree.h"

/* -1 with err on a write error or ENOMEM. */
int folded_write(FILE *out, const struct flame_tree *t, ms_error *err);

/* The label of a node's frame as the folded and text outputs print it. */
void folded_label(const struct flame_tree *t, uint32_t node, char *buf, size_t len);

#endif
