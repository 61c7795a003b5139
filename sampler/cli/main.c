/*
 * main.c - memsnap's entry point: dispatches to one subcommand (see commands.h).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifndef MEMSNAP_VERSION
#define MEMSNAP_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: memsnap <command> [options]\n"
    "\n"
    "  attach <pid>... [--duration S] [-o FILE] [--rate BYTES] [--quiet]\n"
    "        inject the allocation hook into running CPython processes, record, detach\n"
    "  run [-o FILE] [--rate BYTES] -- <command> [args...]\n"
    "        run a Python command and profile it from its first line\n"
    "  dump <pid> [--json]\n"
    "        print every thread's Python stack (reads memory only)\n"
    "  render FILE [--metric NAME] [--diff BASE] [--icicle|--flame] [--title T]\n"
    "         [--format svg|folded|text] [--min-width PX] [--raw-imports]\n"
    "        draw a profile as an interactive SVG flame graph (to stdout)\n"
    "  stats FILE\n"
    "        peak, totals and the top allocation sites of a profile\n"
    "\n"
    "  memsnap <command> --help   for a command's options\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"attach", cmd_attach}, {"run", cmd_run},     {"dump", cmd_dump},
    {"render", cmd_render}, {"stats", cmd_stats},
};

void ms_report(const char *msg)
{
    fprintf(stderr, "memsnap: %s\n", msg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return MS_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return MS_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("memsnap %s\n", MEMSNAP_VERSION);
        return MS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "memsnap: '%s' is not a memsnap command; see 'memsnap --help'.\n", argv[1]);
    return MS_EXIT_USAGE;
}
