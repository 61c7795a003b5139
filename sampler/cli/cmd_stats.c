/*
 * cmd_stats.c - `memsnap stats FILE`: the recording's facts, "imports in your code" by cost,
 * and the top allocation sites and imports of a profile, as a terminal table (the same
 * report as render --format text, on the profile's default metric).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "flametree.h"
#include "text.h"

#define STATS_TOP_ROWS 20
/* Sites narrower than this share of the total cannot reach a top-20 table in practice, and
 * pruning them keeps the report instant on million-sample profiles. */
#define STATS_MIN_FRACTION 0.001

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
