/*
 * svg.h - writing a flame tree as one self-contained, interactive SVG file.
 *
 * The file is a complete picture without any script (svg_static.h: the header, the memory
 * chart and every frame as <rect>/<text> with a <title> tooltip, 1200 px wide), so it renders
 * as an <img>, on GitHub, in Inkscape. It also holds the tree as compact data plus the viewer
 * (render/flame.js, flame.css, embedded at build time), which, when scripts run, replaces the
 * static picture with the interactive one at the window's width: hover, zoom, search,
 * flame/icicle and the URL fragment. Nothing is fetched from anywhere.
 *
 * Every string from the profile reaches the file only inside JSON string literals in which
 * every character outside printable ASCII, and each of < > & ' " \, is a \u escape, and
 * invalid UTF-8 becomes U+FFFD: no name can close the CDATA section or the script, or make the
 * XML ill-formed. The output is pure ASCII.
 */
#ifndef MEMSNAP_SVG_H
#define MEMSNAP_SVG_H

#include <stdio.h>

#include "error.h"
#include "flametree.h"
#include "profile.h"

struct svg_options {
    const char *title; /* NULL = a title derived from the profile */
    int flame;         /* start as a flame graph (root at the bottom) instead of an icicle */
    double min_px;     /* frames narrower than this (at 1200 px) get no static element */
};

/* Writes the SVG of tree `t` (built from `p`) to `out`. -1 with err on a write error. */
int svg_write(FILE *out, const struct profile *p, const struct flame_tree *t,
              const struct svg_options *opt, ms_error *err);

/* Writes `s` as a JSON string literal under the escaping rules above. */
void svg_json_string(FILE *out, const char *s);

/* The preorder the outputs list a node's children in: by name, file, line, with "(other)"
 * last. Fills `order` (t->nodes[node].n_children entries) with node indexes. */
void svg_child_order(const struct flame_tree *t, uint32_t node, uint32_t *order);

#endif
