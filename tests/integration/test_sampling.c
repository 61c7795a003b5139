/*
 * test_sampling.c - sampled totals against exact ones on real processes: every installed
 * CPython runs tests/py/sampling_workload.py once exactly (memsnap run --rate 1) and several
 * times sampled at the default attach rate (512 KiB), and the totals under each work_*
 * function must agree: allocated objects and bytes for all four workloads (fresh strs, small
 * dicts, small tuples mixed with 300 KB buffers, churn), and the live set at the peak (the
 * in-use view of a recording that ends at exit, when everything is freed) for the churn, which
 * keeps a fifth of what it allocates.
 *
 * The statistics: a sampled estimate's relative standard error is about sqrt(rate / bytes)
 * for bytes, and sqrt(rate / (objects x their harmonic mean size)) for objects, whatever the
 * estimator; one run of 64 MiB per workload is ~9% for bytes (more for tiny objects), so the check
 * is on the mean of SAMPLED_RUNS runs (~4.5% at worst): within +-15% is over 3.3 standard
 * deviations. When a mean misses, SAMPLED_RUNS more runs are made and the mean of all must hold (a
 * real bias fails both, chance fails both about once in 10^5 Pythons). Every single run must also
 * be within +-50% (over 5 standard deviations). The old per-stack scaling failed this by 50x on
 * objects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "profile.h"
#include "testproc.h"

#define RUN_TIMEOUT_MS 120000
#define RATE           524288 /* attach's default, 512 KiB */
#define SAMPLED_RUNS   5
#define MAX_RUNS       (2 * SAMPLED_RUNS)

static struct test_python pythons[16];
static int n_pythons;
static char out[1 << 16], err[1 << 16];

static const char *const funcs[] = {"work_strs", "work_dicts", "work_mix", "work_churn"};
static const char *const views[] = {"alloc_objects", "alloc_space", "peak_objects", "peak_space"};
#define N_FUNCS 4
#define N_VIEWS 4

/* Totals of one recording: [function][view]. */
struct totals {
    double v[N_FUNCS][N_VIEWS];
};

/* Which (function, view) pairs are compared: allocations everywhere, the peak for the churn
 * (the others have freed everything by then). */
static int compared(int f, int k)
{
    return k < 2 || !strcmp(funcs[f], "work_churn");
}

static int sample_passes(const struct profile *p, const struct profile_sample *s, const char *func)
{
    for (uint32_t k = 0; k < s->n_locs; k++) {
        const struct profile_location *loc = &p->locations[p->stack_locs[s->first_loc + k]];
        for (uint32_t j = 0; j < loc->n_lines; j++) {
            const struct profile_line *ln = &p->lines[loc->first_line + j];
            if (!strcmp(p->strings[p->functions[ln->function].name], func))
                return 1;
        }
    }
    return 0;
}

/* Records the workload with `rate` and fills t. An exact recording must be complete: one the
 * hook ended early (memsnap starved of CPU past the heartbeat timeout) is made again once. */
static void record(const struct test_python *py, long rate, struct totals *t)
{
    char path[128], rate_s[32];
    snprintf(path, sizeof path, "/tmp/memsnap-test-sampling-%d.pb", (int)getpid());
    snprintf(rate_s, sizeof rate_s, "%ld", rate);
    for (int attempt = 0;; attempt++) {
        char *args[] = {"run",
                        "-o",
                        path,
                        "--rate",
                        rate_s,
                        "--",
                        (char *)py->path,
                        (char *)test_py_script("sampling_workload.py"),
                        "1",
                        NULL};
        int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, RUN_TIMEOUT_MS);
        if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: memsnap run --rate %ld failed (%d): %s", py->label, rate, st, err);
        if (!strstr(out, "kept 800"))
            fail_msg("%s: the workload did not finish normally: %s", py->label, out);
        struct profile *p = NULL;
        ms_error e;
        if (profile_read(path, &p, &e) < 0)
            fail_msg("%s: reading the profile: %s", py->label, e.msg);
        unlink(path);
        int incomplete = strstr(err, "stopped early") || p->meta.dropped_events > 0;
        if (incomplete && attempt == 0) {
            printf("  %s: rate %ld: incomplete recording (%s), once more\n", py->label, rate, err);
            profile_free(p);
            continue;
        }
        if (incomplete && rate == 1)
            fail_msg("%s: the exact recording was incomplete twice: %s", py->label, err);
        memset(t, 0, sizeof *t);
        for (int k = 0; k < N_VIEWS; k++) {
            int type = profile_find_sample_type(p, views[k]);
            if (type < 0)
                fail_msg("%s: no %s in the profile", py->label, views[k]);
            for (size_t i = 0; i < p->n_samples; i++)
                for (int f = 0; f < N_FUNCS; f++)
                    if (sample_passes(p, &p->samples[i], funcs[f]))
                        t->v[f][k] += (double)p->values[i * p->n_sample_types + (size_t)type];
        }
        profile_free(p);
        return;
    }
}

