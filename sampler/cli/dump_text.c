/*
 * dump_text.c - `memsnap dump`'s text output of a snapshot; see commands.h.
 *
 * Apart from cmd_dump.c so that the replay tests (tests/support/replay.c) print a replayed
 * recording with exactly the code that prints a live dump.
 */
#include <stdio.h>

#include "commands.h"
#include "pythreads.h"

void dump_print_text(FILE *f, const struct pythreads *ts)
{
    for (int i = 0; i < ts->count; i++) {
        const struct pythread *t = &ts->threads[i];
        if (t->native_tid)
            fprintf(f, "Thread %d", (int)t->native_tid);
        else
            fprintf(f, "Thread 0x%llx", (unsigned long long)t->pthread_id);
        fprintf(f, "%s%s\n", t->is_main ? " (main)" : "", t->holds_gil ? " (holds the GIL)" : "");
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
