/*
 * svg_static.c - the script-free picture inside every SVG (see svg_static.h).
 *
 * Text widths are estimated from character counts (no font metrics here): labels are cut to
 * what fits at a generous average glyph width, so a label never spills out of its frame in
 * the fonts a browser or Inkscape picks for the CSS font list. The frames' file size is kept
 * small: one <rect> (with its <title> inside) and at most one <text> per frame, one decimal
 * per coordinate, the styles in flame.css.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "colors.h"
#include "summary.h"
#include "svg_static.h"
#include "units.h"

#define LABEL_CHAR_PX 7.0 /* frame labels, 11.5 px DejaVu Sans, rounded up */
#define STAT_LABEL_PX 6.9 /* the header's facts, 12 px */
#define STAT_VALUE_PX 7.9 /* their values, bold */
#define CHART_H       96

size_t svg_utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        *cp = 0xfffd;
        return 1;
    }
    *cp = v;
    return n;
}

size_t svg_text_len(const char *s)
{
    size_t n = 0;
    uint32_t cp;
    for (const unsigned char *p = (const unsigned char *)s; *p; n++)
        p += svg_utf8_next(p, &cp);
    return n;
}

void svg_xml_text(FILE *out, const char *s, size_t max_chars, int cut)
{
    size_t len = max_chars ? svg_text_len(s) : 0;
    size_t keep = max_chars && len > max_chars ? (cut && max_chars > 2 ? max_chars - 2 : max_chars)
                                               : (size_t)-1;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; *p && i < keep; i++) {
        uint32_t cp;
        p += svg_utf8_next(p, &cp);
        if (cp == '<')
            fputs("&lt;", out);
        else if (cp == '>')
            fputs("&gt;", out);
        else if (cp == '&')
            fputs("&amp;", out);
        else if (cp == '\n')
            putc('\n', out);
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0xfffe ||
                 cp == 0xffff)
            putc('?', out); /* not allowed in XML 1.0 (or invisible) */
        else if (cp < 0x80)
            putc((int)cp, out);
        else
            fprintf(out, "&#x%x;", (unsigned)cp);
    }
    if (keep != (size_t)-1 && cut && max_chars > 2)
        fputs("..", out);
}

int svg_static_geometry(const struct flame_tree *t, const uint32_t *order, double *x, double *w)
{
    double *cursor = malloc(t->n_nodes * sizeof *cursor);
    if (!cursor)
        return -1;
    double root = (double)t->nodes[0].width;
    double scale = root > 0 ? (SVG_WIDTH - 2 * SVG_PAD) / root : 0;
    for (size_t k = 0; k < t->n_nodes; k++) {
        uint32_t i = order[k];
        const struct flame_node *n = &t->nodes[i];
        x[i] = n->parent == UINT32_MAX ? SVG_PAD : cursor[n->parent];
        w[i] = (double)n->width * scale;
        if (n->parent != UINT32_MAX)
            cursor[n->parent] += w[i];
        cursor[i] = x[i];
    }
    free(cursor);
    return 0;
}

/* The facts as laid out in rows: fills xs[] and rows[] (0-based) per item; returns the
 * number of rows. */
static int stats_rows(const struct summary *s, double *xs, int *rows)
{
    double x = SVG_PAD;
    int row = 0;
    for (size_t i = 0; i < s->n; i++) {
        double w = (double)(svg_text_len(s->items[i].label) + 1) * STAT_LABEL_PX +
                   (double)svg_text_len(s->items[i].value) * STAT_VALUE_PX;
        if (x > SVG_PAD && x + w > SVG_WIDTH - SVG_PAD) {
            row++;
            x = SVG_PAD;
        }
        xs[i] = x;
        rows[i] = row;
        x += w + 22;
    }
    return row + 1;
}

