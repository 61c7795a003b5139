/*
 * cmd_attach.c - `memsnap attach <pid>... [--duration S] [-o FILE] [--rate BYTES] [--quiet]`.
 *
 * Records every given process concurrently from this one thread (each is a session, polled
 * every SESSION_DRAIN_INTERVAL_MS), for --duration seconds of recording each, or until
 * SIGINT/SIGTERM, then stops every hook cleanly and writes one profile per process.
 *
 * Output names: -o FILE for one pid; with several pids the pid is inserted before the
 * extension (leak.pb -> leak-1234.pb); default memsnap-<pid>-<YYYYmmdd-HHMMSS>.pb. A process
 * that exits during the window still gets its profile (what was recorded until it exited);
 * that is reported and is not a failure. Exit status 1 if any process could not be recorded.
 *
 * --stats prints, per process on stderr, the attach latency (command start -> hook
 * recording), the injection's longest pause of the target thread (for benchmarks), and
 * whether the hook routes sampled blocks through the raw domain (hook/hook_alloc.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "hook_config.h"
#include "output.h"
#include "progress.h"
#include "session.h"

#define ATTACH_MAX_PIDS 64

static const char attach_usage[] =
    "usage: memsnap attach <pid>... [--duration S] [-o FILE] [--rate BYTES] [--quiet]\n"
    "\n"
    "Injects memsnap's allocation hook into running CPython processes (3.8-3.14), records\n"
    "which Python stacks allocate and keep memory, detaches, and writes a pprof profile per\n"
    "process (render it with 'memsnap render FILE > out.svg').\n"
    "\n"
    "  --duration S   record S seconds, or 500ms, 30s, 5m, 1h (default: until Ctrl-C)\n"
    "  -o FILE        output file (several pids: the pid is inserted before the extension);\n"
    "                 default memsnap-<pid>-<YYYYmmdd-HHMMSS>.pb\n"
    "  --rate BYTES   mean bytes between sampled allocations (suffix k, m or g for KiB,\n"
    "                 MiB, GiB; 1 = every allocation); default 512k\n"
    "  --quiet        no progress line\n"
    "  --stats        print attach latency, the target's longest pause and the hook's\n"
    "                 way of seeing frees to stderr\n";

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int parse_pid(const char *s, pid_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 4194304) /* PID_MAX_LIMIT */
        return -1;
    *out = (pid_t)v;
    return 0;
}

/* The output path of one process. */
static void output_path(char *out, size_t n, const char *given, pid_t pid, int several,
                        time_t started)
{
    if (!given) {
        struct tm tm;
        localtime_r(&started, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(out, n, "memsnap-%d-%s.pb", (int)pid, stamp);
        return;
    }
    if (!several) {
        snprintf(out, n, "%s", given);
        return;
    }
    const char *slash = strrchr(given, '/');
    const char *dot = strrchr(given, '.');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : given))
        snprintf(out, n, "%s-%d", given, (int)pid);
    else
        snprintf(out, n, "%.*s-%d%s", (int)(dot - given), given, (int)pid, dot);
}

struct attached {
    struct session *s;
    pid_t pid;
    int done;     /* stopped or ended */
    int failed;   /* nothing to write */
    int reported; /* an error of this process was already printed */
};

/* session_options.idle: keeps the already attached sessions' heartbeats fresh while a
 * later one waits to retry its start. */
struct heartbeat_all {
    struct attached *att;
    int n;
};

static void heartbeat_attached(void *ctx)
{
    struct heartbeat_all *hb = ctx;
    for (int i = 0; i < hb->n; i++)
        if (hb->att[i].s)
            session_heartbeat(hb->att[i].s);
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "memsnap attach: %s; see 'memsnap attach --help'\n", msg);
    return MS_EXIT_USAGE;
}

static int signal_is_crash(int sig)
{
    return sig == SIGQUIT || sig == SIGILL || sig == SIGTRAP || sig == SIGABRT || sig == SIGBUS ||
           sig == SIGFPE || sig == SIGSEGV || sig == SIGSYS || sig == SIGXCPU || sig == SIGXFSZ;
}

/* Writes one process's profile and prints where. 0, -1 (reported), or 1: written, but the
 * target crashed (a core-dumping signal) during the recording. */
