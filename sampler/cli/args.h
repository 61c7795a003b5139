/*
 * args.h - the forms every size and duration argument takes, the same in every subcommand:
 * a size is a whole number of bytes with an optional binary suffix (512k, 4m, 1g; KiB, MiB,
 * GiB are accepted too), a duration is a number of seconds with an optional unit (2.5, 30s,
 * 500ms, 5m, 1h). Both refuse signs, spaces, trailing text and zero.
 */
#ifndef MEMSNAP_ARGS_H
#define MEMSNAP_ARGS_H

#include <stdint.h>

/* Parses a size of 1 .. max bytes into *out. Returns 0, or -1 (out untouched). */
int args_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Parses a positive duration of at most max_s seconds into *out (seconds). Returns 0 or -1. */
int args_parse_duration(const char *s, double max_s, double *out);

#endif
