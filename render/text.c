/*
 * text.c - the terminal report (see text.h).
 *
 * Per-frame sums are gathered in one depth-first walk: self adds up everywhere, total only
 * where the frame is not already on the path above (on_path counts), so recursion does not
 * count bytes twice.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "folded.h"
#include "summary.h"
#include "text.h"
#include "units.h"
#include "user_imports.h"

struct site {
    uint32_t frame;
    uint32_t node; /* one node with this frame, for its label */
    int64_t self, total, count, count_self, base_self, base_total;
};

struct gather {
    const struct flame_tree *t;
    struct site *sites; /* indexed by frame */
    uint32_t *on_path;  /* per frame: how many times it is on the current path */
};

static void gather_walk(struct gather *g, uint32_t id)
{
    /* Iterative over siblings, recursive over depth (bounded by FLAME_MAX_DEPTH). */
    const struct flame_node *n = &g->t->nodes[id];
    struct site *s = &g->sites[n->frame];
    s->frame = n->frame;
    s->node = id;
    s->self = flametree_add(s->self, n->self);
    s->count_self = flametree_add(s->count_self, n->count_self);
    s->base_self = flametree_add(s->base_self, n->base_self);
    if (g->on_path[n->frame]++ == 0) {
        s->total = flametree_add(s->total, n->total);
        s->count = flametree_add(s->count, n->count_total);
        s->base_total = flametree_add(s->base_total, n->base_total);
    }
    for (uint32_t c = n->first_child; c < n->first_child + n->n_children; c++)
        gather_walk(g, c);
    g->on_path[n->frame]--;
}

static int by_self(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    return x->self < y->self   ? 1
           : x->self > y->self ? -1
                               : (x->frame > y->frame) - (x->frame < y->frame);
}

/* Largest change of self first (diff reports): growth and shrinkage alike. */
static int by_self_change(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    double dx = fabs((double)x->self - (double)x->base_self);
    double dy = fabs((double)y->self - (double)y->base_self);
    return dx < dy ? 1 : dx > dy ? -1 : (x->frame > y->frame) - (x->frame < y->frame);
}

static int by_total(const void *a, const void *b)
{
    const struct site *x = a, *y = b;
    return x->total < y->total   ? 1
           : x->total > y->total ? -1
                                 : (x->frame > y->frame) - (x->frame < y->frame);
}

/* Prints one table of the `top` first sites of `sorted` that pass `want`. */
static void table(FILE *out, const struct flame_tree *t, const char *heading,
                  const struct site *sorted, size_t n, size_t top, int use_self, int imports)
{
    char v[UNITS_BUF], pct[16], cnt[UNITS_BUF], before[UNITS_BUF], label[1200];
    int64_t all = t->nodes[0].total;
    fprintf(out, "\n%s\n", heading);
    if (t->has_base)
        fprintf(out, "  %10s %6s %10s %10s  %s\n", t->metric_unit[0] ? "value" : "", "share",
                "before", "change", imports ? "import" : "site");
    else
        fprintf(out, "  %10s %6s %12s  %s\n", "value", "share", t->has_counts ? "allocations" : "",
                imports ? "import" : "site");
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < top; i++) {
        const struct site *s = &sorted[i];
        const struct flame_frame *f = &t->frames[s->frame];
        int64_t value = use_self ? s->self : s->total;
        /* Imports hold allocations of their own (module bodies, unmarshalled code): they are
         * sites in the self table, but have their own table of totals. */
        if (f->kind == FLAME_OTHER || f->kind == FLAME_ROOT ||
            (!use_self && imports != (f->kind == FLAME_IMPORT)))
            continue;
        if (value <= 0 && !(t->has_base && (use_self ? s->base_self : s->base_total) > 0))
            continue;
        summary_value(t, value, v, sizeof v);
        snprintf(pct, sizeof pct, "%.1f%%", all > 0 ? 100.0 * (double)value / (double)all : 0.0);
        folded_label(t, s->node, label, sizeof label);
        if (t->has_base) {
            int64_t b = use_self ? s->base_self : s->base_total;
            char delta[UNITS_BUF + 1];
            summary_value(t, b, before, sizeof before);
            summary_value(t, value - b, delta + 1, sizeof delta - 1);
            delta[0] = value - b > 0 ? '+' : ' ';
            fprintf(out, "  %10s %6s %10s %10s  %s\n", v, pct, before,
                    delta[0] == '+' ? delta : delta + 1, label);
        } else {
            if (t->has_counts)
                units_count(use_self ? s->count_self : s->count, cnt, sizeof cnt);
            else
                cnt[0] = '\0';
            fprintf(out, "  %10s %6s %12s  %s\n", v, pct, cnt, label);
        }
        shown++;
    }
    if (!shown)
        fprintf(out, "  (none)\n");
}

/* "Imports in your code, by cost" (user_imports.h). */
static int your_imports(FILE *out, const struct flame_tree *t, size_t top)
{
    struct user_import *rows;
    size_t n;
    if (user_imports_find(t, top, &rows, &n) < 0)
        return -1;
    char v[UNITS_BUF], pk[UNITS_BUF];
    int64_t all = t->nodes[0].total;
    fprintf(out,
            "\nImports in your code by %s (what each statement pulled in; a statement of your "
            "code below another has its own row)\n",
            t->metric);
    fprintf(out, "  %10s %6s  %s\n", "value", "share", "statement");
    for (size_t i = 0; i < n; i++) {
        const struct user_import *r = &rows[i];
        summary_value(t, r->bytes, v, sizeof v);
        fprintf(out, "  %10s %5.1f%%  %s:%lld%s%s\n", v,
                all > 0 ? 100.0 * (double)r->bytes / (double)all : 0.0, r->file, (long long)r->line,
                r->source[0] ? "  " : "", r->source);
        fprintf(out, "  %10s %6s  imports %s", "", "", r->module[0] ? r->module : "?");
        if (r->package[0] && r->package_bytes * 2 >= r->bytes)
            fprintf(out, "; %s: %s of it", r->package,
                    summary_value(t, r->package_bytes, pk, sizeof pk));
        putc('\n', out);
    }
    if (!n)
        fprintf(out, "  (none)\n");
    free(rows);
    return 0;
}

