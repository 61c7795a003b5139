/*
 * profile.h - memsnap's in-memory profile, and reading/writing it as a pprof file.
 *
 * The model mirrors google/pprof's Profile message but is index-based and flat, so that a
 * profile of a million samples costs a handful of allocations: every reference is an index
 * into another array (pprof's ids are index + 1 on the wire), strings live once in a string
 * table whose entry 0 is "", and per-sample arrays are slices of shared flat arrays.
 *
 * Contract of profile_read*(): the returned profile is fully validated. Every string index,
 * function index, line slice, location index and sample slice is in range, the value matrix
 * has n_samples * n_sample_types entries, and sizes are bounded (PROFILE_MAX_*). Consumers
 * (render/, stats) may index without checking. Anything else is a one-sentence error.
 * Beyond that, in a profile that was read: every location has at least one line (one that
 * had only an address gets a function named "0x<address>" with file "" and line 0); every
 * string is valid UTF-8 without NUL bytes (bad bytes become U+FFFD); default_sample_type is
 * the type named by the file's default_sample_type, else the last one (pprof's rule);
 * labels other than "thread" (string), "bytes" and "pid" (numeric) are dropped; mappings are
 * not kept. A file of other tools may have sample ids in any order and unpacked numbers.
 *
 * Builder notes: profile_intern() repairs invalid UTF-8 the same way; builder calls also
 * work on a profile that was read (it is indexed on the first call); a sample type cannot
 * be added once samples exist; out-of-range indexes are refused (UINT32_MAX / -1, EINVAL).
 *
 * Contract of profile_write(): the file appears complete or not at all (written to a
 * temporary name in the same directory, fsync'd, renamed); a full disk is an error that
 * leaves any existing file untouched. Path "-" writes to standard output (not atomic).
 * Location and function ids are index + 1; "thread" and "bytes" are added to the string
 * table on the way out when samples need them and the profile lacks them.
 *
 * memsnap's own data (struct profile_meta, the timeline) travels in standard pprof comments
 * (Profile.comment, field 13: string indexes), one item per comment, "memsnap.<key>=<value>",
 * so every pprof reader (go tool pprof -comments, pprof-format, speedscope, Pyroscope) opens
 * our files unmodified and shows them; we read other tools' files too (meta then stays zero).
 * The keys, written whenever the metadata is not all zero:
 *   memsnap.pid=1234                       the target's process id (1 .. 2^31-1)
 *   memsnap.command=python3 manage.py check  the command line, spaces between arguments
 *   memsnap.python_version=3.11.2          memsnap.mode=attach | run
 *   memsnap.start_unix_ns=N  memsnap.duration_ns=N  memsnap.rate=N (bytes; 1 = every block)
 *   memsnap.dropped_events=N  memsnap.dropped_bytes=N  memsnap.peak_rss=N  memsnap.peak_heap=N
 *   memsnap.peak_time_ns=N  memsnap.total_alloc_bytes=N  memsnap.total_alloc_count=N
 *   memsnap.timeline=t_ns,rss,heap;t_ns,rss,heap;...   (at most 256 points per comment, in
 *                                          order; a long timeline takes several comments)
 *   memsnap.process=pid,start_unix_ns,duration_ns,peak_rss,peak_heap,total_alloc_bytes,
 *                   total_alloc_count,exited,signal,command
 *                                          one per process of a merged profile (several
 *                                          processes: attach --children, run --follow-fork);
 *                                          exited 0/1, signal 0..127 (what killed it), the
 *                                          command is the rest after the 9th comma; at most
 *                                          PROFILE_MAX_PROCESSES are kept, a repeated pid
 *                                          replaces the earlier entry
 * Every N is a plain decimal in 0 .. 2^63-1 (rate >= 1). A string value is the rest of the
 * comment after the first "=". The reader is strict and forgiving at once: a memsnap comment
 * with an unknown key, a number out of range, or a timeline chunk that is malformed, goes
 * back in time, or would pass PROFILE_MAX_TIMELINE_POINTS is ignored whole (a repeated key:
 * the last valid one wins); none of that makes the file unreadable. Comments that do not
 * start with "memsnap." are kept in profile.comments and written back.
 */