static int write_one(struct attached *a, struct output *out)
{
    ms_error err;
    struct session_summary sum;
    session_summary(a->s, &sum);
    if (sum.attach_ns == 0 && a->reported)
        return -1; /* its one sentence was printed when it failed */
    if (sum.attach_ns == 0) {
        char msg[160];
        if (sum.target_exited || kill(a->pid, 0) < 0) /* the exit race's one sentence */
            snprintf(msg, sizeof msg,
                     "process %d exited while memsnap was attaching to it; nothing was recorded",
                     (int)a->pid);
        else
            snprintf(msg, sizeof msg,
                     "process %d: the hook never started recording (the interpreter did not "
                     "release its GIL, or is shutting down); nothing was written",
                     (int)a->pid);
        ms_report(msg);
        return -1;
    }
    struct profile *p = session_build(a->s, &err);
    if (!p) {
        ms_report(err.msg);
        return -1;
    }
    if (output_write(out, p, &err) < 0) {
        ms_error_prefix(&err, "process %d", (int)a->pid);
        ms_report(err.msg);
        return -1;
    }
    int inuse = profile_find_sample_type(p, "inuse_space");
    int64_t in_use = 0;
    for (size_t i = 0; inuse >= 0 && i < p->n_samples; i++)
        in_use += p->values[i * p->n_sample_types + (size_t)inuse];
    char bytes[32];
    progress_format_bytes(bytes, sizeof bytes, in_use);
    /* A stream may be stdout itself (-, /dev/stdout): then this line goes to stderr. */
    FILE *say = output_is_stream(out) ? stderr : stdout;
    fprintf(say, "wrote %s: %llu samples, %s in use, %.1f s",
            out->kind == OUTPUT_STDOUT ? "standard output" : out->given,
            (unsigned long long)sum.samples, bytes, (double)p->meta.duration_ns / 1e9);
    if (sum.dropped_events)
        fprintf(say, " (%llu events dropped)", (unsigned long long)sum.dropped_events);
    if (sum.target_exited)
        fprintf(say, " (process %d %s during the recording)", (int)a->pid,
                sum.exit_signal ? "was killed by a signal" : "exited");
    if (sum.allocator_replaced)
        fprintf(say, " (ended early: the allocator was replaced)");
    fprintf(say, "\n");
    fflush(say);
    /* The notes, one line each on stderr (they are in the profile's comments too). */
    for (int which = 0; which < SESSION_NOTES; which++) {
        char note[512];
        if (session_note(a->s, note, sizeof note, which) &&
            (which != SESSION_NOTE_EXIT || sum.exit_signal))
            fprintf(stderr, "memsnap: %s\n", note);
    }
    /* A target that died of a signal that dumps core (a crash: SIGSEGV, SIGABRT...) while we
     * recorded it may have died of us: that is no success. One killed from outside (SIGTERM,
     * SIGKILL, SIGINT, SIGHUP) is reported and the command succeeds, as for an exit. */
    return sum.exit_signal && signal_is_crash(sum.exit_signal) ? 1 : 0;
}

