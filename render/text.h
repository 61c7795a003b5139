/*
 * text.h - the terminal report of `memsnap stats` and `render --format text`.
 *
 * Prints the recording's facts (summary.h), then "Imports in your code" (user_imports.h;
 * not in a diff), in a diff what is gone and what is new since the base (subtrees only in one
 * profile, biggest first), then three tables: the top allocation sites by
 * the metric held in the frame itself (self), the top frames by everything below them
 * (total, counting a frame once per stack even when it recurses), and the top imports
 * (collapsed import frames, total). With a base profile each table also shows the before
 * value and the change. "(other)" (pruned narrow frames) is never listed.
 */
#ifndef MEMSNAP_TEXT_H
#define MEMSNAP_TEXT_H

#include <stdio.h>

#include "error.h"
#include "flametree.h"
#include "profile.h"

/* Writes the report; `top` rows per table. -1 with err on ENOMEM or a write error. */
int text_write(FILE *out, const struct profile *p, const struct flame_tree *t, size_t top,
               ms_error *err);

#endif