static const struct flame_tree *sort_t;

static int by_removed(const void *a, const void *b)
{
    const struct flame_node *x = &sort_t->nodes[*(const uint32_t *)a];
    const struct flame_node *y = &sort_t->nodes[*(const uint32_t *)b];
    int64_t dx = x->base_total - x->total, dy = y->base_total - y->total;
    return dx < dy ? 1 : dx > dy ? -1 : (*(const uint32_t *)a > *(const uint32_t *)b) ? 1 : -1;
}

/* A diff's subtrees that are only in one profile, biggest first: `removed` lists nodes only
 * in the base (after = 0) under a parent still present, else nodes only in the new profile
 * under a parent the base had. The root of each such subtree is one row. */
static int new_or_gone(FILE *out, const struct flame_tree *t, size_t top, int removed)
{
    uint32_t *rows = malloc(t->n_nodes * sizeof *rows);
    if (!rows)
        return -1;
    size_t n = 0;
    for (uint32_t i = 1; i < t->n_nodes; i++) {
        const struct flame_node *nd = &t->nodes[i], *par = &t->nodes[nd->parent];
        if (t->frames[nd->frame].kind == FLAME_OTHER)
            continue;
        if (removed ? nd->total == 0 && nd->base_total > 0 && par->total > 0
                    : nd->base_total == 0 && nd->total > 0 && par->base_total > 0)
            rows[n++] = i;
    }
    sort_t = t;
    qsort(rows, n, sizeof *rows, by_removed);
    char v[UNITS_BUF], label[1200], parent[1200];
    fprintf(out, "\n%s\n",
            removed ? "Gone since the base (only in the base profile), biggest first"
                    : "New since the base (not in the base profile), biggest first");
    fprintf(out, "  %10s  %s\n", "change", "frame (under its caller)");
    /* Additions sort last-first by the same comparison: walk from the end. */
    for (size_t k = 0; k < n && k < top; k++) {
        uint32_t i = removed ? rows[k] : rows[n - 1 - k];
        const struct flame_node *nd = &t->nodes[i];
        int64_t d = flametree_add(nd->total, -nd->base_total);
        summary_value(t, d, v + 1, sizeof v - 1);
        v[0] = '+';
        folded_label(t, i, label, sizeof label);
        folded_label(t, nd->parent, parent, sizeof parent);
        fprintf(out, "  %10s  %s  (under %s)\n", d > 0 ? v : v + 1, label, parent);
    }
    if (!n)
        fprintf(out, "  (none)\n");
    free(rows);
    return 0;
}

int text_write(FILE *out, const struct profile *p, const struct flame_tree *t, size_t top,
               ms_error *err)
{
    struct gather g = {.t = t};
    g.sites = calloc(t->n_frames ? t->n_frames : 1, sizeof *g.sites);
    g.on_path = calloc(t->n_frames ? t->n_frames : 1, sizeof *g.on_path);
    struct site *sorted = malloc((t->n_frames ? t->n_frames : 1) * sizeof *sorted);
    if (!g.sites || !g.on_path || !sorted) {
        free(g.sites);
        free(g.on_path);
        free(sorted);
        return ms_error_set(err, "out of memory writing the report");
    }
    gather_walk(&g, 0);

    struct summary s;
    summary_items(p, t, &s);
    for (size_t i = 0; i < s.n; i++)
        fprintf(out, "%-11s %s\n", s.items[i].label, s.items[i].value);
    char heading[256];
    if (!t->has_base && your_imports(out, t, top < 10 ? top : 10) < 0) {
        free(g.sites);
        free(g.on_path);
        free(sorted);
        return ms_error_set(err, "out of memory writing the report");
    }
    if (t->has_base && (new_or_gone(out, t, top, 1) < 0 || new_or_gone(out, t, top, 0) < 0)) {
        free(g.sites);
        free(g.on_path);
        free(sorted);
        return ms_error_set(err, "out of memory writing the report");
    }
    memcpy(sorted, g.sites, t->n_frames * sizeof *sorted);
    qsort(sorted, t->n_frames, sizeof *sorted, t->has_base ? by_self_change : by_self);
    snprintf(heading, sizeof heading, "Top allocation sites by %s%s (self: in the frame itself)",
             t->has_base ? "change of " : "", t->metric);
    table(out, t, heading, sorted, t->n_frames, top, 1, 0);
    qsort(sorted, t->n_frames, sizeof *sorted, by_total);
    snprintf(heading, sizeof heading, "Top frames by %s (total: the frame and its callees)",
             t->metric);
    table(out, t, heading, sorted, t->n_frames, top, 0, 0);
    snprintf(heading, sizeof heading, "Top imports by %s (total, nested imports included)",
             t->metric);
    table(out, t, heading, sorted, t->n_frames, top, 0, 1);

    free(g.sites);
    free(g.on_path);
    free(sorted);
    fflush(out);
    if (ferror(out))
        return ms_error_set(err, "writing the report failed (disk full or closed pipe?)");
    return 0;
}
