/*
 * probe_lib.c - a tiny shared library the injector tests load into live processes
 * (built as build/tests/libprobe.so, never linked into a test binary).
 *
 * probe_start() proves that it ran, and with which argument, in three ways the test can
 * check from outside: its return value, the exported counters it bumps (read back with
 * remote_read), and a line it writes to a descriptor named in the argument.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* The argument memsnap copies into the target; mirrored in tests/integration/test_inject.c. */
struct probe_arg {
    uint64_t magic;
    int32_t write_fd; /* -1: write nothing */
    int32_t reserved;
    char text[64]; /* NUL-terminated line to write */
};

__attribute__((visibility("default"))) volatile int probe_runs;
__attribute__((visibility("default"))) volatile uint64_t probe_last_magic;

/* Returns the low 24 bits of magic plus the number of runs so far (this one included), or -1
 * without an argument. */
__attribute__((visibility("default"))) int probe_start(const struct probe_arg *arg)
{
    probe_runs++;
    if (!arg)
        return -1;
    probe_last_magic = arg->magic;
    if (arg->write_fd >= 0) {
        size_t n = strnlen(arg->text, sizeof arg->text);
        ssize_t w = write(arg->write_fd, arg->text, n);
        (void)w;
    }
    return (int)(arg->magic & 0xffffff) + probe_runs;
}
