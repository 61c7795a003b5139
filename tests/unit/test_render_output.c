/*
 * test_render_output.c - what the renderer writes: folded stacks, the text report, the SVG
 * (well-formed, escaped against hostile names, data consistent with the tree), diff and
 * frame colours, human units, and `memsnap render`/`stats` on bad files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "colors.h"
#include "commands.h"
#include "flametree.h"
#include "folded.h"
#include "svg.h"
#include "text.h"
#include "units.h"

struct fr {
    const char *name, *file;
    int line;
};

static void add(struct profile *p, const struct fr *frames, int n, int64_t objects, int64_t bytes)
{
    uint32_t locs[32];
    for (int i = 0; i < n; i++) {
        uint32_t fn = profile_add_function(p, frames[i].name, frames[i].file, 1);
        struct profile_line line = {fn, frames[i].line};
        locs[n - 1 - i] = profile_add_location(p, &line, 1);
    }
    int64_t values[2] = {objects, bytes};
    assert_int_equal(profile_add_sample(p, locs, (uint32_t)n, values, 0, 0), 0);
}

static struct profile *new_profile(void)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    p->default_sample_type = 1;
    return p;
}

static const struct fr MAIN = {"main", "/app/main.py", 3};
static const struct fr LOAD = {"load", "/app/main.py", 9};
static const struct fr EVIL = {"</script><script>alert(1)</script>]]>&\"'\x01\xff\xc3",
                               "<x>&amp;]]>\xe2\x80\xa8.py", 1};

/* Runs fn over a memory stream and returns the malloc'd output. */
static char *capture(int (*fn)(FILE *, void *), void *arg)
{
    /* Static: the stream keeps their addresses until fclose (and GCC 12 warns otherwise). */
    static char *buf;
    static size_t len;
    buf = NULL;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(fn(f, arg), 0);
    fclose(f);
    char *out = buf;
    buf = NULL;
    return out;
}

struct job {
    struct profile *p;
    struct flame_tree *t;
};

static int do_folded(FILE *f, void *arg)
{
    ms_error err;
    return folded_write(f, ((struct job *)arg)->t, &err);
}

static int do_text(FILE *f, void *arg)
{
    ms_error err;
    struct job *j = arg;
    return text_write(f, j->p, j->t, 5, &err);
}

static int do_svg(FILE *f, void *arg)
{
    ms_error err;
    struct job *j = arg;
    struct svg_options o = {.title = "t<i>tle ]]> & \"q\""};
    return svg_write(f, j->p, j->t, &o, &err);
}

static struct flame_tree *build(struct profile *p, struct profile *base)
{
    struct flame_options opt = {0};
    struct flame_tree *t;
    ms_error err;
    if (flametree_build(p, base, &opt, &t, &err) < 0)
        fail_msg("%s", err.msg);
    return t;
}

static void test_folded(void **state)
{
    (void)state;
    struct profile *p = new_profile();
    add(p, (struct fr[]){MAIN, LOAD}, 2, 2, 1000);
    add(p, (struct fr[]){MAIN, LOAD}, 2, 1, 24);
    add(p, (struct fr[]){MAIN}, 1, 1, 5);
    add(p, (struct fr[]){MAIN, {"semi;colon\nname", "/app/x.py", 4}}, 2, 1, 7);
    struct job j = {p, build(p, NULL)};
    char *out = capture(do_folded, &j);
    assert_string_equal(out, "main (/app/main.py:3) 5\n"
                             "main (/app/main.py:3);load (/app/main.py:9) 1024\n"
                             "main (/app/main.py:3);semi_colon_name (/app/x.py:4) 7\n");
    free(out);
    flametree_free(j.t);
    /* Diff: "stack before after", as difffolded.pl writes. */
    struct profile *base = new_profile();
    add(base, (struct fr[]){MAIN, LOAD}, 2, 1, 600);
    j.t = build(p, base);
    out = capture(do_folded, &j);
    /* A diff matches frames by function and file relative to the script's directory. */
    assert_non_null(strstr(out, "main (main.py);load (main.py) 600 1024\n"));
    assert_non_null(strstr(out, "main (main.py) 0 5\n"));
    free(out);
    flametree_free(j.t);
    profile_free(base);
    profile_free(p);
}