/* The predicted relative standard error of one sampled run's estimate of an exact total:
 * sqrt(rate x bytes) / bytes for bytes (an upper bound), and for objects sqrt(rate x objects /
 * mean size) / objects (exact when all have the mean size; below the truth when large blocks
 * raise the mean, as in work_mix: only printed). */
static double predicted_rse(const struct totals *exact, int f, int k)
{
    int objects = k % 2 == 0;
    double n = exact->v[f][k - (objects ? 0 : 1)], b = exact->v[f][k + (objects ? 1 : 0)];
    if (n <= 0 || b <= 0)
        return 1;
    return objects ? sqrt((double)RATE / (b / n) / n) : sqrt((double)RATE / b);
}

/* 1 when the mean of runs[0..n) is within +-15% of exact for every compared total. */
static int means_hold(const struct test_python *py, const struct totals *exact,
                      const struct totals *runs, int n, int print)
{
    int ok = 1;
    for (int f = 0; f < N_FUNCS; f++)
        for (int k = 0; k < N_VIEWS; k++) {
            if (!compared(f, k))
                continue;
            double mean = 0;
            for (int r = 0; r < n; r++)
                mean += runs[r].v[f][k] / n;
            double want = exact->v[f][k], rel = mean / want - 1;
            double rse = predicted_rse(exact, f, k) / sqrt(n);
            if (print || fabs(rel) > 0.15)
                printf("  %s %-10s %-13s exact %10.0f sampled mean of %d %10.0f (%+5.1f%%, "
                       "predicted sd %.1f%%)\n",
                       py->label, funcs[f], views[k], want, n, mean, 100 * rel, 100 * rse);
            if (fabs(rel) > 0.15)
                ok = 0;
        }
    return ok;
}

static void test_sampled_matches_exact(void **state)
{
    (void)state;
    for (int i = 0; i < n_pythons; i++) {
        const struct test_python *py = &pythons[i];
        struct totals exact, runs[MAX_RUNS];
        record(py, 1, &exact);
        for (int f = 0; f < N_FUNCS; f++)
            for (int k = 0; k < N_VIEWS; k++) {
                if (!compared(f, k))
                    continue;
                if (exact.v[f][k] <= 0)
                    fail_msg("%s: nothing exact for %s %s", py->label, funcs[f], views[k]);
                /* The workload is big enough for the bound: 15% is >= 3 sd of the mean, for
                 * bytes (a true upper bound; the objects' sd depends on sizes the totals do
                 * not tell, and the workload was sized for them). */
                double rse = predicted_rse(&exact, f, k) / sqrt(SAMPLED_RUNS);
                if (k % 2 == 1 && 0.15 < 3 * rse)
                    fail_msg("%s: %s %s: predicted sd %.1f%% is too large for +-15%%", py->label,
                             funcs[f], views[k], 100 * rse);
            }
        int n = 0;
        for (; n < SAMPLED_RUNS; n++)
            record(py, RATE, &runs[n]);
        if (!means_hold(py, &exact, runs, n, 1)) {
            printf("  %s: a mean missed by chance or by bias: %d runs more\n", py->label,
                   SAMPLED_RUNS);
            for (; n < MAX_RUNS; n++)
                record(py, RATE, &runs[n]);
            if (!means_hold(py, &exact, runs, n, 1))
                fail_msg("%s: sampled totals are not within 15%% of exact ones", py->label);
        }
        /* Every single run within +-50%: the spread of one recording is sane. */
        for (int r = 0; r < n; r++)
            for (int f = 0; f < N_FUNCS; f++)
                for (int k = 0; k < N_VIEWS; k++) {
                    if (!compared(f, k))
                        continue;
                    double rel = runs[r].v[f][k] / exact.v[f][k] - 1;
                    if (fabs(rel) > 0.5)
                        fail_msg("%s: run %d: %s %s %.0f vs exact %.0f (%+.0f%%)", py->label, r,
                                 funcs[f], views[k], runs[r].v[f][k], exact.v[f][k], 100 * rel);
                }
    }
}

static int setup(void **state)
{
    (void)state;
    n_pythons = test_pythons(pythons, 16);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampled_matches_exact),
    };
    return cmocka_run_group_tests_name("sampling", tests, setup, NULL);
}
