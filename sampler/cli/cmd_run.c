/*
 * cmd_run.c - `memsnap run [-o FILE] [--rate BYTES] -- <command> [args...]`: profile a Python
 * command from its first line.
 *
 * memsnap is a transparent wrapper here: the command keeps memsnap's stdin, stdout, stderr,
 * process group and environment, and memsnap exits with the command's status (re-raising
 * the signal that killed it, so a shell sees the same). memsnap's own output is at most a
 * line or two on stderr.
 *
 * Signals: the terminal sends SIGINT/SIGQUIT/SIGTSTP to the whole foreground process group,
 * so the command gets them directly; memsnap ignores them while the command runs. SIGTERM and
 * SIGHUP sent to memsnap alone are forwarded to the command. Before launch_start returns (the
 * traced startup window, tens of milliseconds) memsnap still has its default dispositions;
 * a signal that kills it then also kills the command (PTRACE_O_EXITKILL), which is what the
 * sender wanted.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "error.h"
#include "launch.h"
#include "output.h"
#include "profile.h"
#include "progress.h"
#include "run_record.h"

static const char run_usage[] =
    "usage: memsnap run [-o FILE] [--rate BYTES] -- <command> [args...]\n"
    "\n"
    "Runs a Python command and records every allocation from its first line (the hook is\n"
    "installed when the interpreter is initialised, before the main module runs).\n"
    "\n"
    "  -o, --output FILE  where to write the profile (default memsnap-<pid>-<time>.pb)\n"
    "  --rate BYTES       sample one allocation per BYTES on average (suffix k, m or g)\n"
    "                     instead of recording every allocation (1, the default, is exact)\n"
    "\n"
    "The command's stdin, stdout, stderr, signals and exit status pass through.\n";

struct run_opts {
    const char *output; /* NULL: memsnap-<pid>-<time>.pb */
    uint64_t rate;
    char **command; /* NULL-terminated */
};

/* Returns 0 when the command should run, or -1 when memsnap must exit at once with
 * *status (after --help, or a usage error already reported). */
static int parse_args(int argc, char **argv, struct run_opts *o, int *status)
{
    *status = MS_EXIT_USAGE;
    o->output = NULL;
    o->rate = 1;
    o->command = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(run_usage, stdout);
            *status = MS_EXIT_OK;
            return -1;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                ms_report("run: -o needs a file name; see 'memsnap run --help'.");
                return -1;
            }
            o->output = argv[++i];
            continue;
        }
        if (!strcmp(a, "--rate")) {
            if (i + 1 >= argc || args_parse_size(argv[i + 1], 1ull << 40, &o->rate) < 0) {
                ms_report("run: --rate needs a number of bytes between 1 and 2^40 (e.g. 1, 4096, "
                          "512k).");
                return -1;
            }
            i++;
            continue;
        }
        if (a[0] == '-') {
            char msg[256];
            snprintf(msg, sizeof msg, "run: unknown option '%.100s'; see 'memsnap run --help'.", a);
            ms_report(msg);
            return -1;
        }
        break; /* the command starts here (the "--" is optional) */
    }
    if (i >= argc) {
        ms_report("run: no command given; usage: memsnap run [-o FILE] [--rate BYTES] -- "
                  "<command> [args...]");
        return -1;
    }
    o->command = argv + i;
    return 0;
}

/* ---- signals while the command runs ---- */

static volatile sig_atomic_t forward_pid;

static void forward_signal(int sig)
{
    int saved = errno;
    if (forward_pid > 0)
        kill((pid_t)forward_pid, sig);
    errno = saved;
}

static void signals_while_running(pid_t child)
{
    forward_pid = child;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    sigaction(SIGTSTP, &ign, NULL);
    /* SA_RESTART: memsnap's own reads and waits carry on after forwarding. */
    struct sigaction fwd = {.sa_handler = forward_signal, .sa_flags = SA_RESTART};
    sigemptyset(&fwd.sa_mask);
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);
}

/* Job control: when the terminal stops the command (Ctrl-Z: SIGTSTP to the foreground
 * group, which memsnap ignores), memsnap stops too, so the shell sees its job stopped and
 * gives the prompt back; `fg`/`bg` continue the whole group, memsnap included. A SIGSTOP
 * sent to the command alone is not mirrored: whoever sent it may SIGCONT the command alone,
 * and memsnap would then stay stopped. */
static void mirror_stop(int status)
{
    int sig = WSTOPSIG(status);
    if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
        raise(SIGSTOP);
}

/* Waits for the child's end (flags 0) or checks for it (WNOHANG), mirroring job-control
 * stops. Returns 1 when it ended (*status, *ru filled), 0 when it is
 * still running, -1 when it cannot be waited for. */
static int child_poll(pid_t pid, int flags, int *status, struct rusage *ru)
{
    for (;;) {
        pid_t r = wait4(pid, status, flags | WUNTRACED, ru);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (WIFSTOPPED(*status)) {
            mirror_stop(*status);
            continue;
        }
        return 1;
    }
}

/* memsnap's exit status for the child's wait status: the same code, or the same signal
 * re-raised on memsnap with its default disposition (no core file of memsnap's own). */
