/*
 * test_render_run.c - what `render` and `stats` make of real `memsnap run` profiles:
 *
 *   - a diff of two checkouts: tests/py/diff_app copied into two temporary directories, the
 *     second without its `import heavy` line and with the lines below it moved, each run from
 *     its own directory under every installed CPython. The removed import's subtree must be in
 *     the diff, marked gone (text, folded, SVG), the shared code must match across the two
 *     directories despite the moved lines, and the before/after totals must add up to the two
 *     profiles' own totals;
 *   - the Django project of tests/py/djproject under Debian's python3 (Django and numpy),
 *     before and after the fix (DJPROJECT_RNG=numpy / random): "imports in your code" names
 *     djproject/rng_numpy.py:3 with its source text and at least 5 MiB, then no more; the
 *     top allocation sites have names (no "(unknown module)").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testproc.h"

#define RUN_TIMEOUT_MS 60000

static struct test_python pythons[16];
static int n_pythons;
static char out[1 << 20], err[1 << 16];

/* Runs memsnap with args; fails the test unless it exits 0. Output in `out`. */
static void memsnap(char *const args[])
{
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("memsnap %s %s: status %d, stderr: %s", args[0], args[1], st, err);
}

/* memsnap run -o PB -- python SCRIPT, from directory `dir`. */
static void run_in(const char *dir, const char *python, const char *script, const char *pb)
{
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    char *args[] = {"run", "-o", (char *)pb, "--", (char *)python, (char *)script, NULL};
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
    assert_int_equal(chdir(cwd), 0);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("memsnap run %s %s in %s: status %d, stderr: %s", python, script, dir, st, err);
}

static void copy_file(const char *from, const char *to, int fix)
{
    FILE *in = fopen(from, "r"), *o = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(o);
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        if (fix && !strncmp(line, "import heavy", 12))
            fputs("# import heavy: removed by the fix\n# a second line, so the lines below move\n",
                  o);
        else
            fputs(line, o);
    }
    fclose(in);
    assert_int_equal(fclose(o), 0);
}

/* A copy of tests/py/diff_app in a new directory (with the fix applied when `fix`). */
static void make_checkout(char *dir, size_t len, int fix)
{
    snprintf(dir, len, "/tmp/memsnap-diff-%d-%s-XXXXXX", (int)getpid(), fix ? "after" : "before");
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"app.py", "heavy.py", "shared.py"};
    for (int i = 0; i < 3; i++) {
        char from[4096], to[4096], name[64];
        snprintf(name, sizeof name, "diff_app/%s", files[i]);
        snprintf(from, sizeof from, "%s", test_py_script(name));
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        copy_file(from, to, fix && i == 0);
    }
}

static void remove_checkout(const char *dir)
{
    const char *files[] = {"app.py", "heavy.py", "shared.py"};
    char path[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/__pycache__", dir);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        printf("  could not remove %s\n", path);
    rmdir(dir);
}

/* Sums the last one or two numbers of folded lines: *before (diff only) and *after. Also
 * finds the line whose stack ends with `suffix` ("" = none), copying it to found. */
static void folded_sums(const char *text, int diff, long long *before, long long *after)
{
    *before = *after = 0;
    for (const char *l = text; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[8192];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l);
        char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        *after += atoll(sp + 1);
        if (diff) {
            *sp = '\0';
            char *sp2 = strrchr(line, ' ');
            assert_non_null(sp2);
            *before += atoll(sp2 + 1);
        }
        l += n + (e ? 1 : 0);
    }
}

/* The "before after" numbers of the folded line whose stack is exactly `stack`. */
static int folded_find(const char *text, const char *stack, long long *before, long long *after)
{
    size_t sl = strlen(stack);
    for (const char *l = text; (l = strstr(l, stack)); l++) {
        if ((l != text && l[-1] != '\n') || l[sl] != ' ')
            continue;
        return sscanf(l + sl, " %lld %lld", before, after) == 2 ? 0 : -1;
    }
    return -1;
}

/* The current checkouts and profiles, removed by the teardown even when a check fails. */
static char d1[256], d2[256], a_pb[300], b_pb[300];

static int diff_teardown(void **state)
{
    (void)state;
    if (a_pb[0])
        unlink(a_pb);
    if (b_pb[0])
        unlink(b_pb);
    if (d1[0])
        remove_checkout(d1);
    if (d2[0])
        remove_checkout(d2);
    d1[0] = d2[0] = a_pb[0] = b_pb[0] = '\0';
    return 0;
}

