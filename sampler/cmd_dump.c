/*
 * cmd_dump.c - placeholder until `memsnap dump` lands; replaced by its implementation.
 */
#include "commands.h"

int cmd_dump(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ms_report("'dump' is not built yet.");
    return MS_EXIT_FAIL;
}
