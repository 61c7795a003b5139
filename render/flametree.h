/*
 * flametree.h - a profile's stacks merged into the tree every renderer output draws.
 *
 * Each sample's stack (root first) becomes a path from the root; paths sharing a prefix of
 * equal frames share nodes, and a node's total is the sum of the chosen metric over the
 * samples passing through it. A frame is (function name, filename, line), compared by
 * content, so two profiles (--diff) merge into one tree. On the way:
 *
 *   - import machinery is collapsed into "import <module>" frames (imports.h) unless
 *     raw_imports is set;
 *   - children whose total (in a diff: the larger of total and base total) is below
 *     min_fraction of the root total (or zero) merge into a
 *     single "(other)" child of their parent, so a million distinct stacks still give a
 *     tree of a few thousand nodes. Pruning happens while building, so the cost is bounded
 *     by what survives, not by the input;
 *   - with a base profile (a diff), the tree is the union of both profiles' trees: every node
 *     also carries the base metric (base_total/base_self), a node only in the base keeps its
 *     base value, and pruning follows the larger of the two. Frames of a diff match by
 *     function and file relative to its import root (imports_relative_path, the script
 *     directory being that of each profile's first stack), ignoring lines unless
 *     diff_lines is set, so that two checkouts and an edited file still compare.
 *
 * Values are clamped to [0, 2^62] per sample and summed with saturation: a hostile profile
 * gives odd widths, never overflow.
 */
#ifndef MEMSNAP_FLAMETREE_H
#define MEMSNAP_FLAMETREE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "profile.h"
#include "strset.h"

enum flame_kind {
    FLAME_PLAIN = 0,  /* a Python frame */
    FLAME_IMPORT = 1, /* collapsed import machinery: "import numpy.random" */
    FLAME_OTHER = 2,  /* merged narrow children: "(other)" */
    FLAME_ROOT = 3,   /* the tree's root: "all" */
};

struct flame_frame {
    uint32_t name;     /* id in flame_tree.strings */
    uint32_t file;     /* id in flame_tree.strings; the empty string when unknown */
    int64_t line;      /* 0 when unknown */
    uint8_t kind;      /* enum flame_kind */
    uint8_t machinery; /* part of the import system (imports_is_machinery) */
    uint8_t module;    /* a module body: name "<module>" */
};

struct flame_node {
    uint32_t frame;       /* index into flame_tree.frames */
    uint32_t parent;      /* UINT32_MAX for the root */
    uint32_t first_child; /* children are nodes[first_child .. first_child + n_children) */
    uint32_t n_children;  /* sorted by frame index */
    uint32_t depth;       /* root = 0 */
    int64_t total, self;  /* the metric: through this node / ending here */
    int64_t count_total, count_self; /* the matching object count, 0 when none */
    int64_t base_total, base_self;   /* the metric in the base profile (diff) */
    int64_t width; /* what the graph's width follows: total; in a diff the larger of self and
                    * base_self plus the children's widths, so a node is at least as wide as
                    * both its before and after totals and one only in the base keeps its
                    * base width */
};

struct flame_tree {
    struct strset strings;
    struct flame_frame *frames;
    size_t n_frames;
    struct flame_node *nodes; /* nodes[0] is the root */
    size_t n_nodes;
    uint32_t max_depth;
    int has_counts;          /* the profile has an object count matching the metric */
    int has_base;            /* built with a base profile */
    const char *metric;      /* sample type name; points into the profile */
    const char *metric_unit; /* its unit, e.g. "bytes" */
    uint32_t *frame_slots;   /* private: frame dedup table (index + 1, 0 = empty) */
    size_t n_frame_slots;
    size_t frames_cap;
    size_t nodes_cap;
};

struct flame_options {
    const char *metric;  /* sample type name, NULL = the profile's default */
    int raw_imports;     /* keep the import machinery frames as they are */
    double min_fraction; /* prune children narrower than this share of the root; 0 = keep */
    int diff_lines;      /* diff: frames match by line too (default: function and file only) */
    int threads;         /* threads to build with (at most 8); 0 = one per CPU. The tree is
                          * the same whatever the number (tests compare). */
};

/* Resolves the metric: *value_idx = the sample type named `metric` (or the default when
 * NULL), *count_idx = the matching object count type or -1 ("inuse_space" pairs with
 * "inuse_objects"; generally "<x>_space" with "<x>_objects"). Unknown name: an error that
 * lists the available types. */
int flametree_metric(const struct profile *p, const char *metric, int *value_idx, int *count_idx,
                     ms_error *err);

/* Builds the tree of `p` (and, when base != NULL, overlays `base`, which must have the same
 * metric). *out is owned by the caller (flametree_free). Errors: unknown metric, ENOMEM. */
int flametree_build(const struct profile *p, const struct profile *base,
                    const struct flame_options *opt, struct flame_tree **out, ms_error *err);

/* The index of the frame (name, file, line, kind), adding it when new; UINT32_MAX on ENOMEM.
 * Used while building (imports.c adds the "import x" frames). */
uint32_t flametree_frame(struct flame_tree *t, const char *name, const char *file, int64_t line,
                         int kind);

/* The strings of a node's frame, for outputs. */
const char *flametree_name(const struct flame_tree *t, uint32_t node);
const char *flametree_file(const struct flame_tree *t, uint32_t node);

void flametree_free(struct flame_tree *t);

/* Adds without overflowing: saturates at INT64_MAX / INT64_MIN. */
int64_t flametree_add(int64_t a, int64_t b);

#endif