static void test_diff_two_checkouts(void **state)
{
    (void)state;
    for (int k = 0; k < n_pythons; k++) {
        const struct test_python *py = &pythons[k];
        printf("  %s\n", py->label);
        char s1[300], s2[300];
        make_checkout(d1, sizeof d1, 0);
        make_checkout(d2, sizeof d2, 1);
        snprintf(a_pb, sizeof a_pb, "%s.pb", d1);
        snprintf(b_pb, sizeof b_pb, "%s.pb", d2);
        snprintf(s1, sizeof s1, "%s/app.py", d1);
        snprintf(s2, sizeof s2, "%s/app.py", d2);
        run_in(d1, py->path, "app.py", a_pb); /* relative, from its directory */
        run_in(d2, py->path, s2, b_pb);       /* absolute */
        (void)s1;

        /* Totals of each profile alone. */
        long long a_total, b_total, ignore;
        memsnap((char *[]){"render", a_pb, "--format", "folded", NULL});
        folded_sums(out, 0, &ignore, &a_total);
        memsnap((char *[]){"render", b_pb, "--format", "folded", NULL});
        folded_sums(out, 0, &ignore, &b_total);
        assert_true(a_total > b_total + 4000000); /* heavy's table: ~5 MB */

        memsnap((char *[]){"render", b_pb, "--diff", a_pb, "--format", "folded", NULL});
        long long before, after;
        folded_sums(out, 1, &before, &after);
        if (before != a_total || after != b_total)
            fail_msg("diff totals %lld/%lld, the profiles' %lld/%lld", before, after, a_total,
                     b_total);
        /* No absolute path of either checkout: files compare relative to their directory. */
        if (strstr(out, "/tmp/memsnap-diff-"))
            fail_msg("an absolute checkout path in the diff:\n%s", out);
        /* The removed import: present, all of it before, nothing after. */
        long long hb, ha;
        if (folded_find(out, "<module> (app.py);import heavy", &hb, &ha) < 0 &&
            !strstr(out, "<module> (app.py);import heavy;"))
            fail_msg("no 'import heavy' subtree in the diff:\n%s", out);
        long long heavy_before = 0;
        for (const char *l = out; (l = strstr(l, "<module> (app.py);import heavy")); l++) {
            const char *e = strchr(l, '\n');
            char line[8192];
            snprintf(line, sizeof line, "%.*s", (int)(e ? e - l : (long)strlen(l)), l);
            char *sp = strrchr(line, ' ');
            assert_int_equal(atoll(sp + 1), 0); /* gone */
            *sp = '\0';
            heavy_before += atoll(strrchr(line, ' ') + 1);
        }
        if (heavy_before < 4000000)
            fail_msg("import heavy had %lld bytes before", heavy_before);
        /* Shared code matches across the checkouts although app.py's lines moved: the
         * stacks through build() (its list comprehension inlined or not) have values on
         * both sides. */
        long long sb = 0, sa = 0;
        for (const char *l = out; (l = strstr(l, "<module> (app.py);build (shared.py)")); l++) {
            const char *e = strchr(l, '\n');
            char line[8192];
            snprintf(line, sizeof line, "%.*s", (int)(e ? e - l : (long)strlen(l)), l);
            char *sp = strrchr(line, ' ');
            sa += atoll(sp + 1);
            *sp = '\0';
            sb += atoll(strrchr(line, ' ') + 1);
        }
        if (!(sb > 1000000 && sa > 1000000))
            fail_msg("build (shared.py) not matched on both sides (%lld before, %lld after):\n%s",
                     sb, sa, out);
        (void)hb;
        (void)ha;

        /* The text report lists the removal first. */
        memsnap((char *[]){"render", b_pb, "--diff", a_pb, "--format", "text", NULL});
        const char *gone = strstr(out, "Gone since the base");
        assert_non_null(gone);
        const char *row = strchr(strchr(gone, '\n') + 1, '\n') + 1;
        const char *heavy = strstr(row, "  import heavy  (under <module> (app.py))");
        if (!heavy || heavy > strchr(row, '\n'))
            fail_msg("the first removal is not import heavy:\n%s", gone);
        /* The SVG draws the gone subtree, hatched, with a tooltip saying so. */
        memsnap((char *[]){"render", b_pb, "--diff", a_pb, NULL});
        const char *g = strstr(out, "fill=\"url(#gone)\" class=\"gone\"><title>import heavy\n");
        if (!g)
            fail_msg("no hatched 'import heavy' frame in the diff SVG");
        assert_non_null(strstr(g, "(gone: only in the base profile)"));

        diff_teardown(NULL);
    }
}