static void test_text_report(void **state)
{
    (void)state;
    struct profile *p = new_profile();
    const struct fr np = {"<module>", "/usr/lib/python3/dist-packages/numpy/__init__.py", 1};
    const struct fr bs = {"_find_and_load", "<frozen importlib._bootstrap>", 1178};
    add(p, (struct fr[]){MAIN, LOAD}, 2, 3, 3 << 20);
    add(p, (struct fr[]){MAIN, bs, np}, 3, 2, 1 << 20);
    p->meta.mode = profile_intern(p, "attach");
    p->meta.pid = 4321;
    p->meta.python_version = profile_intern(p, "3.11.7");
    p->meta.peak_heap = 5 << 20;
    p->meta.duration_ns = 30000000000ll;
    p->meta.rate = 524288;
    p->meta.dropped_events = 12;
    struct job j = {p, build(p, NULL)};
    char *out = capture(do_text, &j);
    assert_non_null(strstr(out, "mode        attach\n"));
    assert_non_null(strstr(out, "pid         4321\n"));
    assert_non_null(strstr(out, "python      3.11.7\n"));
    assert_non_null(strstr(out, "peak heap   5.00 MiB\n"));
    assert_non_null(strstr(out, "duration    30.0 s\n"));
    assert_non_null(strstr(out, "sampling    1 sample per 512 KiB (mean)\n"));
    assert_non_null(strstr(out, "dropped     12 events\n"));
    assert_non_null(strstr(out, "inuse_space 4.00 MiB\n"));
    /* The top self site comes first in its table, with its share. */
    const char *self = strstr(out, "Top allocation sites by inuse_space");
    assert_non_null(self);
    const char *row = strstr(self, "3.00 MiB  75.0%");
    assert_non_null(row);
    assert_true(row < strstr(self, "load (/app/main.py:9)"));
    const char *imports = strstr(out, "Top imports by inuse_space");
    assert_non_null(imports);
    assert_non_null(strstr(imports, "1.00 MiB  25.0%            2  import numpy"));
    free(out);
    flametree_free(j.t);
    profile_free(p);
}

static void test_svg_escaping(void **state)
{
    (void)state;
    struct profile *p = new_profile();
    add(p, (struct fr[]){MAIN, EVIL}, 2, 1, 100);
    add(p, (struct fr[]){MAIN, LOAD}, 2, 1, 50);
    p->meta.command = profile_intern(p, "python3 -c '</script>'");
    struct job j = {p, build(p, NULL)};
    char *out = capture(do_svg, &j);
    /* Exactly one script and one CDATA end per section: nothing from the profile closes them. */
    const char *script = strstr(out, "<script");
    assert_non_null(script);
    assert_null(strstr(script + 1, "<script"));
    const char *end = strstr(out, "</script>");
    assert_non_null(end);
    assert_null(strstr(end + 1, "</script>"));
    int cdata_ends = 0;
    for (const char *s = out; (s = strstr(s, "]]>")); s++)
        cdata_ends++;
    assert_int_equal(cdata_ends, 2); /* style and script */
    /* Pure ASCII, no raw control characters: always well-formed XML. */
    for (const unsigned char *s = (const unsigned char *)out; *s; s++)
        assert_true(*s < 0x7f && (*s >= 0x20 || *s == '\n' || *s == '\t'));
    /* The names survive as JSON escapes, invalid UTF-8 as U+FFFD, U+2028 escaped. */
    assert_non_null(strstr(out, "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"));
    assert_non_null(strstr(out, "\\u0026\\u0022\\u0027\\u0001\\ufffd\\ufffd"));
    assert_non_null(strstr(out, "\\u2028.py"));
    assert_non_null(strstr(out, "t\\u003ci\\u003etle ]]\\u003e \\u0026 \\u0022q\\u0022"));
    /* The static picture's tooltip: markup escaped, invalid UTF-8 as U+FFFD, U+2028 as a
     * character reference, the control character replaced. */
    assert_non_null(
        strstr(out, "<title>&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;]]&gt;&amp;\"'?"
                    "&#xfffd;&#xfffd;\n&lt;x&gt;&amp;amp;]]&gt;&#x2028;.py:1\n"));
    assert_non_null(strstr(
        out, "<text id=\"stitle\" x=\"10\" y=\"28\">t&lt;i&gt;tle ]]&gt; &amp; \"q\"</text>"));
    free(out);
    flametree_free(j.t);
    profile_free(p);
}

