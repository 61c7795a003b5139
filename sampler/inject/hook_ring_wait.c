/*
 * hook_ring_wait.c - polls a hook's memfd, through /proc/PID/fd/N, until its header state is
 * set; see hook_ring_wait.h.
 */
#include "hook_ring_wait.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hook/hook_abi.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 while /proc/PID/fd/N still names the hook's memfd, 0 once it names anything else. */
static int still_ring(const char *path)
{
    char target[128];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return 0;
    target[n] = 0;
    static const char want[] = "/memfd:" MSHOOK_MEMFD_NAME;
    return strncmp(target, want, sizeof want - 1) == 0;
}

int hook_ring_wait(pid_t pid, int remote_fd, int timeout_ms, ms_error *err)
{
    if (remote_fd < 0)
        return ms_error_set(err, "the hook returned no ring descriptor (%d)", remote_fd);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, remote_fd);
    if (!still_ring(path))
        return ms_error_set(err, "descriptor %d of process %d is not the memsnap hook's ring",
                            remote_fd, (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ms_error_errno(err, errno, "opening the hook's ring %s", path);
    long long deadline = now_ms() + timeout_ms;
    int rc = -1;
    for (int polls = 0;; polls++) {
        struct stat st;
        uint32_t state = 0;
        if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(struct mshook_shared) &&
            pread(fd, &state, sizeof state, offsetof(struct mshook_shared, state)) ==
                (ssize_t)sizeof state &&
            state != 0) {
            rc = 0;
            break;
        }
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            ms_error_set(err, "process %d exited before the memsnap hook was ready", (int)pid);
            break;
        }
        if (!still_ring(path)) {
            ms_error_set(err,
                         "the memsnap hook in process %d could not set up its shared ring "
                         "(out of memory?)",
                         (int)pid);
            break;
        }
        if (now_ms() > deadline) {
            ms_error_set(err, "the memsnap hook in process %d did not set up its ring within %d ms",
                         (int)pid, timeout_ms);
            break;
        }
        /* The install thread usually needs well under a millisecond. */
        struct timespec pause = {0, polls < 50 ? 100000 : 2000000};
        nanosleep(&pause, NULL);
    }
    close(fd);
    return rc;
}
