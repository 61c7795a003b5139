/*
 * dump_text.c - `memsnap dump`'s text output of a snapshot; see commands.h.
 *
 * Apart from cmd_dump.c so that the replay tests (tests/support/replay.c) print a replayed
 * recording with exactly the code that prints a live dump.
 */
#include <stdio.h>

#include "commands.h"
#include "proc_tasks.h"
#include "pythreads.h"

const char *dump_thread_info(const struct pythread *t, const struct proc_task *tasks, int n_tasks,
                             char name[17])
{
    const struct proc_task *k =
        t->native_tid && tasks ? proc_tasks_find(tasks, n_tasks, t->native_tid) : NULL;
    name[0] = '\0';
    if (!k)
        return "unknown";
    size_t i = 0;
    for (; k->name[i] && i < 16; i++)
        name[i] = k->name[i] >= 0x20 && k->name[i] < 0x7f && k->name[i] != '"' && k->name[i] != '\\'
                      ? k->name[i]
                      : '?';
    name[i] = '\0';
    return proc_task_activity(k->state);
}

void dump_print_text(FILE *f, const struct pythreads *ts, const struct proc_task *tasks,
                     int n_tasks)
{
    for (int i = 0; i < ts->count; i++) {
        const struct pythread *t = &ts->threads[i];
        if (t->native_tid)
            fprintf(f, "Thread %d", (int)t->native_tid);
        else
            fprintf(f, "Thread 0x%llx", (unsigned long long)t->pthread_id);
        char name[17];
        const char *activity = dump_thread_info(t, tasks, n_tasks, name);
        if (name[0])
            fprintf(f, " \"%s\"", name);
        fprintf(f, "%s%s", t->is_main ? " (main)" : "", t->holds_gil ? " (holds the GIL)" : "");
        if (tasks)
            fprintf(f, ": %s", activity);
        fputc('\n', f);
        for (int k = 0; k < t->nframes; k++) {
            const struct pyframe *fr = &t->frames[k];
            if (!fr->code)
                fprintf(f, "    <unreadable code object 0x%llx>\n",
                        (unsigned long long)fr->code_addr);
            else if (fr->line >= 0)
                fprintf(f, "    %s (%s:%d)\n", fr->code->name, fr->code->filename, fr->line);
            else
                fprintf(f, "    %s (%s)\n", fr->code->name, fr->code->filename);
        }
        if (t->truncated)
            fprintf(f, "    ... (stack cut: unreadable or too deep)\n");
    }
}