#ifndef MEMSNAP_PROFILE_H
#define MEMSNAP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Upper bounds a reader accepts; past them the file is refused, not truncated. */
#define PROFILE_MAX_FILE_BYTES      (1ull << 31) /* decompressed */
#define PROFILE_MAX_STACK_DEPTH     8192
#define PROFILE_MAX_TIMELINE_POINTS 65536 /* the recorder keeps at most 4096 */
#define PROFILE_MAX_PROCESSES       4096  /* process entries of a merged profile */
#define PROFILE_MERGED_POINTS       4096  /* a merged timeline is thinned to this many */

struct profile_value_type {
    uint32_t type; /* string index, e.g. "inuse_space" */
    uint32_t unit; /* string index, e.g. "bytes" */
};

struct profile_function {
    uint32_t name;     /* string index: co_qualname (3.11+) else co_name */
    uint32_t filename; /* string index */
    int64_t start_line;
};

struct profile_line {
    uint32_t function; /* index into functions */
    int64_t line;
};

/* A location is a slice of lines; with several lines the LAST one is the caller (pprof). */
struct profile_location {
    uint32_t first_line; /* index into lines */
    uint32_t n_lines;
    uint64_t address;
};

/* A sample: a stack (slice of stack_locs, leaf first) and n_sample_types values. */
struct profile_sample {
    uint32_t first_loc; /* index into stack_locs */
    uint32_t n_locs;
    uint32_t thread;     /* string index of the "thread" label, 0 when none */
    int64_t block_bytes; /* numeric label "bytes" (average block size), 0 when none */
    int64_t pid;         /* numeric label "pid" (1 .. 2^31-1), 0 when none */
};

/* One point of the memory-over-time chart. */
struct profile_point {
    int64_t t_ns; /* since the start of recording */
    int64_t rss;  /* bytes, from /proc/PID/status VmRSS */
    int64_t heap; /* bytes live in the Python allocators (exact, or the unbiased estimate) */
};

/* memsnap's metadata; all zero for profiles written by other tools. */
struct profile_meta {
    int64_t pid;
    uint32_t command;        /* string index: the target's command line, spaces between args */
    uint32_t python_version; /* string index, e.g. "3.11.2" */
    uint32_t mode;           /* string index: "attach" or "run" */
    int64_t start_unix_ns;
    int64_t duration_ns;
    int64_t rate; /* mean sampling interval in bytes; 1 = every allocation */
    int64_t dropped_events;
    int64_t dropped_bytes;
    int64_t peak_rss;          /* bytes (VmHWM for run, max sampled VmRSS for attach) */
    int64_t peak_heap;         /* bytes */
    int64_t peak_time_ns;      /* since start */
    int64_t total_alloc_bytes; /* every allocation seen by the hook, sampled or not */
    int64_t total_alloc_count;
    uint32_t native_thread_names; /* reserved, 0 */
};

/* One process of a merged profile (profile_merge). */
struct profile_process {
    int64_t pid;
    uint32_t command; /* string index */
    int64_t start_unix_ns;
    int64_t duration_ns; /* recorded: from its start of recording to its end or exit */
    int64_t peak_rss;
    int64_t peak_heap;
    int64_t total_alloc_bytes;
    int64_t total_alloc_count;
    int64_t exited; /* 1: it exited (or was killed) during the window */
    int64_t signal; /* exited: the signal that killed it, 0 none or unknown */
};

struct profile {
    char **strings; /* strings[0] == "" */
    size_t n_strings;

    struct profile_value_type *sample_types;
    size_t n_sample_types;
    size_t default_sample_type; /* index into sample_types */
    struct profile_value_type period_type;
    int64_t period;
    int64_t time_nanos;
    int64_t duration_nanos;

