/*
 * cmd_attach.c - placeholder until `memsnap attach` lands; replaced by its implementation.
 */
#include "commands.h"

int cmd_attach(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ms_report("'attach' is not built yet.");
    return MS_EXIT_FAIL;
}
