/*
 * test_render_tree.c - building the flame tree: merging stacks, totals and counts, metric
 * selection, pruning into "(other)", import machinery collapsing (a real-looking 3.11 import
 * of numpy.random from manage.py), module names, and the diff overlay.
 *
 * Profiles are built with the real builder (proto/profile.h); expectations are computed from
 * the inputs in each test, not copied from an earlier run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "flametree.h"
#include "imports.h"

/* A frame given as text, root first in the arrays below. */
struct fr {
    const char *name, *file;
    int line;
};

static struct profile *new_heap_profile(void)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    p->default_sample_type = 1;
    return p;
}

/* Adds a sample whose stack is frames[0..n) root first, with (objects, bytes). */
static void add(struct profile *p, const struct fr *frames, int n, int64_t objects, int64_t bytes)
{
    uint32_t locs[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        uint32_t fn = profile_add_function(p, frames[i].name, frames[i].file, 1);
        struct profile_line line = {fn, frames[i].line};
        locs[n - 1 - i] = profile_add_location(p, &line, 1);
    }
    int64_t values[2] = {objects, bytes};
    assert_int_equal(profile_add_sample(p, locs, (uint32_t)n, values, 0, 0), 0);
}

static struct flame_tree *build(const struct profile *p, const struct profile *base,
                                const char *metric, int raw, double min_fraction)
{
    struct flame_options opt = {.metric = metric, .raw_imports = raw, .min_fraction = min_fraction};
    struct flame_tree *t = NULL;
    ms_error err;
    if (flametree_build(p, base, &opt, &t, &err) < 0)
        fail_msg("flametree_build: %s", err.msg);
    return t;
}

/* The child of `node` whose frame is named `name` (and, when line > 0, at that line). */
static int child(const struct flame_tree *t, int node, const char *name, int64_t line)
{
    const struct flame_node *n = &t->nodes[node];
    for (uint32_t c = n->first_child; c < n->first_child + n->n_children; c++)
        if (!strcmp(flametree_name(t, c), name) &&
            (line <= 0 || t->frames[t->nodes[c].frame].line == line))
            return (int)c;
    return -1;
}

/* Follows names from the root; -1 if any is missing. */
static int path(const struct flame_tree *t, const char *const *names, int n)
{
    int node = 0;
    for (int i = 0; i < n && node >= 0; i++)
        node = child(t, node, names[i], 0);
    return node;
}

static const struct fr A = {"main", "/app/main.py", 10};
static const struct fr B = {"load", "/app/main.py", 20};
static const struct fr C = {"parse", "/app/parse.py", 5};
static const struct fr C2 = {"parse", "/app/parse.py", 7};

static void test_merge_totals_counts(void **state)
{
    (void)state;
    struct profile *p = new_heap_profile();
    add(p, (struct fr[]){A, B, C}, 3, 2, 100);
    add(p, (struct fr[]){A, B, C}, 3, 1, 50);   /* same stack again */
    add(p, (struct fr[]){A, B, C2}, 3, 4, 400); /* same function, other line */
    add(p, (struct fr[]){A, B}, 2, 1, 30);
    add(p, (struct fr[]){A}, 1, 1, 7);
    struct flame_tree *t = build(p, NULL, NULL, 0, 0);
    assert_string_equal(t->metric, "inuse_space");
    assert_true(t->has_counts);
    assert_int_equal(t->nodes[0].total, 100 + 50 + 400 + 30 + 7);
    assert_int_equal(t->nodes[0].n_children, 1);
    int a = child(t, 0, "main", 10), b = child(t, a, "load", 20);
    assert_true(a > 0 && b > 0);
    assert_int_equal(t->nodes[a].total, 587);
    assert_int_equal(t->nodes[a].self, 7);
    assert_int_equal(t->nodes[b].total, 580);
    assert_int_equal(t->nodes[b].self, 30);
    assert_int_equal(t->nodes[b].count_total, 2 + 1 + 4 + 1);
    /* Lines are part of a frame's identity: two children. */
    assert_int_equal(t->nodes[b].n_children, 2);
    int c5 = child(t, b, "parse", 5), c7 = child(t, b, "parse", 7);
    assert_int_equal(t->nodes[c5].total, 150);
    assert_int_equal(t->nodes[c5].self, 150);
    assert_int_equal(t->nodes[c7].total, 400);
    assert_int_equal(t->nodes[c5].depth, 3);
    assert_int_equal(t->max_depth, 3);
    assert_string_equal(flametree_file(t, (uint32_t)c7), "/app/parse.py");
    flametree_free(t);
    profile_free(p);
}

