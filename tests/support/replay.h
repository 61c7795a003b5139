/*
 * replay.h - recordings of what `memsnap dump` read from a live CPython, and their replay
 * through the same readers, so that every supported layout (3.8-3.14) is tested on machines
 * that have none of those interpreters.
 *
 * A recording holds the ELF facts pyruntime_facts() found (version, _PyRuntime and type
 * addresses, load bias, the interpreter's path), every range of target memory that
 * pyruntime_finish() and pythreads_snapshot() read (merged into segments; a range read twice
 * keeps its last contents), and the stacks the target itself reported (dump_target.py's
 * EXPECT block). Replaying installs a remote_read source (remote.h's test seam) that serves
 * only recorded ranges and fails with EFAULT on anything else, then runs pyruntime_finish,
 * pythreads_snapshot and dump's own text printer.
 *
 * File format (text, tests/fixtures/dump-*.txt; docs/python-versions.md):
 *   memsnap-replay 1
 *   fact <name> <value>          one per struct pyruntime fact
 *   expect <line>                the target's own view, memsnap's text format
 *   mem <hex addr> <len>         then ceil(len/32) lines of 64 hex digits
 */
#ifndef MEMSNAP_TEST_REPLAY_H
#define MEMSNAP_TEST_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pyruntime.h"

struct replay;

struct replay *replay_new(void);
void replay_free(struct replay *r);

/* Recording: the facts of a located (pyruntime_facts) runtime, then every successful remote
 * read between start and stop. */
void replay_set_facts(struct replay *r, const struct pyruntime *rt);
void replay_set_expect(struct replay *r, const char *text);
void replay_record_start(struct replay *r);
void replay_record_stop(void);
int replay_save(struct replay *r, const char *path);

/* Loading: NULL with a sentence in err when the file is not a valid recording. */
struct replay *replay_load(const char *path, ms_error *err);

/* Replays: pyruntime_finish + pythreads_snapshot + dump's text printer, reads served from the
 * recording. *text (malloc'd) gets the dump text. 0, or -1 with err (as memsnap would say). */
int replay_dump(struct replay *r, char **text, ms_error *err);

/* The recording's facts (to alter them in negative tests) and expected text. */
struct pyruntime *replay_facts(struct replay *r);
const char *replay_expect(const struct replay *r);
size_t replay_bytes(const struct replay *r); /* recorded bytes of memory */

/* Overwrites recorded bytes at addr (negative tests); -1 when not recorded. */
int replay_poke(struct replay *r, uint64_t addr, const void *bytes, size_t n);

/* Copies recorded bytes at addr; -1 when not recorded. */
int replay_peek(const struct replay *r, uint64_t addr, void *bytes, size_t n);

/* Copies text with each "Thread <id>" header reduced to "Thread" (ids differ between a stopped
 * and a replayed walk) and " (holds the GIL)" removed (the target cannot report it). */
char *replay_normalize(const char *text);

#endif