/* The Django check's stats, with DJPROJECT_RNG=rng. */
static void django_stats(const char *rng, const char *pb)
{
    char envvar[64];
    snprintf(envvar, sizeof envvar, "DJPROJECT_RNG=%s", rng);
    char *args[] = {
        "run",          "-o",   (char *)pb,         "--",
        "/usr/bin/env", envvar, "/usr/bin/python3", (char *)test_py_script("djproject/manage.py"),
        "check",        NULL};
    memsnap(args);
    memsnap((char *[]){"stats", (char *)pb, NULL});
}

/* The rows of "Imports in your code" (up to the next blank line), copied into rows. */
static void your_imports(char *rows, size_t len)
{
    const char *s = strstr(out, "\nImports in your code by peak_space");
    if (!s)
        fail_msg("no 'Imports in your code' table:\n%s", out);
    s = strchr(strchr(s + 1, '\n') + 1, '\n') + 1; /* past the heading and column names */
    const char *e = strstr(s, "\n\n");
    snprintf(rows, len, "%.*s", (int)(e ? e - s + 1 : (long)strlen(s)), s);
}

static double mib(const char *row)
{
    double v = 0;
    char unit[8] = "";
    if (sscanf(row, " %lf %7s", &v, unit) != 2)
        return 0;
    return !strcmp(unit, "MiB")   ? v
           : !strcmp(unit, "GiB") ? v * 1024
           : !strcmp(unit, "KiB") ? v / 1024
                                  : 0;
}

static void test_django_imports_in_your_code(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP: /usr/bin/python3 is not installed\n");
        return;
    }
    char probe_out[256], probe_err[4096];
    char *probe[] = {"/usr/bin/python3", "-c", "import django, numpy", NULL};
    int st = test_run_capture(probe, probe_out, sizeof probe_out, probe_err, sizeof probe_err,
                              RUN_TIMEOUT_MS);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("SKIP: Debian's python3 has no Django or numpy (python3-django, python3-numpy)\n");
        return;
    }
    char pb[128], rows[16384];
    snprintf(pb, sizeof pb, "/tmp/memsnap-test-render-run-%d-dj.pb", (int)getpid());

    django_stats("numpy", pb);
    your_imports(rows, sizeof rows);
    printf("%s", rows);
    const char *np =
        strstr(rows, "djproject/rng_numpy.py:3  from numpy.random import MT19937, Generator\n");
    if (!np)
        fail_msg("the numpy import line is not listed with its source:\n%s", rows);
    const char *bol = np;
    while (bol > rows && bol[-1] != '\n')
        bol--;
    double cost = mib(bol);
    if (cost < 5)
        fail_msg("the numpy import costs %.2f MiB, expected >= 5:\n%s", cost, rows);
    assert_non_null(strstr(strchr(np, '\n') + 1, "imports numpy; numpy: "));
    /* It is the costliest statement outside the entry script (manage.py's own import of
     * Django, which costs more, may precede it; see docs/rendering.md). */
    for (const char *r = rows; r < bol; r = strchr(r, '\n') + 1) {
        const char *eol = strchr(r, '\n'), *m = strstr(r, "%  manage.py:");
        if (mib(r) > 0 && (!m || m > eol))
            fail_msg("a statement before the numpy one that is not manage.py's:\n%s", rows);
    }
    /* Top allocation sites are named: no "(unknown module)". */
    const char *sites = strstr(out, "Top allocation sites by peak_space");
    assert_non_null(sites);
    const char *end = strstr(sites, "\n\n");
    char table[16384];
    snprintf(table, sizeof table, "%.*s", (int)(end ? end - sites : (long)strlen(sites)), sites);
    if (strstr(table, "unknown"))
        fail_msg("an unknown site among the top ones:\n%s", table);

    /* The SVG's panel, part of the static picture (before the script). */
    memsnap((char *[]){"render", pb, NULL});
    const char *panel = strstr(out, "<g id=\"spanel\">");
    if (!panel || panel > strstr(out, "<script"))
        fail_msg("no static 'Imports in your code' panel in the SVG");
    const char *row = strstr(panel, "djproject/rng_numpy.py:3</tspan>");
    assert_non_null(row);
    assert_non_null(strstr(row, "from numpy.random import MT19937, Generator</tspan>"));

    /* After the fix: no row pulls in numpy, no row but manage.py's costs megabytes. */
    django_stats("random", pb);
    your_imports(rows, sizeof rows);
    printf("%s", rows);
    if (strstr(rows, "numpy"))
        fail_msg("numpy still imported after the fix:\n%s", rows);
    unlink(pb);
}

int main(void)
{
    n_pythons = test_pythons(pythons, 16);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_diff_two_checkouts, diff_teardown),
        cmocka_unit_test(test_django_imports_in_your_code),
    };
    return cmocka_run_group_tests_name("render_run", tests, NULL, NULL);
}