static void test_metric_selection(void **state)
{
    (void)state;
    struct profile *p = new_heap_profile();
    add(p, (struct fr[]){A}, 1, 3, 64);
    int v, c;
    ms_error err;
    assert_int_equal(flametree_metric(p, NULL, &v, &c, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(c, 0);
    assert_int_equal(flametree_metric(p, "inuse_objects", &v, &c, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(c, -1);
    assert_int_equal(flametree_metric(p, "alloc_space", &v, &c, &err), -1);
    assert_non_null(strstr(err.msg, "alloc_space"));
    assert_non_null(strstr(err.msg, "inuse_objects, inuse_space"));
    struct flame_tree *t = build(p, NULL, "inuse_objects", 0, 0);
    assert_int_equal(t->nodes[0].total, 3);
    assert_false(t->has_counts);
    assert_string_equal(t->metric_unit, "count");
    flametree_free(t);
    profile_free(p);
}

static void test_prune_into_other(void **state)
{
    (void)state;
    struct profile *p = new_heap_profile();
    char names[40][16];
    int64_t small_sum = 0;
    add(p, (struct fr[]){A, B}, 2, 1, 100000);
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "tiny%d", i);
        struct fr leaf = {names[i], "/app/tiny.py", i + 1};
        add(p, (struct fr[]){A, leaf, C}, 3, 1, 10 + i);
        small_sum += 10 + i;
    }
    /* Threshold 1% of the total: each tiny frame is far below, B is far above. */
    struct flame_tree *t = build(p, NULL, NULL, 0, 0.01);
    int a = child(t, 0, "main", 0);
    assert_int_equal(t->nodes[a].n_children, 2);
    int other = child(t, a, "(other)", 0);
    assert_true(other > 0);
    assert_int_equal(t->frames[t->nodes[other].frame].kind, FLAME_OTHER);
    assert_int_equal(t->nodes[other].total, small_sum);
    assert_int_equal(t->nodes[other].self, small_sum);
    assert_int_equal(t->nodes[other].count_total, 40);
    assert_int_equal(t->nodes[other].n_children, 0);
    /* Totals are preserved: the root still sums everything. */
    assert_int_equal(t->nodes[0].total, 100000 + small_sum);
    assert_int_equal(t->nodes[a].total, t->nodes[0].total);
    size_t pruned_nodes = t->n_nodes;
    flametree_free(t);
    t = build(p, NULL, NULL, 0, 0);
    assert_int_equal(t->n_nodes, 1 + 1 + 1 + 40 * 2);
    assert_true(pruned_nodes < t->n_nodes);
    flametree_free(t);
    profile_free(p);
}

static void test_hostile_values(void **state)
{
    (void)state;
    struct profile *p = new_heap_profile();
    add(p, (struct fr[]){A}, 1, -5, -1000); /* negative: counts as nothing */
    add(p, (struct fr[]){A, B}, 2, INT64_MAX, INT64_MAX);
    add(p, (struct fr[]){A, C}, 2, INT64_MAX, INT64_MAX);
    add(p, (struct fr[]){A, C2}, 2, INT64_MAX, INT64_MAX);
    struct flame_tree *t = build(p, NULL, NULL, 0, 0.001);
    assert_true(t->nodes[0].total > 0); /* saturated, not wrapped */
    int a = child(t, 0, "main", 0);
    assert_int_equal(t->nodes[a].self, 0);
    flametree_free(t);
    profile_free(p);
    /* An empty profile gives a lone root. */
    p = new_heap_profile();
    t = build(p, NULL, NULL, 0, 0.001);
    assert_int_equal(t->n_nodes, 1);
    assert_int_equal(t->nodes[0].total, 0);
    flametree_free(t);
    profile_free(p);
}

/* --- imports --- */

#define BS  "<frozen importlib._bootstrap>"
#define BSE "<frozen importlib._bootstrap_external>"
#define NP  "/usr/lib/python3/dist-packages/numpy"

/* `from numpy.random import default_rng` at manage.py line 3, as CPython 3.11 runs it. */
static const struct fr import_numpy_random[] = {
    {"<module>", "/home/u/site/manage.py", 3},
    {"_find_and_load", BS, 1178},
    {"_find_and_load_unlocked", BS, 1149},
    {"_load_unlocked", BS, 690},
    {"exec_module", BSE, 940},
    {"_call_with_frames_removed", BS, 241},
    {"<module>", NP "/random/__init__.py", 180},
    {"_handle_fromlist", BS, 1231},
    {"_call_with_frames_removed", BS, 241},
    {"_find_and_load", BS, 1178},
    {"_find_and_load_unlocked", BS, 1149},
    {"_load_unlocked", BS, 690},
    {"exec_module", BSE, 940},
    {"_call_with_frames_removed", BS, 241},
    {"<module>", NP "/random/_pickle.py", 1},
    {"seed_table", NP "/random/_pickle.py", 12},
};
#define N_IMPORT (int)(sizeof import_numpy_random / sizeof import_numpy_random[0])

/* The parent package first: numpy's own body runs below numpy.random's _find_and_load. */
static const struct fr import_numpy_parent[] = {
    {"<module>", "/home/u/site/manage.py", 3},
    {"_find_and_load", BS, 1178},
    {"_find_and_load_unlocked", BS, 1126},
    {"_call_with_frames_removed", BS, 241},
    {"_find_and_load", BS, 1178},
    {"_find_and_load_unlocked", BS, 1149},
    {"_load_unlocked", BS, 690},
    {"exec_module", BSE, 940},
    {"_call_with_frames_removed", BS, 241},
    {"<module>", NP "/__init__.py", 141},
};

/* Unmarshalling numpy.random's .pyc: machinery down to the leaf, no module body. */
static const struct fr import_numpy_random_pyc[] = {
    {"<module>", "/home/u/site/manage.py", 3},
    {"_find_and_load", BS, 1178},
    {"_find_and_load_unlocked", BS, 1149},
    {"_load_unlocked", BS, 690},
    {"exec_module", BSE, 936},
    {"get_code", BSE, 1073},
    {"_compile_bytecode", BSE, 729},
};

static void test_imports_collapse_numpy_random(void **state)
{
    (void)state;
    struct profile *p = new_heap_profile();
    add(p, import_numpy_random, N_IMPORT, 10, 3000);
    add(p, import_numpy_random, 7, 5, 2000); /* allocated in numpy/random/__init__.py itself */
    add(p, import_numpy_parent, 10, 20, 9000);
    add(p, import_numpy_random_pyc, 7, 4, 700);
    struct flame_tree *t = build(p, NULL, NULL, 0, 0);
    int m = child(t, 0, "<module>", 3);
    assert_true(m > 0);
    assert_int_equal(t->nodes[m].n_children, 2);
    int rnd = child(t, m, "import numpy.random", 0), np = child(t, m, "import numpy", 0);
    assert_true(rnd > 0 && np > 0);
    assert_int_equal(t->frames[t->nodes[rnd].frame].kind, FLAME_IMPORT);
    assert_string_equal(flametree_file(t, (uint32_t)rnd), NP "/random/__init__.py");
    /* The .pyc run was attributed to numpy.random through the shared machinery prefix. */
    assert_int_equal(t->nodes[rnd].total, 3000 + 2000 + 700);
    assert_int_equal(t->nodes[rnd].self, 2000 + 700);
    assert_int_equal(t->nodes[np].total, 9000);
    /* The nested import collapses too, and the module body's callees stay. */
    int pk = child(t, rnd, "import numpy.random._pickle", 0);
    assert_true(pk > 0);
    int seed = child(t, pk, "seed_table", 12);
    assert_true(seed > 0);
    assert_int_equal(t->nodes[seed].total, 3000);
    /* No machinery frame is left anywhere. */
    for (size_t i = 0; i < t->n_nodes; i++)
        assert_false(t->frames[t->nodes[i].frame].machinery);
    flametree_free(t);

    /* --raw-imports keeps every frame. */
    t = build(p, NULL, NULL, 1, 0);
    const char *raw[] = {"<module>",       "_find_and_load", "_find_and_load_unlocked",
                         "_load_unlocked", "exec_module",    "_call_with_frames_removed",
                         "<module>"};
    int deep = path(t, raw, 7);
    assert_true(deep > 0);
    assert_string_equal(flametree_file(t, (uint32_t)deep), NP "/random/__init__.py");
    assert_int_equal(t->max_depth, N_IMPORT);
    flametree_free(t);
    profile_free(p);
}

static void test_imports_ambiguous_and_unknown(void **state)
{
    (void)state;
    /* `from pkg import a, b` on one line: identical machinery stacks for both modules. */
    const struct fr head[] = {
        {"<module>", "/srv/app.py", 1},         {"_handle_fromlist", BS, 1231},
        {"_call_with_frames_removed", BS, 241}, {"_find_and_load", BS, 1178},
        {"_find_and_load_unlocked", BS, 1149},  {"_load_unlocked", BS, 690}};
    struct fr s[10];
    struct profile *p = new_heap_profile();
    memcpy(s, head, sizeof head);
    s[6] = (struct fr){"exec_module", BSE, 940};
    s[7] = (struct fr){"_call_with_frames_removed", BS, 241};
    s[8] = (struct fr){"<module>", "/srv/pkg/a.py", 1};
    add(p, s, 9, 1, 100);
    s[8] = (struct fr){"<module>", "/srv/pkg/b.py", 1};
    add(p, s, 9, 1, 200);
    s[6] = (struct fr){"exec_module", BSE, 936};
    s[7] = (struct fr){"get_code", BSE, 1073};
    add(p, s, 8, 1, 50);
    /* An extension module: machinery only, through create_module. */
    const struct fr ext[] = {{"<module>", "/srv/other.py", 2},      {"_find_and_load", BS, 1178},
                             {"_find_and_load_unlocked", BS, 1149}, {"_load_unlocked", BS, 676},
                             {"module_from_spec", BS, 573},         {"create_module", BSE, 1233},
                             {"_call_with_frames_removed", BS, 241}};
    add(p, ext, 7, 1, 80);
    struct flame_tree *t = build(p, NULL, NULL, 0, 0);
    int app = child(t, 0, "<module>", 1);
    assert_int_equal(t->nodes[child(t, app, "import pkg.a", 0)].total, 100);
    assert_int_equal(t->nodes[child(t, app, "import pkg.b", 0)].total, 200);
    assert_int_equal(t->nodes[child(t, app, "import pkg.a, pkg.b", 0)].total, 50);
    int other = child(t, 0, "<module>", 2);
    /* /srv/other.py cannot be read: the frame says what and where from. */
    assert_int_equal(
        t->nodes[child(t, other, "import (extension module, from other.py:2)", 0)].total, 80);
    flametree_free(t);
    profile_free(p);
}

/* Runs that reach no module body, named from the importing line when it can be read. */
static void test_imports_named_from_source(void **state)
{
    (void)state;
    char dir[] = "/tmp/memsnap-test-imports-XXXXXX", sub[128], file[160];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/site-packages", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/site-packages/pkg", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(file, sizeof file, "%s/mod.py", sub);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("import os\nfrom _struct import *\nm = __import__(name)\nfrom .sub import (\n    y,\n)\n"
          "import a.b as c, d\n",
          f);
    assert_int_equal(fclose(f), 0);
    struct profile *p = new_heap_profile();
    const char *loaders[] = {"BuiltinImporter.exec_module", "_call_with_frames_removed",
                             "ExtensionFileLoader.exec_module", "_call_with_frames_removed",
                             "ExtensionFileLoader.exec_module"};
    int lines[] = {2, 3, 4, 5, 7};
    for (int k = 0; k < 5; k++) {
        struct fr s[] = {{"<module>", file, lines[k]},
                         {"_find_and_load", BS, 1178},
                         {"_find_and_load_unlocked", BS, 1149},
                         {"_load_unlocked", BS, 690},
                         {loaders[k], k == 1 ? BS : BSE, 1000 + k}};
        add(p, s, 5, 1, 10 * (k + 1));
    }
    struct flame_tree *t = build(p, NULL, NULL, 0, 0);
    /* The module frame is an installed package's: collapsed away, so look one level down. */
    int m2 = child(t, 0, "<module>", 2), m3 = child(t, 0, "<module>", 3),
        m4 = child(t, 0, "<module>", 4), m5 = child(t, 0, "<module>", 5),
        m7 = child(t, 0, "<module>", 7);
    assert_true(m2 > 0 && m3 > 0 && m4 > 0 && m5 > 0 && m7 > 0);
    assert_int_equal(t->nodes[child(t, m2, "import _struct", 0)].total, 10);
    assert_int_equal(t->nodes[child(t, m3, "import (dynamic import, from mod.py:3)", 0)].total, 20);
    assert_int_equal(t->nodes[child(t, m4, "import pkg.sub", 0)].total, 30);
    /* Line 5 is inside the statement, not its first line: no statement there. */
    assert_int_equal(t->nodes[child(t, m5, "import (dynamic import, from mod.py:5)", 0)].total, 40);
    assert_int_equal(t->nodes[child(t, m7, "import a.b, d", 0)].total, 50);
    flametree_free(t);
    profile_free(p);
    unlink(file);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/site-packages", dir);
    rmdir(sub);
    rmdir(dir);
}

static void test_imports_module_names(void **state)
{
    (void)state;
    char out[128];
    struct {
        const char *file, *dir, *want;
    } cases[] = {
        {NP "/random/__init__.py", NULL, "numpy.random"},
        {"/usr/lib/python3/dist-packages/numpy/core/"
         "_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
         NULL, "numpy.core._multiarray_umath"},
        {"/opt/venv/lib/python3.12/site-packages/django/db/models/base.py", NULL,
         "django.db.models.base"},
        {"/usr/lib/python3.11/json/decoder.py", NULL, "json.decoder"},
        {"/root/.pyenv/versions/3.8.18/lib/python3.8/lib-dynload/_ssl.so", NULL, "_ssl"},
        {"/usr/lib/python3.11/email/__init__.py", NULL, "email"},
        {"<frozen os>", NULL, "os"},
        {"/home/u/site/shop/models.py", "/home/u/site", "shop.models"},
        {"/home/u/site/shop/__init__.py", "/home/u/site", "shop"},
        {"/elsewhere/thing.py", "/home/u/site", "thing"},
        {"relative.py", NULL, "relative"},
        {"", NULL, "?"},
        {"/x/__init__.py", NULL, "?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        imports_module_name(cases[i].file, cases[i].dir, out, sizeof out);
        if (strcmp(out, cases[i].want))
            fail_msg("%s -> '%s', want '%s'", cases[i].file, out, cases[i].want);
    }
    imports_module_name("/a/site-packages/very/long/name.py", NULL, out, 6);
    assert_string_equal(out, "very.");
    assert_true(imports_is_machinery("_find_and_load", BS));
    assert_true(imports_is_machinery("get_code", BSE));
    assert_true(imports_is_machinery("load_module", "<frozen zipimport>"));
    assert_true(imports_is_machinery("import_module", "/usr/lib/python3.11/importlib/__init__.py"));
    assert_true(
        imports_is_machinery("_find_and_load", "/usr/lib/python3.11/importlib/_bootstrap.py"));
    assert_false(imports_is_machinery("reload", "/usr/lib/python3.11/importlib/__init__.py"));
    assert_false(imports_is_machinery("<module>", "<frozen os>"));
    assert_false(imports_is_machinery("main", "/app/main.py"));
}

/* --- diff --- */

static void test_diff_overlay(void **state)
{
    (void)state;
    struct profile *before = new_heap_profile(), *after = new_heap_profile();
    add(before, (struct fr[]){A, B}, 2, 1, 1000);
    add(before, (struct fr[]){A, C}, 2, 1, 500);
    add(before, (struct fr[]){A, C2}, 2, 1, 300); /* gone after */
    add(after, (struct fr[]){A, B}, 2, 1, 1500);
    add(after, (struct fr[]){A, C}, 2, 1, 100);
    add(after, (struct fr[]){A, B, C}, 3, 1, 40); /* new */
    /* --diff-lines: frames match by line as well. */
    struct flame_options lines_opt = {.diff_lines = 1};
    struct flame_tree *t = NULL;
    ms_error err;
    assert_int_equal(flametree_build(after, before, &lines_opt, &t, &err), 0);
    assert_true(t->has_base);
    assert_int_equal(t->nodes[0].total, 1640);
    assert_int_equal(t->nodes[0].base_total, 1800);
    int a = child(t, 0, "main", 0), b = child(t, a, "load", 0), c = child(t, a, "parse", 5);
    assert_int_equal(t->nodes[b].total, 1540);
    assert_int_equal(t->nodes[b].base_total, 1000);
    assert_int_equal(t->nodes[b].self, 1500);
    assert_int_equal(t->nodes[b].base_self, 1000);
    assert_int_equal(t->nodes[c].base_total, 500);
    assert_int_equal(t->nodes[child(t, b, "parse", 5)].base_total, 0);
    /* What only the base has stays, with zero width, so that reports can list it. */
    int gone = child(t, a, "parse", 7);
    assert_true(gone > 0);
    assert_int_equal(t->nodes[gone].total, 0);
    assert_int_equal(t->nodes[gone].base_total, 300);
    assert_int_equal(t->nodes[a].base_total, 1800);
    /* Widths: the larger of self before and after plus the children's widths. */
    assert_int_equal(t->nodes[gone].width, 300);
    assert_int_equal(t->nodes[b].width, 1540);
    assert_int_equal(t->nodes[c].width, 500);
    assert_int_equal(t->nodes[a].width, 1540 + 500 + 300);
    assert_int_equal(t->nodes[0].width, t->nodes[a].width);
    flametree_free(t);

    /* By default lines do not count: parse:5 and parse:7 are one frame, files relative to
     * the script's directory (/app, of main.py). */
    t = build(after, before, NULL, 0, 0);
    a = child(t, 0, "main", 0);
    assert_string_equal(flametree_file(t, (uint32_t)a), "main.py");
    c = child(t, a, "parse", 0);
    assert_int_equal(t->nodes[c].total, 100);
    assert_int_equal(t->nodes[c].base_total, 800);
    assert_int_equal(t->frames[t->nodes[c].frame].line, 0);
    assert_int_equal(t->nodes[0].total, 1640);
    assert_int_equal(t->nodes[0].base_total, 1800);
    flametree_free(t);

    /* Two checkouts: the same program under other directories, a line shifted, a library in
     * another virtualenv and the standard library of another installation compare equal. */
    struct profile *r41 = new_heap_profile(), *r42 = new_heap_profile();
    const struct fr m41 = {"<module>", "/srv/releases/41/manage.py", 3},
                    m42 = {"<module>", "/srv/releases/42/manage.py", 4},
                    u41 = {"helper", "/srv/releases/41/app/utils.py", 10},
                    u42 = {"helper", "/srv/releases/42/app/utils.py", 12},
                    l41 = {"loads", "/srv/releases/41/venv/lib/python3.11/site-packages/pkg/x.py",
                           5},
                    l42 = {"loads", "/home/me/.venv/lib/python3.12/site-packages/pkg/x.py", 6},
                    s41 = {"decode", "/usr/lib/python3.11/json/decoder.py", 337},
                    s42 = {"decode", "/opt/py/lib/python3.12/json/decoder.py", 340};
    add(r41, (struct fr[]){m41, u41, l41, s41}, 4, 1, 1000);
    add(r41, (struct fr[]){m41, u41}, 2, 1, 200); /* gone in 42 */
    add(r42, (struct fr[]){m42, u42, l42, s42}, 4, 1, 700);
    t = build(r42, r41, NULL, 0, 0);
    assert_int_equal(t->nodes[0].n_children, 1); /* one <module>, matched */
    int m = path(t, (const char *const[]){"<module>", "helper", "loads", "decode"}, 4);
    assert_true(m > 0);
    assert_int_equal(t->nodes[m].total, 700);
    assert_int_equal(t->nodes[m].base_total, 1000);
    assert_string_equal(flametree_file(t, (uint32_t)m), "json/decoder.py");
    int h = path(t, (const char *const[]){"<module>", "helper"}, 2);
    assert_string_equal(flametree_file(t, (uint32_t)h), "app/utils.py");
    assert_int_equal(t->nodes[h].self, 0);
    assert_int_equal(t->nodes[h].base_self, 200);
    assert_int_equal(t->nodes[h].width, 200 + 1000);
    flametree_free(t);
    profile_free(r41);
    profile_free(r42);

    /* A base without the metric is refused with a sentence. */
    struct profile *foreign = profile_new();
    profile_add_sample_type(foreign, "samples", "count");
    struct flame_options opt = {0};
    assert_int_equal(flametree_build(after, foreign, &opt, &t, &err), -1);
    assert_non_null(strstr(err.msg, "base profile"));
    assert_non_null(strstr(err.msg, "inuse_space"));
    profile_free(foreign);
    profile_free(before);
    profile_free(after);
}

static void test_inlined_locations(void **state)
{
    (void)state;
    /* A location with two lines (pprof inlining): the last line is the caller. */
    struct profile *p = new_heap_profile();
    uint32_t outer = profile_add_function(p, "outer", "/a.py", 1);
    uint32_t inner = profile_add_function(p, "inner", "/a.py", 9);
    struct profile_line lines[2] = {{inner, 10}, {outer, 3}};
    uint32_t loc = profile_add_location(p, lines, 2);
    int64_t values[2] = {1, 64};
    assert_int_equal(profile_add_sample(p, &loc, 1, values, 0, 0), 0);
    struct flame_tree *t = build(p, NULL, NULL, 0, 0);
    int o = child(t, 0, "outer", 3);
    assert_true(o > 0);
    int i = child(t, o, "inner", 10);
    assert_true(i > 0);
    assert_int_equal(t->nodes[i].self, 64);
    flametree_free(t);
    profile_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_totals_counts),
        cmocka_unit_test(test_metric_selection),
        cmocka_unit_test(test_prune_into_other),
        cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_imports_collapse_numpy_random),
        cmocka_unit_test(test_imports_ambiguous_and_unknown),
        cmocka_unit_test(test_imports_named_from_source),
        cmocka_unit_test(test_imports_module_names),
        cmocka_unit_test(test_diff_overlay),
        cmocka_unit_test(test_inlined_locations),
    };
    return cmocka_run_group_tests_name("render_tree", tests, NULL, NULL);
}