void svg_static_layout(const struct profile *p, const struct flame_tree *t, size_t panel_rows,
                       struct svg_static_layout *lay)
{
    struct summary s;
    summary_items(p, t, &s);
    double xs[SUMMARY_MAX_ITEMS];
    int rows[SUMMARY_MAX_ITEMS];
    int n_rows = stats_rows(&s, xs, rows);
    lay->stats_y = 52;
    double y = lay->stats_y + 18.0 * (n_rows - 1) + 14;
    if (p->n_timeline >= 2) {
        lay->chart_top = y + 6;
        y = lay->chart_top + CHART_H + 24;
    } else {
        lay->chart_top = -1;
    }
    lay->toolbar_y = y;
    lay->frames_top = y + 34;
    lay->panel_y = lay->frames_top + (t->max_depth + 1.0) * SVG_ROW + SVG_PAD;
    lay->height = lay->panel_y + (panel_rows ? 28 + 16.0 * panel_rows : 0);
}

static void fmt_ms(int64_t ms, char *buf, size_t len)
{
    if (ms >= 10000)
        snprintf(buf, len, "%.0f s", (double)ms / 1000);
    else if (ms >= 1000)
        snprintf(buf, len, "%.1f s", (double)ms / 1000);
    else
        snprintf(buf, len, "%lld ms", (long long)ms);
}

/* The memory-over-time chart, as flame.js draws it; at most two points per pixel column. */
static void write_chart(FILE *out, const struct profile *p, double top)
{
    const struct profile_point *tl = p->timeline;
    size_t n = p->n_timeline;
    double left = SVG_PAD + 62, right = SVG_WIDTH - SVG_PAD - 8, h = CHART_H;
    int64_t t0 = tl[0].t_ns / 1000000, t1 = tl[n - 1].t_ns / 1000000;
    if (t1 < t0 + 1)
        t1 = t0 + 1;
    double vmax =
        (double)(p->meta.peak_heap > p->meta.peak_rss ? p->meta.peak_heap : p->meta.peak_rss);
    if (vmax < 1)
        vmax = 1;
    size_t peak_i = 0;
    for (size_t i = 0; i < n; i++) {
        if ((double)tl[i].rss > vmax)
            vmax = (double)tl[i].rss;
        if ((double)tl[i].heap > vmax)
            vmax = (double)tl[i].heap;
        if (tl[i].heap > tl[peak_i].heap)
            peak_i = i;
    }
#define CX(tms) (left + (right - left) * (double)((tms)-t0) / (double)(t1 - t0))
#define CY(v)   (top + h - h * (double)(v) / vmax)
    char a[UNITS_BUF], b[UNITS_BUF];
    fputs("<g id=\"schart\">\n", out);
    for (int k = 0; k <= 2; k++) {
        double v = vmax * k / 2;
        fprintf(out,
                "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                left, right, CY(v), CY(v), left - 6, CY(v) + 3,
                units_bytes((int64_t)v, a, sizeof a));
    }
    fmt_ms(0, a, sizeof a);
    fmt_ms(t1 - t0, b, sizeof b);
    fprintf(out,
            "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\">%s</text>"
            "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
            left, top + h + 13, a, right, top + h + 13, b);
    /* Downsample to pixel columns: the first point and the highest of each column. */
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 0)
            fprintf(out, "<polygon class=\"heap-area\" points=\"%.1f,%.1f", CX(t0), CY(0));
        else
            fprintf(out, "<polyline class=\"%s\" points=\"", pass == 1 ? "rss" : "heap");
        long col = -1;
        for (size_t i = 0; i < n; i++) {
            double px = CX(tl[i].t_ns / 1000000);
            long c = lround(px * 2);
            if (c == col && i + 1 < n)
                continue;
            col = c;
            /* The column's highest value, so that short spikes survive. */
            int64_t v = pass == 1 ? tl[i].rss : tl[i].heap;
            for (size_t j = i + 1; j < n && lround(CX(tl[j].t_ns / 1000000) * 2) == c; j++)
                if ((pass == 1 ? tl[j].rss : tl[j].heap) > v)
                    v = pass == 1 ? tl[j].rss : tl[j].heap;
            fprintf(out, "%s%.1f,%.1f", pass == 0 || i ? " " : "", px, CY(v));
        }
        if (pass == 0)
            fprintf(out, " %.1f,%.1f", CX(tl[n - 1].t_ns / 1000000), CY(0));
        fputs("\"/>\n", out);
    }
    int64_t peak_t =
        p->meta.peak_heap > 0 ? t0 + p->meta.peak_time_ns / 1000000 : tl[peak_i].t_ns / 1000000;
    int64_t peak_v = p->meta.peak_heap > 0 ? p->meta.peak_heap : tl[peak_i].heap;
    if (peak_t < t0)
        peak_t = t0;
    if (peak_t > t1)
        peak_t = t1;
    double px = CX(peak_t);
    units_bytes(peak_v, a, sizeof a);
    fmt_ms(peak_t - t0, b, sizeof b);
    char label[96];
    snprintf(label, sizeof label, "peak heap %s at %s", a, b);
    int flip = px + 6 + (double)strlen(label) * 7.0 > right;
    fprintf(out,
            "<line class=\"peak\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#cf222e\"/>\n"
            "<text class=\"peak-label\" x=\"%.1f\" y=\"%.1f\"%s>%s</text>\n",
            px, px, top, top + h, px, CY(peak_v), flip ? px - 6 : px + 6, top + 10,
            flip ? " text-anchor=\"end\"" : "", label);
    fprintf(out,
            "<line class=\"rss\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
            "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\">RSS</text>"
            "<line class=\"heap\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
            "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\">Python heap</text>\n</g>\n",
            right - 190, right - 172, top + h + 9, top + h + 9, right - 168, top + h + 13,
            right - 130, right - 112, top + h + 9, top + h + 9, right - 108, top + h + 13);
