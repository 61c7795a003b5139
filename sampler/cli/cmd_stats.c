/*
 * cmd_stats.c - `memsnap stats FILE`: the recording's facts, "imports in your code" by cost,
 * and the top allocation sites and imports of a profile, as a terminal table (the same
 * report as render --format text, on the profile's default metric).
 *
 * A profile whose default metric sums to zero (inuse_space of a worker that exited or freed
 * everything during the window) would show "(none)" in every table: then the report uses the
 * allocation view (alloc_space) and says why in a first line.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "profile.h"
#include "flametree.h"
#include "text.h"

#define STATS_TOP_ROWS 20
/* Sites narrower than this share of the total cannot reach a top-20 table in practice, and
 * pruning them keeps the report instant on million-sample profiles. */
#define STATS_MIN_FRACTION 0.001

/* The sum of sample type idx over every sample. */
static int64_t type_total(const struct profile *p, int idx)
{
    int64_t sum = 0;
    for (size_t i = 0; idx >= 0 && i < p->n_samples; i++)
        sum += p->values[i * p->n_sample_types + (size_t)idx];
    return sum;
}

/* "alloc_space" when the default metric is an in-use one that sums to zero while the
 * allocations do not, else NULL (the default). */
static const char *fallback_metric(const struct profile *p)
{
    int value_idx, count_idx;
    if (flametree_metric(p, NULL, &value_idx, &count_idx, NULL) < 0)
        return NULL;
    const char *name = p->strings[p->sample_types[value_idx].type];
    if (strncmp(name, "inuse_", 6) || type_total(p, value_idx) != 0)
        return NULL;
    int alloc = profile_find_sample_type(p, "alloc_space");
    return alloc >= 0 && type_total(p, alloc) != 0 ? "alloc_space" : NULL;
}

int cmd_stats(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: memsnap stats FILE\n"
             "Prints a profile's recording facts (peak heap and RSS, totals, duration, rate,\n"
             "drops), the import statements of your own code by what they cost, and the top\n"
             "allocation sites, frames and imports.");
        return MS_EXIT_OK;
    }
    if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0')) {
        fputs("usage: memsnap stats FILE\n", stderr);
        return MS_EXIT_USAGE;
    }
    ms_error err;
    struct profile *p = NULL;
    struct flame_tree *t = NULL;
    struct flame_options opt = {.min_fraction = STATS_MIN_FRACTION};
    int status = MS_EXIT_FAIL;
    if (profile_read(argv[1], &p, &err) < 0)
        goto out;
    opt.metric = fallback_metric(p);
    if (opt.metric)
        printf("note: nothing recorded was still in use at the end (the process freed it all or "
               "exited during the recording), so this report shows alloc_space: everything "
               "allocated during the recording\n");
    if (flametree_build(p, NULL, &opt, &t, &err) < 0 ||
        text_write(stdout, p, t, STATS_TOP_ROWS, &err) < 0)
        goto out;
    status = MS_EXIT_OK;
out:
    if (status != MS_EXIT_OK)
        ms_report(err.msg);
    flametree_free(t);
    profile_free(p);
    return status;
}
