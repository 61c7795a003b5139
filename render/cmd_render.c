/*
 * cmd_render.c - placeholder until `memsnap render` lands; replaced by its implementation.
 */
#include "commands.h"

int cmd_render(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ms_report("'render' is not built yet.");
    return MS_EXIT_FAIL;
}
