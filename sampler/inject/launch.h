/*
 * launch.h - start a command under ptrace and stop it at the entry of Py_RunMain.
 *
 * `memsnap run` must install its allocation hook after the interpreter is initialised (the
 * allocators exist, the main thread holds the GIL) and before the main module runs (so every
 * import of the program is seen). Py_RunMain is exactly that point in every CPython 3.8+
 * (Py_BytesMain -> pymain_main -> Py_RunMain, measured out of line in Debian's static python
 * and in pyenv's shared builds). This module gets the command there:
 *
 *   fork; child: wait for one byte on a pipe, execvp (PATH lookup as a shell does; stdio,
 *   environment, process group, signal mask and dispositions are memsnap's, untouched).
 *   parent: PTRACE_SEIZE with PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL, send the byte, run to
 *   the exec stop, put a temporary int3 on the program's entry point (AT_ENTRY), run to it
 *   (ld.so has mapped libpython by then), restore it, find Py_RunMain (the executable's
 *   symbols for a static libpython, else libpython's), put an int3 there, run to it, restore
 *   it and rewind rip. The child is then in a ptrace signal-delivery-stop, seized by memsnap
 *   with PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL.
 *
 * Wrappers: a `#!/usr/bin/env python3` script execs env first, and pyenv's `python3` is a
 * bash shim that ends in `exec .../python3`. When the exec'd image is env, sh, bash or dash
 * the launcher follows it to its next exec (up to 8 in a row) instead of looking for Python
 * in it. Any other image without Py_RunMain is "not Python": the launcher detaches and the
 * command runs on, untraced.
 *
 * PTRACE_O_EXITKILL ties the child's fate to memsnap only while one of our int3s is planted
 * and until launch_detach (the injected call happens in that window; tens of milliseconds
 * in all): if memsnap died then, the child would resume on a broken instruction and die of
 * SIGTRAP or worse, later and confusingly. Before the first exec the child is still memsnap's
 * own code and is tied too. While a wrapper is followed, nothing ties them.
 *
 * Signals that reach the child while it is traced are passed on at once, except stop
 * signals (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), which are held and delivered at detach, so a
 * Ctrl-Z during startup stops the untraced program as it would have stopped anyway (a wrapper
 * that gets one is detached at once: memsnap stops following it).
 *
 * Limits: threads the program starts before Py_RunMain (only possible from a
 * sitecustomize/.pth file) are not traced, and one of them running into the int3 would kill
 * the process; CPython itself starts none there. A fork before Py_RunMain that does not exec
 * inherits the int3 (subprocess's fork+exec does not care).
 */
#ifndef MEMSNAP_LAUNCH_H
#define MEMSNAP_LAUNCH_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum launch_outcome {
    LAUNCH_AT_PY_RUNMAIN = 1, /* child traced and stopped at Py_RunMain's first instruction */
    LAUNCH_NOT_PYTHON = 2,    /* no Py_RunMain in the image (or a wrapper stopped or
                               * exec'd too often): child detached, running */
    LAUNCH_EXITED = 3,        /* child ended before Py_RunMain (exec failed, or it exited):
                               * reaped, status in wait_status */
};

struct launch {
    pid_t pid; /* the child; stays memsnap's child (reap it with wait4) */
    enum launch_outcome outcome;
    int wait_status;        /* LAUNCH_EXITED: the status wait4 returned */
    uint64_t py_runmain;    /* LAUNCH_AT_PY_RUNMAIN: its address in the child */
    char py_host[PATH_MAX]; /* the file Py_RunMain was found in (executable or libpython) */
    char exe[PATH_MAX];     /* the image that was finally exec'd (/proc/PID/exe) */
    int held_stop_signal;   /* private: stop signal to deliver at detach, 0 for none */
    int traced;             /* private: 1 while memsnap is the child's tracer */
};

/* Starts argv (argv[0] looked up in PATH; NULL-terminated) and runs it to Py_RunMain.
 * Returns 0 with l->outcome set; -1 with err when memsnap itself failed (fork, ptrace):
 * then the child, if any, has been killed and reaped. When execvp fails the child prints
 * "memsnap: cannot run '<cmd>': <reason>" to stderr and exits 127 (not found) or 126 (other),
 * as a shell would: outcome LAUNCH_EXITED. */
int launch_start(char *const argv[], struct launch *l, ms_error *err);

/* LAUNCH_AT_PY_RUNMAIN only: lets the child go (PTRACE_DETACH), delivering any held stop
 * signal. Afterwards the child runs untraced. Returns 0, or -1 with err (the child is gone). */
int launch_detach(struct launch *l, ms_error *err);

/* Kills (SIGKILL) and reaps a child still traced by memsnap, e.g. when injection failed in a
 * way that leaves it unusable. No-op otherwise. */
void launch_abort(struct launch *l);

#endif
