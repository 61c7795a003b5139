/*
 * output.h - where a profile goes (-o of attach and run), decided and checked before any
 * process is touched, written after the recording.
 *
 * output_prepare() classifies the path once, before attaching or starting the command, so a
 * recording is never lost to an output that cannot be created:
 *   - a regular file, or a name that does not exist yet: replaced atomically at the end (a
 *     temporary in the same directory, fsync, rename; profile_write). A temporary is created
 *     and removed right away as the proof that the directory accepts new files.
 *   - a symlink (any chain of them): the final target is the file replaced; the links stay.
 *   - a character device, a FIFO, or "-" (standard output): written in place, never renamed
 *     or truncated. A device is opened now (its open errors are known before recording); a
 *     FIFO is opened now if a reader is already there, else at the end (blocking, like a
 *     shell redirection, until a reader opens it).
 *   - anything else (a directory, a socket, a block device, a missing or read-only directory,
 *     a file system that refuses new files such as /proc): refused, one sentence.
 */
#ifndef MEMSNAP_OUTPUT_H
#define MEMSNAP_OUTPUT_H

#include <limits.h>

#include "error.h"
#include "profile.h"

enum output_kind {
    OUTPUT_FILE,   /* replaced atomically: dest is the final target of any symlinks */
    OUTPUT_STDOUT, /* "-" */
    OUTPUT_CHAR,   /* a character device, written in place */
    OUTPUT_FIFO,   /* a FIFO, written in place */
};

struct output {
    enum output_kind kind;
    char given[PATH_MAX]; /* the path as the user wrote it, for messages */
    char dest[PATH_MAX];  /* OUTPUT_FILE: the file that is replaced */
    int fd;               /* OUTPUT_CHAR / OUTPUT_FIFO: open descriptor, or -1 */
};

/* Classifies and checks path (see above). 0, or -1 with one sentence in err. On success
 * output_close() must be called eventually. */
int output_prepare(struct output *o, const char *path, ms_error *err);

/* 1 when the output is a stream (stdout, device, FIFO): one profile only, nothing renamed. */
int output_is_stream(const struct output *o);

/* Writes the profile (gzip) to the prepared output. 0, or -1 with one sentence in err that
 * says the profile was not saved and, for a file, that no partial file was left behind. */
int output_write(struct output *o, const struct profile *p, ms_error *err);

void output_close(struct output *o);

#endif
