/*
 * svg.c - the self-contained SVG flame graph (see svg.h): data as JSON, viewer embedded.
 *
 * Only frames that survived pruning are written, and only the strings they use, so the file
 * size follows what is drawn (a few hundred kilobytes for tens of thousands of frames).
 */
#include <stdlib.h>
#include <string.h>

#include "colors.h"
#include "flame_assets.h"
#include "summary.h"
#include "svg.h"
#include "svg_static.h"

#define SVG_PANEL_ROWS 8
#include "units.h"

void svg_json_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    putc('"', out);
    while (*p) {
        uint32_t cp;
        p += svg_utf8_next(p, &cp);
        if (cp >= 0x20 && cp < 0x7f && !strchr("<>&'\"\\", (int)cp)) {
            putc((int)cp, out);
        } else if (cp < 0x10000) {
            fprintf(out, "\\u%04x", (unsigned)cp);
        } else {
            cp -= 0x10000;
            fprintf(out, "\\u%04x\\u%04x", 0xd800 + (unsigned)(cp >> 10),
                    0xdc00 + (unsigned)(cp & 0x3ff));
        }
    }
    putc('"', out);
}

static const struct flame_tree *sort_tree; /* qsort has no context argument in C11 */

static int child_cmp(const void *a, const void *b)
{
    const struct flame_tree *t = sort_tree;
    const struct flame_frame *fa = &t->frames[t->nodes[*(const uint32_t *)a].frame];
    const struct flame_frame *fb = &t->frames[t->nodes[*(const uint32_t *)b].frame];
    if ((fa->kind == FLAME_OTHER) != (fb->kind == FLAME_OTHER))
        return fa->kind == FLAME_OTHER ? 1 : -1;
    int c = strcmp(t->strings.strs[fa->name], t->strings.strs[fb->name]);
    if (!c)
        c = strcmp(t->strings.strs[fa->file], t->strings.strs[fb->file]);
    if (!c)
        c = fa->line < fb->line ? -1 : fa->line > fb->line;
    return c;
}

void svg_child_order(const struct flame_tree *t, uint32_t node, uint32_t *order)
{
    const struct flame_node *n = &t->nodes[node];
    for (uint32_t i = 0; i < n->n_children; i++)
        order[i] = n->first_child + i;
    sort_tree = t;
    qsort(order, n->n_children, sizeof *order, child_cmp);
}

/* Node indexes in preorder with sorted children; returns a malloc'd array of t->n_nodes. */
static uint32_t *preorder(const struct flame_tree *t)
{
    uint32_t *out = malloc(t->n_nodes * sizeof *out);
    uint32_t *stack = malloc(t->n_nodes * sizeof *stack);
    uint32_t *kids = malloc(t->n_nodes * sizeof *kids);
    if (!out || !stack || !kids) {
        free(out);
        free(stack);
        free(kids);
        return NULL;
    }
    size_t n_out = 0, sp = 0;
    stack[sp++] = 0;
    while (sp) {
        uint32_t id = stack[--sp];
        out[n_out++] = id;
        uint32_t nk = t->nodes[id].n_children;
        svg_child_order(t, id, kids);
        /* Push in reverse so the first child is visited first. */
        for (uint32_t i = nk; i-- > 0;)
            stack[sp++] = kids[i];
    }
    free(stack);
    free(kids);
    return out;
}

static void write_summary(FILE *out, const struct profile *p, const struct flame_tree *t)
{
    struct summary s;
    summary_items(p, t, &s);
    fputs("\"stats\":[", out);
    for (size_t i = 0; i < s.n; i++) {
        fputs(i ? ",[" : "[", out);
        svg_json_string(out, s.items[i].label);
        putc(',', out);
        svg_json_string(out, s.items[i].value);
        putc(']', out);
    }
    fputs("],\n", out);
}

