/*
 * testproc.h - what integration tests share: finding every installed CPython, starting real
 * Python processes with piped stdio, waiting for their "ready" lines, running the memsnap
 * binary, and checking that a process was not left stopped.
 */
#ifndef MEMSNAP_TESTPROC_H
#define MEMSNAP_TESTPROC_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct test_python {
    char path[PATH_MAX];
    char label[48]; /* "debian-3.11", "pyenv-3.8", ... */
    int major, minor;
    int debian; /* Debian's static, non-PIE /usr/bin/python3 */
};

/* Fills out[] with Debian's /usr/bin/python3 (when present) and pyenv's 3.8 .. 3.14.
 * For each one absent prints "SKIP: <what> is not installed" to stdout. Returns the count. */
int test_pythons(struct test_python *out, int max);

/* Absolute path of a file under tests/py/ (the test's helper Python programs). */
const char *test_py_script(const char *name);

/* Absolute path of the memsnap binary under test ($MEMSNAP, else build/memsnap). */
const char *test_memsnap(void);

struct test_proc {
    pid_t pid;
    int in_fd;  /* write end of the child's stdin, -1 if closed */
    int out_fd; /* read end of the child's stdout */
    char buf[65536];
    size_t len; /* bytes of stdout read so far (kept in buf, NUL-terminated) */
};

/* Starts argv[0] (a path) with stdin and stdout piped, stderr inherited, in its own process
 * group. Returns 0 or -1. */
int test_proc_spawn(struct test_proc *p, char *const argv[]);

/* Reads the child's stdout until a line starting with prefix arrives (copied, without the
 * newline, into line) or timeout_ms passes or EOF. Returns 0 when found, -1 otherwise. */
int test_proc_wait_line(struct test_proc *p, const char *prefix, char *line, size_t n,
                        int timeout_ms);

/* Writes s to the child's stdin. */
int test_proc_send(struct test_proc *p, const char *s);

/* Waits up to timeout_ms for exit; returns the wait status, or -1 on timeout. */
int test_proc_wait_exit(struct test_proc *p, int timeout_ms);

/* SIGKILLs (if still running) and reaps; closes the pipes. */
void test_proc_kill(struct test_proc *p);

/* 1 if any thread of pid is in state 't' (traced stop) or 'T' (stopped), else 0. */
int test_pid_has_stopped_thread(pid_t pid);

/* 1 if some thread of pid is traced by anyone (TracerPid != 0), else 0. */
int test_pid_is_traced(pid_t pid);

/* Runs the memsnap binary with args (NULL-terminated, without argv[0]); captures stdout and
 * stderr (NUL-terminated, truncated to the buffer). Returns the wait status, -1 on failure
 * to run, or -2 when it did not finish within timeout_ms (it is killed). */
int test_run_memsnap(char *const args[], char *out, size_t outn, char *err, size_t errn,
                     int timeout_ms);

/* Copies the executable src into a new directory under /tmp that every user may enter (0755,
 * the copy 0755), for running it as another user when the clone lives in a private directory.
 * Writes the copy's path into out. Returns 0, or -1 (nothing left behind). */
int test_copy_executable(const char *src, char *out, size_t n);

/* Removes a copy made by test_copy_executable and its directory. */
void test_remove_copy(const char *path);

/* Like test_run_memsnap for any argv (argv[0] a path). */
int test_run_capture(char *const argv[], char *out, size_t outn, char *err, size_t errn,
                     int timeout_ms);

/* Milliseconds on CLOCK_MONOTONIC. */
long long test_now_ms(void);

#endif