static void test_svg_data_matches_tree(void **state)
{
    (void)state;
    struct profile *p = new_profile();
    add(p, (struct fr[]){MAIN, LOAD}, 2, 2, 1000);
    add(p, (struct fr[]){MAIN}, 1, 1, 5);
    add(p, (struct fr[]){{"alpha", "/app/a.py", 1}}, 1, 1, 70);
    struct job j = {p, build(p, NULL)};
    char *out = capture(do_svg, &j);
    /* Preorder, children sorted by name: all, alpha, main, load. */
    const char *nodes = strstr(out, "\"nodes\":[");
    assert_non_null(nodes);
    long long v[20];
    int n = sscanf(nodes,
                   "\"nodes\":[%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,"
                   "%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld",
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                   &v[11], &v[12], &v[13], &v[14], &v[15], &v[16], &v[17], &v[18], &v[19]);
    assert_int_equal(n, 20);
    long long want[20] = {0, 0, 1075, 0,    4,  /* all */
                          1, 1, 70,   70,   1,  /* alpha */
                          2, 1, 1005, 5,    3,  /* main */
                          3, 2, 1000, 1000, 2}; /* load */
    for (int i = 0; i < 20; i++)
        if (i % 5 != 0) /* frame numbers are the writer's; the rest is the tree's */
            assert_int_equal(v[i], want[i]);
    assert_non_null(strstr(out, "\"diff\":0"));
    assert_non_null(strstr(out, "\"counts\":1"));
    free(out);
    flametree_free(j.t);
    profile_free(p);
}

/* The no-script picture: every frame a <rect> with its <title> and a clipped label, outside
 * the script, at widths proportional to the metric in a 1200 px picture. */
static void test_svg_static_frames(void **state)
{
    (void)state;
    struct profile *p = new_profile();
    add(p, (struct fr[]){MAIN, LOAD}, 2, 2, 1000);
    add(p, (struct fr[]){MAIN}, 1, 1, 5);
    add(p, (struct fr[]){{"alpha", "/app/a.py", 1}}, 1, 1, 75);
    p->meta.peak_heap = 2000;
    struct profile_point pts[3] = {{0, 100, 10}, {500000000, 300, 2000}, {1000000000, 200, 900}};
    p->timeline = pts;
    p->n_timeline = 3;
    struct job j = {p, build(p, NULL)};
    char *out = capture(do_svg, &j);
    p->timeline = NULL;
    p->n_timeline = 0;
    const char *script = strstr(out, "<script");
    assert_non_null(script);
    /* A fixed size for viewers without scripts. */
    assert_non_null(
        strstr(out, "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\""));
    const char *title =
        strstr(out, "<title>load\n/app/main.py:9\n1000 B, 92.6%, 2 allocations</title>");
    assert_non_null(title);
    assert_true(title < script);
    /* The <rect> the title belongs to: 1000 of 1080 bytes of 1180 px, minus the 0.5 px gap. */
    const char *rect = title;
    while (rect > out && strncmp(rect, "<rect ", 6))
        rect--;
    double x, y, w;
    assert_int_equal(sscanf(rect, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\"", &x, &y, &w), 3);
    assert_true(w > 1180.0 * 1000 / 1080 - 0.6 && w < 1180.0 * 1000 / 1080 - 0.4);
    assert_non_null(strstr(title, "</rect><text "));
    assert_non_null(strstr(title, ">load (main.py:9)</text>"));
    /* alpha is 75/1080 of 1180 px = 82 px: room for 10 characters, so its label is cut. */
    const char *alpha = strstr(out, "<title>alpha\n/app/a.py:1\n");
    assert_non_null(alpha);
    assert_non_null(strstr(alpha, ">alpha (a..</text>"));
    /* The header: facts and the memory chart as elements too. */
    const char *chart = strstr(out, "<g id=\"schart\">");
    assert_non_null(chart);
    assert_true(chart < script);
    assert_non_null(strstr(chart, "<polyline class=\"heap\" points=\""));
    assert_non_null(strstr(chart, ">peak heap 1.95 KiB at 0 ms</text>"));
    assert_non_null(strstr(out, "<tspan class=\"stat-label\">inuse_space </tspan>"));
    free(out);
    flametree_free(j.t);
    profile_free(p);
}

