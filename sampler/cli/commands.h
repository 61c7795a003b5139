/*
 * commands.h - one entry point per subcommand, git-style (sampler/cmd_*.c, render/cmd_*.c).
 *
 * Each receives argv with argv[0] == the subcommand name, parses its own options, and returns
 * the process exit status: 0 ok, 1 the operation failed (after printing one sentence to
 * stderr), 2 usage error. main.c only dispatches.
 */
#ifndef MEMSNAP_COMMANDS_H
#define MEMSNAP_COMMANDS_H

#include <stdio.h>

#define MS_EXIT_OK    0
#define MS_EXIT_FAIL  1
#define MS_EXIT_USAGE 2

int cmd_attach(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_stats(int argc, char **argv);

struct pythreads;
struct pythread;
struct proc_task;

/* `memsnap dump`'s text output of a snapshot (also used by the replay tests, so a replayed
 * recording is printed exactly as a live dump). tasks (n_tasks of them, proc_tasks.h) are the
 * kernel's view of the threads, for their names and activity; NULL leaves both out. */
void dump_print_text(FILE *f, const struct pythreads *ts, const struct proc_task *tasks,
                     int n_tasks);

/* The kernel's view of thread t: its name into name (printable ASCII, "" when unknown) and its
 * activity ("running", "idle", "stopped", "unknown"). */
const char *dump_thread_info(const struct pythread *t, const struct proc_task *tasks, int n_tasks,
                             char name[17]);

/* Prints "memsnap: <msg>\n" to stderr: the single place errors reach the user. */
void ms_report(const char *msg);

#endif
