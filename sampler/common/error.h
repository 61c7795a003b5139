/*
 * error.h - the one error convention every memsnap module follows.
 *
 * A function that can fail returns 0 on success and -1 on failure, after writing one
 * sentence into the ms_error its caller passed: what failed, on what, and (where the user
 * can act) what to do. Callers that add context use ms_error_prefix() so the final message
 * reads outermost-first ("attach 1234: reading /proc/1234/maps: No such process").
 * main() prints the message exactly once, to stderr. Nothing else prints errors.
 */
#ifndef MEMSNAP_ERROR_H
#define MEMSNAP_ERROR_H

#include <stddef.h>

typedef struct ms_error {
    char msg[1024];
} ms_error;

/* Formats the message into err (may be NULL) and returns -1, so `return ms_error_set(...)`. */
int ms_error_set(ms_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like ms_error_set, with ": strerror(errnum)" appended. */
int ms_error_errno(ms_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends formatted context and ": " to the message already in err; returns -1. */
int ms_error_prefix(ms_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
