/*
 * cmd_render.c - `memsnap render FILE [options]`: a profile as an SVG flame graph, folded
 * stacks or a text report, on stdout.
 *
 *   --metric NAME      sample type to draw (default: the profile's default type)
 *   --diff BASE        differential graph of the union of both trees: widths the larger of
 *                      before and after, colours by change since BASE, frames only in BASE
 *                      hatched; frames match by function and file relative to its import root
 *   --diff-lines       with --diff, frames match by line number too
 *   --icicle|--flame   root at the top (default) or at the bottom
 *   --title T          the SVG's title
 *   --format F         svg (default), folded, text
 *   --min-width PX     merge frames narrower than PX pixels of the 1200 px graph into
 *                      "(other)"; default 0.1 for svg, 0 (keep all) for folded, 1.2 for text
 *   --raw-imports      keep the import machinery frames
 *
 * Exit status: 0, 1 when a file cannot be read or the output cannot be written (one
 * sentence on stderr), 2 on a usage error.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "flametree.h"
#include "folded.h"
#include "svg.h"
#include "text.h"

/* The drawable width of the SVG in pixels (1200 minus margins), for --min-width. */
#define RENDER_WIDTH_PX 1180.0
#define TEXT_TOP_ROWS   20

static const char render_usage[] =
    "usage: memsnap render FILE [--metric NAME] [--diff BASE [--diff-lines]] [--icicle|--flame]\n"
    "                           [--title T]\n"
    "                           [--format svg|folded|text] [--min-width PX] [--raw-imports]\n"
    "Draws a profile (pprof, gzip or raw) to stdout: an SVG flame graph (default; a picture\n"
    "wherever it is pasted, interactive when opened in a browser),\n"
    "Brendan Gregg's folded stacks, or a text report of the top allocation sites.\n"
    "  --metric NAME     the sample type to draw (default: the profile's default)\n"
    "  --diff BASE       differential graph of both profiles: red grew since BASE, blue shrank,\n"
    "                    hatched is gone; frames match by function and file, not line\n"
    "  --diff-lines      with --diff, match frames by line number too\n"
    "  --icicle, --flame root at the top (default) or at the bottom\n"
    "  --title T         the graph's title\n"
    "  --format F        svg, folded or text\n"
    "  --min-width PX    merge frames narrower than PX pixels into \"(other)\" (svg: 0.1)\n"
    "  --raw-imports     show the import machinery frames instead of \"import x\"\n";

struct render_args {
    const char *file, *metric, *base, *title, *format;
    int flame, raw_imports, have_min_width, diff_lines;
    double min_width;
};

/* The value of option argv[*i] ("--opt VALUE" or "--opt=VALUE"), or NULL when `name` does
 * not match; *missing is set when the option matches but has no value. */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len))
        return NULL;
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (argv[*i][len] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_args(int argc, char **argv, struct render_args *a)
{
    memset(a, 0, sizeof *a);
    a->format = "svg";
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(render_usage, stdout);
            exit(MS_EXIT_OK);
        } else if ((v = option_value(argc, argv, &i, "--metric", &missing))) {
            a->metric = v;
        } else if ((v = option_value(argc, argv, &i, "--diff", &missing))) {
            a->base = v;
        } else if ((v = option_value(argc, argv, &i, "--title", &missing))) {
            a->title = v;
        } else if ((v = option_value(argc, argv, &i, "--format", &missing))) {
            a->format = v;
        } else if ((v = option_value(argc, argv, &i, "--min-width", &missing))) {
            char *end;
            a->min_width = strtod(v, &end);
            if (end == v || *end || !(a->min_width >= 0) || a->min_width > RENDER_WIDTH_PX) {
                fprintf(stderr, "memsnap: --min-width takes pixels between 0 and %.0f, not '%s'.\n",
                        RENDER_WIDTH_PX, v);
                return -1;
            }
            a->have_min_width = 1;
        } else if (!strcmp(argv[i], "--icicle")) {
            a->flame = 0;
        } else if (!strcmp(argv[i], "--flame")) {
            a->flame = 1;
        } else if (!strcmp(argv[i], "--diff-lines")) {
            a->diff_lines = 1;
        } else if (!strcmp(argv[i], "--raw-imports")) {
            a->raw_imports = 1;
        } else if (missing) {
            fprintf(stderr, "memsnap: %s needs a value; see 'memsnap render --help'.\n", argv[i]);
            return -1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "memsnap: unknown render option '%s'; see 'memsnap render --help'.\n",
                    argv[i]);
            return -1;
        } else if (a->file) {
            fprintf(stderr, "memsnap: render takes one profile, got '%s' and '%s'.\n", a->file,
                    argv[i]);
            return -1;
        } else {
            a->file = argv[i];
        }
    }
    if (!a->file) {
        fputs(render_usage, stderr);
        return -1;
    }
    if (a->diff_lines && !a->base) {
        fputs("memsnap: --diff-lines needs --diff BASE.\n", stderr);
        return -1;
    }
    if (strcmp(a->format, "svg") && strcmp(a->format, "folded") && strcmp(a->format, "text")) {
        fprintf(stderr, "memsnap: --format is svg, folded or text, not '%s'.\n", a->format);
        return -1;
    }
    return 0;
}

int cmd_render(int argc, char **argv)
{
    struct render_args a;
    if (parse_args(argc, argv, &a) < 0)
        return MS_EXIT_USAGE;
    int svg = !strcmp(a.format, "svg"), text = !strcmp(a.format, "text");
    if (svg && isatty(STDOUT_FILENO)) {
        ms_report("render writes the SVG to stdout, which is a terminal; redirect it: "
                  "memsnap render FILE > out.svg");
        return MS_EXIT_USAGE;
    }
    double min_width = a.have_min_width ? a.min_width : svg ? 0.1 : text ? 1.2 : 0;
    /* Reading a big profile allocates and frees arrays of tens of megabytes, one after the
     * other (the file, its inflated bytes, the decoded arrays, the tree's scratch). By
     * default each is a fresh mapping whose every page faults in zeroed and is unmapped on
     * free; keeping them in the heap lets the later arrays reuse the earlier ones' pages (a
     * tenth fewer page faults on a million samples). Memory is given back at exit. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);

    ms_error err;
    struct profile *p = NULL, *base = NULL;
    struct flame_tree *t = NULL;
    int status = MS_EXIT_FAIL;
    if (profile_read(a.file, &p, &err) < 0)
        goto out;
    if (a.base && profile_read(a.base, &base, &err) < 0)
        goto out;
    struct flame_options opt = {
        .metric = a.metric,
        .raw_imports = a.raw_imports,
        .diff_lines = a.diff_lines,
        .min_fraction = min_width / RENDER_WIDTH_PX,
    };
    if (flametree_build(p, base, &opt, &t, &err) < 0) {
        ms_error_prefix(&err, "%s", a.file);
        goto out;
    }
    int rc;
    if (svg) {
        struct svg_options so = {.title = a.title, .flame = a.flame, .min_px = min_width};
        rc = svg_write(stdout, p, t, &so, &err);
    } else if (text) {
        rc = text_write(stdout, p, t, TEXT_TOP_ROWS, &err);
    } else {
        rc = folded_write(stdout, t, &err);
    }
    if (rc == 0)
        status = MS_EXIT_OK;
out:
    if (status != MS_EXIT_OK)
        ms_report(err.msg);
    flametree_free(t);
    profile_free(p);
    profile_free(base);
    return status;
}
