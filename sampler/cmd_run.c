/*
 * cmd_run.c - placeholder until `memsnap run` lands; replaced by its implementation.
 */
#include "commands.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ms_report("'run' is not built yet.");
    return MS_EXIT_FAIL;
}