static void write_timeline(FILE *out, const struct profile *p)
{
    fputs("\"timeline\":[", out);
    for (size_t i = 0; i < p->n_timeline; i++)
        fprintf(out, "%s%lld,%lld,%lld", i ? "," : "", (long long)(p->timeline[i].t_ns / 1000000),
                (long long)p->timeline[i].rss, (long long)p->timeline[i].heap);
    fprintf(out, "],\n\"peak\":[%lld,%lld,%lld],\n", (long long)(p->meta.peak_time_ns / 1000000),
            (long long)p->meta.peak_heap, (long long)p->meta.peak_rss);
}

static void default_title(const struct profile *p, const struct flame_tree *t, char *buf,
                          size_t len)
{
    const char *kind = t->has_base ? "Memory diff" : "Memory";
    if (p->meta.command)
        snprintf(buf, len, "%s: %s", kind, p->strings[p->meta.command]);
    else
        snprintf(buf, len, "%s flame graph", kind);
}

int svg_write(FILE *out, const struct profile *p, const struct flame_tree *t,
              const struct svg_options *opt, ms_error *err)
{
    uint32_t *order = preorder(t);
    uint32_t *frame_map = malloc((t->n_frames ? t->n_frames : 1) * sizeof *frame_map);
    uint32_t *str_map = malloc((t->strings.n ? t->strings.n : 1) * sizeof *str_map);
    uint32_t *frames_used = malloc((t->n_frames ? t->n_frames : 1) * sizeof *frames_used);
    uint32_t *strs_used = malloc((t->strings.n ? t->strings.n : 1) * sizeof *strs_used);
    if (!order || !frame_map || !str_map || !frames_used || !strs_used) {
        free(order);
        free(frame_map);
        free(str_map);
        free(frames_used);
        free(strs_used);
        return ms_error_set(err, "out of memory writing the SVG");
    }
    /* Renumber the frames and strings the drawn nodes use, in first-use order. */
    memset(frame_map, 0xff, t->n_frames * sizeof *frame_map);
    memset(str_map, 0xff, t->strings.n * sizeof *str_map);
    size_t n_frames = 0, n_strs = 0;
    for (size_t i = 0; i < t->n_nodes; i++) {
        uint32_t f = t->nodes[order[i]].frame;
        if (frame_map[f] != UINT32_MAX)
            continue;
        frame_map[f] = (uint32_t)n_frames;
        frames_used[n_frames++] = f;
        uint32_t s[2] = {t->frames[f].name, t->frames[f].file};
        for (int k = 0; k < 2; k++)
            if (str_map[s[k]] == UINT32_MAX) {
                str_map[s[k]] = (uint32_t)n_strs;
                strs_used[n_strs++] = s[k];
            }
    }

    char title[1024];
    if (opt->title)
        snprintf(title, sizeof title, "%s", opt->title);
    else
        default_title(p, t, title, sizeof title);
    double *x = malloc(t->n_nodes * sizeof *x), *w = malloc(t->n_nodes * sizeof *w);
    if (!x || !w || svg_static_geometry(t, order, x, w) < 0) {
        free(x);
        free(w);
        free(order);
        free(frame_map);
        free(str_map);
        free(frames_used);
        free(strs_used);
        return ms_error_set(err, "out of memory writing the SVG");
    }
    struct user_import *rows = NULL;
    size_t n_rows = 0;
    if (!t->has_base && user_imports_find(t, SVG_PANEL_ROWS, &rows, &n_rows) < 0) {
        free(x);
        free(w);
        free(order);
        free(frame_map);
        free(str_map);
        free(frames_used);
        free(strs_used);
        return ms_error_set(err, "out of memory writing the SVG");
    }
    struct svg_static_layout lay;
    svg_static_layout(p, t, n_rows, &lay);
    /* A fixed size for viewers without scripts (1200 px wide as an image); the script widens
     * the picture to the window when the file is opened directly. */
    fprintf(out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n"
            "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%.0f\" viewBox=\"0 0 %d %.0f\" id=\"memsnap\">\n",
            SVG_WIDTH, lay.height, SVG_WIDTH, lay.height);
    fprintf(out, "<!-- memsnap render: %zu frames -->\n<title>", t->n_nodes);
    svg_xml_text(out, title, 0, 0);
    fputs("</title>\n<defs><pattern id=\"gone\" width=\"6\" height=\"6\" "
          "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
          "<rect width=\"6\" height=\"6\" fill=\"#dde6ff\"/>"
          "<rect width=\"2.5\" height=\"6\" fill=\"#5a7bd8\"/></pattern></defs>\n"
          "<style type=\"text/css\"><![CDATA[\n",
          out);
    fwrite(flame_css, 1, sizeof flame_css - 1, out);
    fputs("]]></style>\n", out);
    svg_static_write(out, p, t, order, x, w, title, opt->flame, opt->min_px, &lay);
    svg_static_panel(out, t, rows, n_rows, &lay);
    fputs("</g>\n", out); /* the static picture */
    free(x);
    free(w);
    fputs("<script type=\"text/ecmascript\"><![CDATA[\nconst D = {\n\"title\":", out);
    svg_json_string(out, title);
    fputs(",\n\"metric\":", out);
    svg_json_string(out, t->metric);
    fputs(",\n\"unit\":", out);
    svg_json_string(out, t->metric_unit);
    fprintf(out, ",\n\"diff\":%d,\n\"counts\":%d,\n\"flame\":%d,\n", t->has_base, t->has_counts,
            opt->flame ? 1 : 0);
    write_summary(out, p, t);
    /* "Imports in your code": rows of preformatted cells. */
    fputs("\"imports\":[", out);
    for (size_t i = 0; i < n_rows; i++) {
        char cells[5][512];
        svg_import_row(t, &rows[i], cells);
        fputs(i ? ",[" : "[", out);
        for (int k = 0; k < 5; k++) {
            if (k)
                putc(',', out);
            svg_json_string(out, cells[k]);
        }
        putc(']', out);
    }
    fputs("],\n", out);
    free(rows);
    write_timeline(out, p);
    fputs("\"strs\":[", out);
    for (size_t i = 0; i < n_strs; i++) {
        if (i)
            putc(',', out);
        svg_json_string(out, t->strings.strs[strs_used[i]]);
    }
    fputs("],\n\"frames\":[", out);
    for (size_t i = 0; i < n_frames; i++) {
        const struct flame_frame *f = &t->frames[frames_used[i]];
        fprintf(out, "%s%u,%u,%lld,%u", i ? "," : "", str_map[f->name], str_map[f->file],
                (long long)f->line, f->kind);
    }
    fputs("],\n\"fcolor\":[", out);
    for (size_t i = 0; i < n_frames; i++) {
        const struct flame_frame *f = &t->frames[frames_used[i]];
        char c[8];
        colors_frame(t->strings.strs[f->file], f->kind, c);
        fprintf(out, "%s\"%s\"", i ? "," : "", c + 1);
    }
    /* Nodes in preorder: frame, depth, total, self, count[, before, colour, width]. */
    fputs("],\n\"nodes\":[", out);
    for (size_t i = 0; i < t->n_nodes; i++) {
        const struct flame_node *n = &t->nodes[order[i]];
        fprintf(out, "%s%u,%u,%lld,%lld,%lld",
                i == 0  ? ""
                : i % 8 ? ","
                        : ",\n",
                frame_map[n->frame], n->depth, (long long)n->total, (long long)n->self,
                (long long)n->count_total);
        if (t->has_base) {
            char c[8];
            colors_diff(n->base_total, n->total, c);
            fprintf(out, ",%lld,\"%s\",%lld", (long long)n->base_total, c + 1, (long long)n->width);
        }
    }
    fputs("]\n};\n", out);
    fwrite(flame_js, 1, sizeof flame_js - 1, out);
    fputs("]]></script>\n</svg>\n", out);

    free(order);
    free(frame_map);
    free(str_map);
    free(frames_used);
    free(strs_used);
    fflush(out);
    if (ferror(out))
        return ms_error_set(err, "writing the SVG failed (disk full or closed pipe?)");
    return 0;
}