static void test_colors(void **state)
{
    (void)state;
    char c[8], d[8];
    colors_diff(100, 100, c);
    assert_string_equal(c, "#f2f2f2");
    /* Grew: red channel full, the others fade with the relative change. */
    colors_diff(100, 110, c);
    colors_diff(100, 400, d);
    assert_int_equal(strncmp(c, "#ff", 3), 0);
    assert_int_equal(strncmp(d, "#ff", 3), 0);
    assert_true(strtol(d + 3, NULL, 16) < strtol(c + 3, NULL, 16));
    /* Shrank: blue. From nothing / to nothing: the most intense. */
    colors_diff(400, 100, c);
    assert_string_equal(c + 5, "ff");
    assert_true(strtol((char[]){c[1], c[2], 0}, NULL, 16) < 0xe1);
    colors_diff(0, 50, c);
    assert_string_equal(c, "#ff5050");
    colors_diff(50, 0, c);
    assert_string_equal(c, "#5050ff");
    /* Frames: one file, one colour; families differ. */
    colors_frame("/app/x.py", FLAME_PLAIN, c);
    colors_frame("/app/x.py", FLAME_PLAIN, d);
    assert_string_equal(c, d);
    colors_frame("/usr/lib/python3/dist-packages/numpy/x.py", FLAME_PLAIN, d);
    assert_string_not_equal(c, d);
    colors_frame("", FLAME_OTHER, c);
    assert_string_equal(c, "#cccccc");
    assert_int_equal(strlen(c), 7);
}

static void test_units(void **state)
{
    (void)state;
    char b[UNITS_BUF];
    assert_string_equal(units_bytes(0, b, sizeof b), "0 B");
    assert_string_equal(units_bytes(1023, b, sizeof b), "1023 B");
    assert_string_equal(units_bytes(1536, b, sizeof b), "1.50 KiB");
    assert_string_equal(units_bytes(25 * 1048576 + 262144, b, sizeof b), "25.2 MiB");
    assert_string_equal(units_bytes(300ll << 30, b, sizeof b), "300 GiB");
    assert_string_equal(units_bytes(-1536, b, sizeof b), "-1.50 KiB");
    assert_string_equal(units_bytes(INT64_MIN, b, sizeof b), "-8.00 EiB");
    assert_string_equal(units_count(1234567, b, sizeof b), "1,234,567");
    assert_string_equal(units_count(-1000, b, sizeof b), "-1,000");
    assert_string_equal(units_count(INT64_MIN, b, sizeof b), "-9,223,372,036,854,775,808");
    assert_string_equal(units_duration(850000000, b, sizeof b), "850 ms");
    assert_string_equal(units_duration(200000000000ll, b, sizeof b), "3 min 20 s");
    assert_string_equal(units_duration(7500000000000ll, b, sizeof b), "2 h 5 min");
    assert_string_equal(units_duration(INT64_MAX, b, sizeof b), "2562047 h 47 min");
    assert_string_equal(units_bytes(1 << 20, b, 4), "1.0");
}

/* main.c owns ms_report; the commands are called directly here, so keep what they report. */
static char reported[1200];
void ms_report(const char *msg)
{
    snprintf(reported, sizeof reported, "%s", msg);
}

/* `memsnap render` and `stats` on files that are not profiles: exit 1, one sentence. */
static void test_bad_files(void **state)
{
    (void)state;
    char path[] = "/tmp/memsnap-render-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "this is not a profile\n", 22), 22);
    close(fd);
    char *argv_stats[] = {"stats", path, NULL};
    reported[0] = '\0';
    assert_int_equal(cmd_stats(2, argv_stats), MS_EXIT_FAIL);
    assert_non_null(strstr(reported, path));
    assert_null(strchr(reported, '\n'));
    char *argv_folded[] = {"render", path, "--format", "folded", NULL};
    assert_int_equal(cmd_render(4, argv_folded), MS_EXIT_FAIL);
    char *argv_missing[] = {"render", "/nonexistent/profile.pb", "--format=text", NULL};
    assert_int_equal(cmd_render(3, argv_missing), MS_EXIT_FAIL);
    assert_non_null(strstr(reported, "/nonexistent/profile.pb"));
    unlink(path);
    char *argv_usage[] = {"render", "x.pb", "--format", "png", NULL};
    assert_int_equal(cmd_render(4, argv_usage), MS_EXIT_USAGE);
    char *argv_width[] = {"render", "x.pb", "--min-width", "-3", NULL};
    assert_int_equal(cmd_render(4, argv_width), MS_EXIT_USAGE);
    char *argv_none[] = {"render", NULL};
    assert_int_equal(cmd_render(1, argv_none), MS_EXIT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folded),       cmocka_unit_test(test_text_report),
        cmocka_unit_test(test_svg_escaping), cmocka_unit_test(test_svg_data_matches_tree),
        cmocka_unit_test(test_colors),       cmocka_unit_test(test_units),
        cmocka_unit_test(test_bad_files),    cmocka_unit_test(test_svg_static_frames),
    };
    return cmocka_run_group_tests_name("render_output", tests, NULL, NULL);
}