static int exit_like(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (!WIFSIGNALED(status))
        return MS_EXIT_FAIL;
    int sig = WTERMSIG(status);
    forward_pid = 0;
    fflush(NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    /* Still here: a signal whose default is to ignore. Report it as a shell would. */
    return 128 + sig;
}

/* Lets the command run unprofiled to its end and mirrors its status. */
static int run_unprofiled(pid_t pid)
{
    int status;
    struct rusage ru;
    if (child_poll(pid, 0, &status, &ru) < 0) {
        ms_report("run: lost track of the command (wait failed).");
        return MS_EXIT_FAIL;
    }
    return exit_like(status);
}

/* ---- the profiled run ---- */

/* Waits for the child's death while recording; leaves it unreaped (a zombie) so that its
 * end can be told apart from memsnap's own trouble, and mirrors job-control stops. */
static void record_until_exit(struct run_record *rr, pid_t pid)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno != EINTR)
            return; /* not our child any more: nothing left to record */
        if (si.si_pid == pid)
            return;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOHANG) == 0 && si.si_pid == pid) {
            run_record_hold(rr);
            int sig = si.si_status;
            if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
                raise(SIGSTOP);
            continue;
        }
        /* A busy ring is drained again at once; a quiet one is looked at every 2 ms. */
        if (run_record_poll(rr) > 0)
            continue;
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
}

static void default_output(char *out, size_t n, pid_t pid)
{
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32] = "now";
    if (localtime_r(&now, &tm))
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(out, n, "memsnap-%d-%s.pb", (int)pid, stamp);
}

/* "183,000" */
static void format_count(char *out, size_t n, uint64_t v)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = 0;
}

/* Records the detached child to its end, writes the profile, and returns the exit status
 * memsnap should have (the child's; 1 when the child succeeded but no profile was written). */
static int run_profiled(struct run_record *rr, pid_t pid, struct output *out, int named)
{
    record_until_exit(rr, pid);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (child_poll(pid, 0, &status, &ru) < 0) {
        ms_report("run: lost track of the command (wait failed).");
        return MS_EXIT_FAIL;
    }
    ms_error err;
    int wrote = 1;
    if (!named) {
        /* The default name holds the command's pid, known only now; its directory (the
         * current one) was checked before the command started. */
        char path[PATH_MAX];
        default_output(path, sizeof path, pid);
        output_close(out);
        wrote = output_prepare(out, path, &err) == 0;
    }
    wrote = wrote && run_record_end(rr, (int64_t)ru.ru_maxrss * 1024, &err) == 0 &&
            output_write(out, run_record_profile(rr), &err) == 0;
    const char *problem = run_record_problem(rr);
    if (problem)
        ms_report(problem);
    char msg[PATH_MAX + 1200];
    if (!wrote) {
        snprintf(msg, sizeof msg, "run: no profile written: %s", err.msg);
        ms_report(msg);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            return MS_EXIT_FAIL;
        return exit_like(status);
    }
    struct run_record_summary sum;
    run_record_summary(rr, &sum);
    char heap[32], count[32], dropped[64] = "";
    progress_format_bytes(heap, sizeof heap, sum.peak_heap);
    format_count(count, sizeof count, sum.allocations);
    if (sum.dropped) {
        char d[32];
        format_count(d, sizeof d, sum.dropped);
        snprintf(dropped, sizeof dropped, ", %s events dropped", d);
    }
    snprintf(msg, sizeof msg, "wrote %s (peak %s at %.1f s, %s allocations%s)",
             out->kind == OUTPUT_STDOUT ? "standard output" : out->given, heap,
             (double)sum.peak_time_ns / 1e9, count, dropped);
    ms_report(msg);
    return exit_like(status);
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    int status;
    if (parse_args(argc, argv, &o, &status) < 0)
        return status;

    struct launch l;
    ms_error err;
    /* The output is checked (a device opened) before the command starts, so a recording is
     * never lost to an output that could not be created. */
    struct output out;
    char probe[PATH_MAX];
    if (!o.output)
        default_output(probe, sizeof probe, getpid());
    if (output_prepare(&out, o.output ? o.output : probe, &err) < 0) {
        char m[sizeof err.msg + 64];
        snprintf(m, sizeof m, "run: %s; the command was not started.", err.msg);
        ms_report(m);
        return MS_EXIT_FAIL;
    }
    if (launch_start(o.command, &l, &err) < 0) {
        ms_report(err.msg);
        output_close(&out);
        return MS_EXIT_FAIL;
    }
    signals_while_running(l.pid);
    char msg[PATH_MAX + 128];
    switch (l.outcome) {
    case LAUNCH_EXITED:
        /* An exec failure was reported by the child itself. */
        if (l.exe[0] && l.py_runmain)
            snprintf(msg, sizeof msg,
                     "%s ended before its Python program started; nothing was profiled.",
                     o.command[0]);
        else if (l.exe[0])
            snprintf(msg, sizeof msg, "%s is not a supported CPython; nothing was profiled.",
                     o.command[0]);
        if (l.exe[0])
            ms_report(msg);
        return exit_like(l.wait_status);
    case LAUNCH_NOT_PYTHON:
        snprintf(msg, sizeof msg, "%s is not a supported CPython; running it without profiling.",
                 o.command[0]);
        ms_report(msg);
        return run_unprofiled(l.pid);
    case LAUNCH_AT_PY_RUNMAIN:
        break;
    }
    struct run_record rr;
    struct run_record_options ro = {.rate = o.rate, .command = o.command};
    if (run_record_begin(&rr, l.pid, &ro, &err) < 0) {
        ms_error derr;
        if (launch_detach(&l, &derr) < 0) {
            ms_report(derr.msg);
            launch_abort(&l);
            return MS_EXIT_FAIL;
        }
        snprintf(msg, sizeof msg, "%.900s; %.200s runs without profiling.", err.msg, o.command[0]);
        ms_report(msg);
        return run_unprofiled(l.pid);
    }
    if (launch_detach(&l, &err) < 0) {
        ms_report(err.msg);
        run_record_free(&rr);
        return run_unprofiled(l.pid);
    }
    int rc = run_profiled(&rr, l.pid, &out, o.output != NULL);
    run_record_free(&rr);
    output_close(&out);
    return rc;
}