    struct profile_function *functions;
    size_t n_functions;
    struct profile_line *lines;
    size_t n_lines;
    struct profile_location *locations;
    size_t n_locations;
    uint32_t *stack_locs; /* flat: each sample's locations, leaf first */
    size_t n_stack_locs;
    struct profile_sample *samples;
    size_t n_samples;
    int64_t *values; /* n_samples * n_sample_types, row-major */

    struct profile_meta meta;
    struct profile_point *timeline;
    size_t n_timeline;

    /* Profile.comment entries other than memsnap's own (string indexes, in file order). */
    uint32_t *comments;
    size_t n_comments;

    /* A merged profile's processes (memsnap.process comments); 0 in a one-process profile. */
    struct profile_process *processes;
    size_t n_processes;

    struct profile_intern *intern; /* builder's dedup tables; NULL on profiles that were read */
};

/* --- building (the collector) --- */

/* An empty profile with strings[0] == "" and the builder's dedup tables. NULL on ENOMEM. */
struct profile *profile_new(void);

/* Each returns the index of an existing equal entry or of the one appended.
 * On allocation failure they return UINT32_MAX and the profile stays consistent. */
uint32_t profile_intern(struct profile *p, const char *s);
uint32_t profile_add_sample_type(struct profile *p, const char *type, const char *unit);
uint32_t profile_add_function(struct profile *p, const char *name, const char *filename,
                              int64_t start_line);
uint32_t profile_add_location(struct profile *p, const struct profile_line *lines,
                              uint32_t n_lines);

/* Appends a sample; values has n_sample_types entries. Returns 0, or -1 on ENOMEM. */
int profile_add_sample(struct profile *p, const uint32_t *locs, uint32_t n_locs,
                       const int64_t *values, uint32_t thread, int64_t block_bytes);
int profile_add_point(struct profile *p, int64_t t_ns, int64_t rss, int64_t heap);

/* Appends a free-text comment (interned). Text starting with "memsnap." is memsnap's own
 * namespace, written from meta and the timeline: refused with EINVAL. 0, or -1 (errno). */
int profile_add_comment(struct profile *p, const char *text);

/* Adds (or, same pid, replaces) a process entry; its command is interned. 0, or -1 (errno). */
int profile_add_process(struct profile *p, const struct profile_process *proc, const char *command);

/* Merges src into dst, for one profile of several processes. Every sample of src is added
 * with its "pid" label (its own, else src's meta.pid); functions, locations and strings are
 * re-interned; src's process entries (or one made from its meta) are appended; its free-text
 * comments are kept, a "memsnap-note: " one gains "process N: "; the timelines (RSS and heap
 * over time, in absolute time) are summed as step functions and thinned to at most
 * PROFILE_MERGED_POINTS; dst's meta then spans both: the earliest start, the latest end,
 * summed totals and drops, peaks of the summed timeline (or the largest process peak). An
 * empty dst (no sample types) takes src's sample types, period and meta. Sample types are
 * matched by name; a type dst lacks is refused (EINVAL) once dst has samples. dst must be
 * a built profile or a read one (it is indexed on first use). 0, or -1 with err (dst may
 * then hold part of src). */
int profile_merge(struct profile *dst, const struct profile *src, ms_error *err);

/* --- files --- */

/* Writes gzip-compressed pprof when gzip != 0, else raw protobuf. Atomic (see above). */
int profile_write(const struct profile *p, const char *path, int gzip, ms_error *err);

/* Writes the same bytes to an open descriptor in place (a device, a FIFO, standard output):
 * not atomic, nothing renamed or truncated. name is used in the error message. */
int profile_write_fd(const struct profile *p, int fd, int gzip, const char *name, ms_error *err);

/* Reads gzip or raw pprof from a file ("-" = stdin) or from memory; validates everything. */
int profile_read(const char *path, struct profile **out, ms_error *err);
int profile_read_mem(const uint8_t *buf, size_t len, struct profile **out, ms_error *err);

/* Index of the sample type named `type`, or -1. */
int profile_find_sample_type(const struct profile *p, const char *type);

void profile_free(struct profile *p);

#endif
