/*
 * cmd_stats.c - placeholder until `memsnap stats` lands; replaced by its implementation.
 */
#include "commands.h"

int cmd_stats(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ms_report("'stats' is not built yet.");
    return MS_EXIT_FAIL;
}