#undef CX
#undef CY
}

/* A coordinate with one decimal and nothing superfluous: "12", "12.5", ".1". */
static const char *short_num(double v, char buf[24])
{
    snprintf(buf, 24, "%.1f", v);
    size_t n = strlen(buf);
    if (n > 2 && !strcmp(buf + n - 2, ".0"))
        buf[n - 2] = '\0';
    else if (buf[0] == '0' && buf[1] == '.')
        memmove(buf, buf + 1, n);
    return buf;
}

/* "#aabbcc" as "#abc" when that is the same colour. */
static const char *short_color(char c[8])
{
    if (c[1] == c[2] && c[3] == c[4] && c[5] == c[6]) {
        c[2] = c[3], c[3] = c[5], c[4] = '\0';
    }
    return c;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void fmt_pct(int64_t part, int64_t whole, char *buf, size_t len)
{
    if (whole <= 0) {
        snprintf(buf, len, "0%%");
        return;
    }
    double p = 100.0 * (double)part / (double)whole;
    snprintf(buf, len, p >= 10 ? "%.1f%%" : p >= 0.1 ? "%.2f%%" : "%.2g%%", p);
}

/* The tooltip of node i: function, file:line, value and share, count, and in a diff the
 * before, after and change. */
static void write_title(FILE *out, const struct flame_tree *t, uint32_t i)
{
    const struct flame_node *n = &t->nodes[i];
    const struct flame_frame *f = &t->frames[n->frame];
    const char *file = t->strings.strs[f->file];
    char a[UNITS_BUF], b[UNITS_BUF], c[UNITS_BUF], pct[32];
    fputs("<title>", out);
    svg_xml_text(out, t->strings.strs[f->name], 0, 0);
    if (f->kind == FLAME_OTHER) {
        fputs(": narrow frames, merged", out);
    } else if (file[0]) {
        putc('\n', out);
        svg_xml_text(out, file, 0, 0);
        if (f->kind == FLAME_PLAIN && f->line > 0)
            fprintf(out, ":%lld", (long long)f->line);
    }
    if (t->has_base) {
        summary_value(t, n->base_total, a, sizeof a);
        summary_value(t, n->total, b, sizeof b);
        summary_value(t, flametree_add(n->total, -n->base_total), c, sizeof c);
        fprintf(out, "\nbefore: %s | after: %s\nchange: %s%s", a, b,
                n->total > n->base_total ? "+" : "", c);
        if (n->total == 0 && n->base_total > 0)
            fputs(" (gone: only in the base profile)", out);
        else if (n->base_total == 0 && n->total > 0)
            fputs(" (new)", out);
    } else {
        fmt_pct(n->total, t->nodes[0].total, pct, sizeof pct);
        fprintf(out, "\n%s, %s", summary_value(t, n->total, a, sizeof a), pct);
    }
    if (t->has_counts)
        fprintf(out, "%s%s allocations", t->has_base ? "\n" : ", ",
                units_count(n->count_total, a, sizeof a));
    fputs("</title>", out);
}

/* The label drawn in a frame: "name (file.py:12)" for Python frames, else the name. */
static void write_label(FILE *out, const struct flame_tree *t, uint32_t i, size_t room)
{
    const struct flame_frame *f = &t->frames[t->nodes[i].frame];
    const char *name = t->strings.strs[f->name], *file = t->strings.strs[f->file];
    if (f->kind != FLAME_PLAIN || !file[0]) {
        svg_xml_text(out, name, room, 1);
        return;
    }
    char buf[512];
    if (f->line > 0)
        snprintf(buf, sizeof buf, "%s (%s:%lld)", name, base_name(file), (long long)f->line);
    else
        snprintf(buf, sizeof buf, "%s (%s)", name, base_name(file));
    svg_xml_text(out, buf, room, 1);
}

void svg_static_write(FILE *out, const struct profile *p, const struct flame_tree *t,
                      const uint32_t *order, const double *x, const double *w, const char *title,
                      int flame, double min_px, const struct svg_static_layout *lay)
{
    struct summary s;
    summary_items(p, t, &s);
    double xs[SUMMARY_MAX_ITEMS];
    int rows[SUMMARY_MAX_ITEMS];
    stats_rows(&s, xs, rows);

    fputs("<g id=\"static\">\n<text id=\"stitle\" x=\"10\" y=\"28\">", out);
    svg_xml_text(out, title, 150, 1);
    fputs("</text>\n", out);
    size_t max_chars = (size_t)((SVG_WIDTH - 2 * SVG_PAD) / STAT_VALUE_PX);
    for (size_t i = 0; i < s.n; i++) {
        size_t label = svg_text_len(s.items[i].label) + 1;
        fprintf(out, "<text class=\"stat\" x=\"%.0f\" y=\"%.0f\"><tspan class=\"stat-label\">",
                xs[i], lay->stats_y + 18.0 * rows[i]);
        svg_xml_text(out, s.items[i].label, 0, 0);
        fputs(" </tspan><tspan class=\"stat-value\">", out);
        svg_xml_text(out, s.items[i].value, max_chars > label + 4 ? max_chars - label : 4, 1);
        fputs("</tspan></text>\n", out);
    }
    if (lay->chart_top >= 0)
        write_chart(out, p, lay->chart_top);
    fprintf(out, "<text class=\"axis\" x=\"10\" y=\"%.0f\">width: ", lay->toolbar_y + 15);
    svg_xml_text(out, t->metric, 60, 1);
    fputs(t->has_base ? " (the larger of before and after); red grew, blue shrank, hatched blue "
                        "is gone"
                      : "",
          out);
    fputs("; open the file in a browser to zoom and search</text>\n", out);

    if (!(t->nodes[0].width > 0)) {
        fprintf(out, "<text class=\"empty\" x=\"%d\" y=\"%.0f\" text-anchor=\"middle\">No ",
                SVG_WIDTH / 2, lay->frames_top + 30);
        svg_xml_text(out, t->metric, 60, 1);
        fputs(" in this profile: nothing to draw.</text>\n", out);
        return;
    }
    fputs("<g id=\"sframes\">\n", out);
    for (size_t k = 0; k < t->n_nodes; k++) {
        uint32_t i = order[k];
        const struct flame_node *n = &t->nodes[i];
        if (!(w[i] > 0) || w[i] < min_px || w[i] < SVG_MIN_DRAW_PX)
            continue;
        double y = flame ? lay->frames_top + (double)(t->max_depth - n->depth) * SVG_ROW
                         : lay->frames_top + (double)n->depth * SVG_ROW;
        char color[8];
        int gone = t->has_base && n->total == 0 && n->base_total > 0;
        if (t->has_base)
            colors_diff(n->base_total, n->total, color);
        else
            colors_frame(t->strings.strs[t->frames[n->frame].file], t->frames[n->frame].kind,
                         color);
        double rw = w[i] - 0.5 > 0.1 ? w[i] - 0.5 : 0.1;
        char xs_[24], ws_[24];
        fprintf(out, "<rect x=\"%s\" y=\"%.0f\" width=\"%s\" height=\"16\" fill=\"%s\"%s>",
                short_num(x[i], xs_), y, short_num(rw, ws_),
                gone ? "url(#gone)" : short_color(color), gone ? " class=\"gone\"" : "");
        write_title(out, t, i);
        fputs("</rect>", out);
        double room = floor((w[i] - 6) / LABEL_CHAR_PX);
        if (room >= 3) {
            fprintf(out, "<text x=\"%s\" y=\"%.0f\">", short_num(x[i] + 3, xs_), y + 12);
            write_label(out, t, i, (size_t)room);
            fputs("</text>", out);
        }
        putc('\n', out);
    }
    fputs("</g>\n", out);
}

void svg_import_row(const struct flame_tree *t, const struct user_import *r, char cells[5][512])
{
    char pk[UNITS_BUF];
    summary_value(t, r->bytes, cells[0], 512);
    int64_t all = t->nodes[0].total;
    snprintf(cells[1], 512, "%.1f%%", all > 0 ? 100.0 * (double)r->bytes / (double)all : 0.0);
    snprintf(cells[2], 512, "%s:%lld", r->file, (long long)r->line);
    snprintf(cells[3], 512, "%s", r->source);
    int n = snprintf(cells[4], 512, "imports %s", r->module[0] ? r->module : "?");
    if (r->package[0] && r->package_bytes * 2 >= r->bytes && n > 0 && n < 512)
        snprintf(cells[4] + n, 512 - (size_t)n, "; %s: %s of it", r->package,
                 summary_value(t, r->package_bytes, pk, sizeof pk));
}

void svg_static_panel(FILE *out, const struct flame_tree *t, const struct user_import *rows,
                      size_t n, const struct svg_static_layout *lay)
{
    if (!n)
        return;
    fprintf(out, "<g id=\"spanel\"><text class=\"panel-head\" x=\"10\" y=\"%.0f\">",
            lay->panel_y + 16);
    fputs("Imports in your code by ", out);
    svg_xml_text(out, t->metric, 60, 1);
    fputs(" (what each statement pulled in)</text>\n", out);
    for (size_t i = 0; i < n; i++) {
        char cells[5][512];
        svg_import_row(t, &rows[i], cells);
        double y = lay->panel_y + 32 + 16.0 * (double)i;
        fprintf(out,
                "<text class=\"panel\" y=\"%.0f\"><tspan x=\"80\" text-anchor=\"end\" "
                "class=\"stat-value\">%s</tspan><tspan x=\"130\" text-anchor=\"end\">%s</tspan>"
                "<tspan x=\"140\">",
                y, cells[0], cells[1]);
        svg_xml_text(out, cells[2], 60, 1);
        fputs("</tspan><tspan dx=\"10\" class=\"panel-src\">", out);
        svg_xml_text(out, cells[3], 80, 1);
        fputs("</tspan><tspan dx=\"10\" class=\"stat-label\">", out);
        svg_xml_text(out, cells[4], 60, 1);
        fputs("</tspan></text>\n", out);
    }
    fputs("</g>\n", out);
}
