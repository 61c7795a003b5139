/*
 * progress.h - the one-line live status of a recording on stderr.
 *
 * Shown only when stderr is a terminal and --quiet was not given, so logs and pipes stay
 * clean. The line is redrawn in place (carriage return + clear to end of line) at most
 * PROGRESS_PER_SECOND times a second and erased before anything else is printed.
 */
#ifndef MEMSNAP_PROGRESS_H
#define MEMSNAP_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define PROGRESS_PER_SECOND 4

struct progress {
    int enabled;
    int shown; /* a line is on screen */
    int64_t last_ns;
};

/* What one attached process reports. */
struct progress_status {
    int pid;
    double elapsed_s;
    double remaining_s; /* < 0: until Ctrl-C */
    uint64_t events;
    int64_t heap;  /* bytes */
    int64_t rss;   /* bytes */
    int recording; /* 0 while the hook is still installing */
};

/* enabled = !quiet && isatty(stderr). */
void progress_init(struct progress *pr, int quiet);

/* Redraws the line (if enabled and due at now_ns) for n processes (the first few are shown
 * in full, the rest summed). */
void progress_show(struct progress *pr, int64_t now_ns, const struct progress_status *st, size_t n);

/* Erases the line, if one is shown. */
void progress_clear(struct progress *pr);

/* "5.6 MiB", "812 B": binary units with one decimal. */
void progress_format_bytes(char *out, size_t n, int64_t bytes);

#endif
