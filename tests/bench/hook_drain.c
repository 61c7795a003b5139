/*
 * hook_drain.c - the memsnap side of a hook benchmark run, without the rest of memsnap.
 *
 *   hook_drain RATE PYTHON LIB SCRIPT [ARGS...]
 *
 * Asks PYTHON for its version, builds the hook config for it (hook_config_build), runs
 * tests/py/hook_bench.py with it, maps the ring from the "hookfd N" line, waits for RECORDING,
 * says "go", then heartbeats and drains every 10 ms (as memsnap attach does) until the script
 * exits, copying the script's stdout to ours. HOOK_RING_BYTES overrides the ring size,
 * HOOK_DRAIN_MS the 10 ms between drains. Prints the
 * hook's counters to stderr and exits with the script's status; with HOOK_TIME_FILE set, writes the
 * script process's own "wall user sys" seconds there (as /usr/bin/time -f "%e %U %S"). Built by
 * scripts/bench.d/hook.sh against build/libmemsnap.a.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hook_config.h"
#include "hook_ring_wait.h"
#include "py_offsets.h"
#include "ring_reader.h"

static int count_event(void *ctx, const struct ring_event *ev)
{
    (void)ev;
    (*(unsigned long long *)ctx)++;
    return 0;
}

static int python_version(const char *python, int *major, int *minor)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import sys; print(*sys.version_info[:2])'", python);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int n = fscanf(f, "%d %d", major, minor);
    pclose(f);
    return n == 2 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: hook_drain RATE PYTHON LIB SCRIPT [ARGS...]\n");
        return 2;
    }
    int major, minor;
    if (python_version(argv[2], &major, &minor) != 0) {
        fprintf(stderr, "hook_drain: cannot ask %s its version\n", argv[2]);
        return 1;
    }
    const char *ring_env = getenv("HOOK_RING_BYTES");
    struct hook_config_params p = {
        .rate = strtoull(argv[1], NULL, 10),
        .ring_bytes = ring_env ? strtoull(ring_env, NULL, 10) : 0,
        .seed = 1,
        .memsnap_pid = getpid(),
    };
    struct mshook_config cfg;
    ms_error err = {{0}};
    if (hook_config_build(&cfg, py_offsets_find(major, minor),
                          (uint32_t)major << 24 | (uint32_t)minor << 16, &p, &err) != 0) {
        fprintf(stderr, "hook_drain: %s\n", err.msg);
        return 1;
    }
    char hex[2 * sizeof cfg + 1];
    for (size_t i = 0; i < sizeof cfg; i++)
        sprintf(hex + 2 * i, "%02x", ((const unsigned char *)&cfg)[i]);

    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0)
        return 1;
    const char *bench_py = getenv("HOOK_BENCH_PY");
    if (!bench_py) {
        fprintf(stderr, "hook_drain: set HOOK_BENCH_PY to tests/py/hook_bench.py\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(in[1]);
        char **args = calloc((size_t)argc + 4, sizeof *args);
        int k = 0;
        args[k++] = argv[2];
        args[k++] = (char *)bench_py;
        args[k++] = argv[3];
        args[k++] = hex;
        for (int i = 4; i < argc; i++)
            args[k++] = argv[i];
        execv(argv[2], args);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    FILE *child_out = fdopen(out[0], "r");
    char line[256];
    int fd = -1;
    if (!fgets(line, sizeof line, child_out) || sscanf(line, "hookfd %d", &fd) != 1) {
        fprintf(stderr, "hook_drain: no hookfd line from the script\n");
        kill(pid, SIGKILL);
        return 1;
    }
    struct ring_reader r;
    if (hook_ring_wait(pid, fd, 5000, &err) != 0 || ring_reader_open(pid, fd, &r, &err) != 0) {
        fprintf(stderr, "hook_drain: %s\n", err.msg);
        kill(pid, SIGKILL);
        return 1;
    }
    unsigned long long events = 0;
    while (ring_reader_state(&r) == MSHOOK_STATE_STARTING) {
        ring_reader_heartbeat(&r);
        usleep(1000);
    }
    if (write(in[1], "go\n", 3) != 3)
        return 1;
    /* Forward the script's output; drain every 10 ms until it closes stdout. */
    int outfd = fileno(child_out);
    const char *ms_env = getenv("HOOK_DRAIN_MS");
    int drain_ms = ms_env ? atoi(ms_env) : 10;
    for (;;) {
        struct pollfd pfd = {.fd = outfd, .events = POLLIN};
        int pr = poll(&pfd, 1, drain_ms);
        ring_reader_heartbeat(&r);
        if (ring_reader_drain(&r, count_event, &events, &err) < 0) {
            fprintf(stderr, "hook_drain: %s\n", err.msg);
            break;
        }
        if (pr > 0) {
            char buf[4096];
            ssize_t n = read(outfd, buf, sizeof buf);
            if (n <= 0)
                break;
            fwrite(buf, 1, (size_t)n, stdout);
        }
    }
    int status = 0;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const char *time_file = getenv("HOOK_TIME_FILE");
    FILE *tf = time_file ? fopen(time_file, "w") : NULL;
    if (tf) { /* the python process alone, as /usr/bin/time -f "%e %U %S" would print it */
        fprintf(tf, "%.3f %.3f %.3f\n",
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
        fclose(tf);
    }
    ring_reader_drain(&r, count_event, &events, &err);
    struct mshook_shared s;
    ring_reader_counters(&r, &s);
    fprintf(stderr,
            "hook_drain: rate %llu: %llu allocations, %llu sampled, %llu events drained, "
            "%llu dropped\n",
            (unsigned long long)cfg.rate, (unsigned long long)s.alloc_count,
            (unsigned long long)s.sampled_allocs, events, (unsigned long long)s.dropped_events);
    ring_reader_close(&r);
    fflush(stdout);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
