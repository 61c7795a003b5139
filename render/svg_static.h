/*
 * svg_static.h - the part of the SVG flame graph that needs no script: the header (title,
 * facts, memory-over-time chart) and one <rect> per frame with its clipped label and a
 * <title> tooltip, laid out for a 1200 px wide picture.
 *
 * A viewer that runs no script (an <img> in a README or an issue, an image viewer, Inkscape,
 * a chat preview) shows exactly this; render/flame.js removes the group (id "static") and
 * draws the interactive graph in its place at the window's width. Text reaches the file
 * XML-escaped, non-ASCII as character references and invalid UTF-8 as U+FFFD, so the output
 * stays pure ASCII and well-formed whatever the profile holds.
 */
#ifndef MEMSNAP_SVG_STATIC_H
#define MEMSNAP_SVG_STATIC_H

#include <stdint.h>
#include <stdio.h>

#include "flametree.h"
#include "profile.h"
#include "user_imports.h"

/* The picture's fixed geometry, shared with flame.js (which may widen it). */
#define SVG_WIDTH 1200
#define SVG_PAD   10
#define SVG_ROW   17
/* Narrower frames are not drawn (flame.js's MIN_DRAW_PX): at 1200 px they are invisible. The
 * data keeps them down to --min-width, for zooming. */
#define SVG_MIN_DRAW_PX 0.3

struct svg_static_layout {
    double height;     /* the whole picture */
    double stats_y;    /* baseline of the first facts row */
    double chart_top;  /* top of the memory chart; < 0 when there is no chart */
    double toolbar_y;  /* top of the toolbar row (a legend line when static) */
    double frames_top; /* top of the frames */
    double panel_y;    /* top of the "imports in your code" panel below the frames */
};

/* The frames' left edges and widths in pixels at SVG_WIDTH, for nodes in preorder `order`. */
int svg_static_geometry(const struct flame_tree *t, const uint32_t *order, double *x, double *w);

/* Computes the layout: header rows, frames, and `panel_rows` rows of the imports panel. */
void svg_static_layout(const struct profile *p, const struct flame_tree *t, size_t panel_rows,
                       struct svg_static_layout *lay);

/* Opens the group "static" and writes the header (title, facts, chart, legend) and the
 * frames: every node of the tree at least min_px and SVG_MIN_DRAW_PX wide, i.e. what the
 * script draws before any zoom. The caller adds the panel and closes the group. */
void svg_static_write(FILE *out, const struct profile *p, const struct flame_tree *t,
                      const uint32_t *order, const double *x, const double *w, const char *title,
                      int flame, double min_px, const struct svg_static_layout *lay);

/* The panel "Imports in your code" below the frames: one row per statement, as text
 * (value, share, where, statement, note); `cells` receives 5 strings into `buf`. */
void svg_import_row(const struct flame_tree *t, const struct user_import *r, char cells[5][512]);

/* Writes the panel at lay->panel_y. */
void svg_static_panel(FILE *out, const struct flame_tree *t, const struct user_import *rows,
                      size_t n, const struct svg_static_layout *lay);

/* Writes `s` as XML character data: at most max_chars code points (0 = all), escaped, pure
 * ASCII; with `cut` a truncated string ends in "..". */
void svg_xml_text(FILE *out, const char *s, size_t max_chars, int cut);

/* The number of code points of `s`. */
size_t svg_text_len(const char *s);

/* Decodes one UTF-8 sequence at s; returns its length (>= 1) and the code point, or U+FFFD
 * (length 1) for a byte that does not start a valid, shortest-form, non-surrogate sequence.
 * Shared by the static picture and the script's data (svg.c), which escape names alike. */
size_t svg_utf8_next(const unsigned char *s, uint32_t *cp);

#endif