int cmd_attach(int argc, char **argv)
{
    pid_t pids[ATTACH_MAX_PIDS];
    int n_pids = 0, quiet = 0, stats = 0;
    double duration = 0;
    const char *given = NULL;
    uint64_t rate = HOOK_CONFIG_DEFAULT_RATE;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(attach_usage, stdout);
            return MS_EXIT_OK;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (!strcmp(a, "--stats")) {
            stats = 1;
        } else if (!strcmp(a, "--duration") || !strcmp(a, "-d")) {
            if (++i == argc || args_parse_duration(argv[i], 1e7, &duration) < 0)
                return usage_error("--duration needs a positive duration (e.g. 2.5, 30s, 5m, 1h)");
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (++i == argc || !argv[i][0])
                return usage_error("-o needs a file name");
            given = argv[i];
        } else if (!strcmp(a, "--rate")) {
            if (++i == argc || args_parse_size(argv[i], 1ull << 40, &rate) < 0)
                return usage_error("--rate needs a number of bytes >= 1 (e.g. 1, 4096, 512k)");
        } else if (a[0] == '-') {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown option '%.60s'", a);
            return usage_error(msg);
        } else {
            if (n_pids == ATTACH_MAX_PIDS)
                return usage_error("too many pids (at most 64)");
            if (parse_pid(a, &pids[n_pids]) < 0) {
                char msg[128];
                snprintf(msg, sizeof msg, "'%.60s' is not a process id", a);
                return usage_error(msg);
            }
            for (int k = 0; k < n_pids; k++)
                if (pids[k] == pids[n_pids])
                    return usage_error("a pid is given twice");
            n_pids++;
        }
    }
    if (n_pids == 0)
        return usage_error("no pid given");

    /* Every output is checked (and a device opened) before any process is touched. */
    time_t started = time(NULL);
    struct output *outs = calloc((size_t)n_pids, sizeof *outs);
    if (!outs) {
        ms_report("out of memory");
        return MS_EXIT_FAIL;
    }
    if (given && n_pids > 1) {
        ms_error err;
        struct output probe;
        if (output_prepare(&probe, given, &err) == 0 && output_is_stream(&probe)) {
            output_close(&probe);
            free(outs);
            return usage_error("-o names standard output, a device or a FIFO, which takes one "
                               "pid; with several pids -o is a file name that gets each pid");
        }
        output_close(&probe);
    }
    for (int i = 0; i < n_pids; i++) {
        char path[4096];
        ms_error err;
        output_path(path, sizeof path, given, pids[i], n_pids > 1, started);
        if (output_prepare(&outs[i], path, &err) < 0) {
            ms_error_prefix(&err, "nothing was attached");
            ms_report(err.msg);
            for (int k = 0; k < i; k++)
                output_close(&outs[k]);
            free(outs);
            return MS_EXIT_FAIL;
        }
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int64_t started_ns = now_ns();
    struct attached att[ATTACH_MAX_PIDS];
    struct heartbeat_all hb = {att, 0};
    struct session_options opt = {
        .rate = rate, .track_peak = 0, .idle = heartbeat_attached, .idle_ctx = &hb};
    int status = MS_EXIT_OK, live = 0;
    for (int i = 0; i < n_pids; i++) {
        ms_error err;
        att[i] = (struct attached){.pid = pids[i]};
        hb.n = i;
        if (stop_signal || session_attach(pids[i], &opt, &att[i].s, &err) < 0) {
            if (!stop_signal)
                ms_report(err.msg);
            att[i].failed = att[i].done = 1;
            status = MS_EXIT_FAIL;
            continue;
        }
        live++;
    }

    struct progress pr;
    progress_init(&pr, quiet);
    int64_t limit_ns = duration > 0 ? (int64_t)(duration * 1e9) : -1;
    while (live > 0) {
        int64_t now = now_ns();
        struct progress_status ps[ATTACH_MAX_PIDS];
        size_t n_ps = 0;
        for (int i = 0; i < n_pids; i++) {
            struct attached *a = &att[i];
            if (a->done)
                continue;
            ms_error err;
            int rc = session_poll(a->s, now, &err);
            if (rc < 0) {
                progress_clear(&pr);
                ms_report(err.msg);
                a->reported = 1;
                status = MS_EXIT_FAIL;
            }
            if (session_ended(a->s)) {
                a->done = 1;
                live--;
                continue;
            }
            struct session_summary sum;
            session_summary(a->s, &sum);
            int over = limit_ns > 0 && ((sum.attach_ns && sum.elapsed_ns >= limit_ns) ||
                                        (!sum.attach_ns && now - started_ns >= limit_ns + 5e9));
            if (over || stop_signal)
                session_request_stop(a->s, now);
            ps[n_ps++] = (struct progress_status){
                .pid = (int)a->pid,
                .elapsed_s = (double)sum.elapsed_ns / 1e9,
                .remaining_s = limit_ns <= 0 ? -1
                               : sum.elapsed_ns >= limit_ns
                                   ? 0
                                   : (double)(limit_ns - sum.elapsed_ns) / 1e9,
                .events = sum.events,
                .heap = sum.heap,
                .rss = sum.rss,
                .recording = sum.phase == SESSION_RECORDING,
            };
        }
        progress_show(&pr, now, ps, n_ps);
        if (live > 0) {
            struct timespec ts = {0, SESSION_DRAIN_INTERVAL_MS * 1000000l};
            nanosleep(&ts, NULL); /* a stop signal cuts it short */
        }
    }
    progress_clear(&pr);

    for (int i = 0; i < n_pids; i++) {
        struct attached *a = &att[i];
        if (a->failed)
            continue;
        if (stats) {
            struct session_summary sum;
            session_summary(a->s, &sum);
            fprintf(stderr,
                    "memsnap: stats pid=%d attach_ms=%.2f inject_total_ms=%.2f "
                    "inject_pause_ms=%.3f events=%llu dropped=%llu frees_via_raw=%d "
                    "invalid_stacks=%llu allocator_replaced=%d exit_signal=%d\n",
                    (int)a->pid, (double)sum.attach_ns / 1e6, (double)sum.inject_total_ns / 1e6,
                    (double)sum.inject_pause_ns / 1e6, (unsigned long long)sum.events,
                    (unsigned long long)sum.dropped_events, sum.frees_via_raw,
                    (unsigned long long)sum.invalid_stacks, sum.allocator_replaced,
                    sum.exit_signal);
        }
        if (write_one(a, &outs[i]) != 0)
            status = MS_EXIT_FAIL;
        session_free(a->s);
    }
    for (int i = 0; i < n_pids; i++)
        output_close(&outs[i]);
    free(outs);
    return status;
}
