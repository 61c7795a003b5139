/*
 * launch.c - fork/exec a command under ptrace and stop it at Py_RunMain (see launch.h).
 *
 * The child is stopped three times at most: at exec (the new image is mapped, ld.so has
 * not run), at the program's entry point (every DT_NEEDED library, libpython included, is
 * mapped and relocated, no program code has run), and at Py_RunMain. Each int3 is removed
 * as soon as it is hit, so at any instant at most one byte of the child's code differs
 * from its file.
 */
#include "launch.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elf_remote.h"
#include "elf_symbols.h"
#include "proc_maps.h"

#define PY_RUNMAIN "Py_RunMain"

/* Options kept for the whole traced window. TRACESYSGOOD: the injector, which takes over the
 * stopped thread at Py_RunMain, tells its marker syscall-stops from signals by it. */
#define LAUNCH_PTRACE_OPTIONS (PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD)

/* How many wrapper images (env, shells) in a row the launcher follows before giving up. */
#define LAUNCH_MAX_WRAPPER_HOPS 8

/* What the child is expected to hit next. */
enum bp_stage {
    BP_NONE = 0, /* waiting for an exec */
    BP_ENTRY,    /* the int3 is on the program's entry point */
    BP_RUNMAIN,  /* the int3 is on Py_RunMain */
};

struct breakpoint {
    enum bp_stage stage;
    uint64_t addr;
    long saved_word; /* the 8 bytes at addr before the int3 went in */
};

/* ---- small ptrace helpers ---- */

static int bp_insert(pid_t pid, struct breakpoint *bp, uint64_t addr, enum bp_stage stage,
                     ms_error *err)
{
    errno = 0;
    long word = ptrace(PTRACE_PEEKTEXT, pid, (void *)addr, NULL);
    if (errno)
        return ms_error_errno(err, errno, "reading the child's code at 0x%llx",
                              (unsigned long long)addr);
    long patched = (long)(((unsigned long)word & ~0xfful) | 0xccul);
    if (ptrace(PTRACE_POKETEXT, pid, (void *)addr, (void *)patched) < 0)
        return ms_error_errno(err, errno, "writing a breakpoint at 0x%llx",
                              (unsigned long long)addr);
    bp->stage = stage;
    bp->addr = addr;
    bp->saved_word = word;
    return 0;
}

/* Puts the original byte back and rewinds rip onto it (the int3 left rip one past it). */
static int bp_remove_and_rewind(pid_t pid, struct breakpoint *bp, ms_error *err)
{
    if (ptrace(PTRACE_POKETEXT, pid, (void *)bp->addr, (void *)bp->saved_word) < 0)
        return ms_error_errno(err, errno, "removing the breakpoint at 0x%llx",
                              (unsigned long long)bp->addr);
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) < 0)
        return ms_error_errno(err, errno, "reading the child's registers");
    regs.rip = bp->addr;
    if (ptrace(PTRACE_SETREGS, pid, NULL, &regs) < 0)
        return ms_error_errno(err, errno, "rewinding the child's instruction pointer");
    bp->stage = BP_NONE;
    return 0;
}

/* 1 when this SIGTRAP stop is our int3 at bp->addr (not a SIGTRAP someone sent). */
static int bp_is_hit(pid_t pid, const struct breakpoint *bp)
{
    if (bp->stage == BP_NONE)
        return 0;
    siginfo_t si;
    if (ptrace(PTRACE_GETSIGINFO, pid, NULL, &si) < 0 || si.si_code != SI_KERNEL)
        return 0;
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) < 0)
        return 0;
    return regs.rip == bp->addr + 1;
}

/* ---- facts about the exec'd image, from /proc ---- */

static int read_auxv_entry(pid_t pid, uint64_t *entry, ms_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/auxv", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ms_error_errno(err, errno, "opening %s", path);
    Elf64_auxv_t av[128];
    ssize_t n = read(fd, av, sizeof av);
    close(fd);
    if (n < 0)
        return ms_error_errno(err, errno, "reading %s", path);
    for (size_t i = 0; i < (size_t)n / sizeof av[0] && av[i].a_type != AT_NULL; i++) {
        if (av[i].a_type == AT_ENTRY) {
            *entry = av[i].a_un.a_val;
            return 0;
        }
    }
    return ms_error_set(err, "%s has no AT_ENTRY", path);
}

static void read_exe_path(pid_t pid, char *out, size_t n)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
    ssize_t len = readlink(link, out, n - 1);
    out[len > 0 ? (size_t)len : 0] = 0;
}

/* Programs that commonly stand between the command line and python and end by exec'ing it:
 * `#!/usr/bin/env python3` scripts, pyenv's shims (bash scripts ending in `exec python`),
 * `sh -c 'exec python3 ...'`. */
static int is_wrapper(const char *exe)
{
    static const char *const names[] = {"env", "sh", "bash", "dash"};
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(base, names[i]))
            return 1;
    return 0;
}

/* Looks PY_RUNMAIN up in one mapped file. Returns 1 found (l->py_runmain, l->py_host set),
 * 0 not there, -1 error. exe_entry: for the executable (opened through /proc/PID/exe), the
 * kernel's AT_ENTRY, which gives its load bias exactly; 0 for a library. */
static int lookup_in(struct launch *l, const struct proc_maps *maps, const struct proc_map *map,
                     uint64_t at_entry, ms_error *err)
{
    /* A library through the funnel (its proven file, else its loaded symbols); the
     * executable through /proc/PID/exe, which is the very file the kernel executed. */
    struct elf_image *img = NULL;
    if (map) {
        if (elf_remote_open_image(l->pid, maps, map, &img, NULL, err) < 0)
            return -1;
    } else {
        int fd = proc_maps_open_exe(l->pid, err);
        if (fd < 0 || elf_image_open_fd(fd, l->exe, &img, err) < 0)
            return -1;
    }
    struct elf_symbol sym;
    ms_error miss;
    int found = elf_image_find_symbol(img, PY_RUNMAIN, &sym, &miss) == 0 && sym.type == STT_FUNC;
    if (found && map) {
        uint64_t vaddr = 0, off = 0;
        if (elf_image_first_load(img, &vaddr, &off, err) < 0) {
            elf_image_close(img);
            return -1;
        }
        l->py_runmain = sym.value + elf_load_bias(proc_maps_file_base(maps, map), vaddr);
    } else if (found) {
        l->py_runmain = sym.value + (at_entry - elf_image_entry(img));
    }
    if (found)
        snprintf(l->py_host, sizeof l->py_host, "%s", map ? map->path : l->exe);
    elf_image_close(img);
    return found;
}

/* Finds Py_RunMain in the child, now stopped at its entry point: first in the executable
 * (Debian's python links libpython statically and exports it), else in libpython.
 * Returns 1 found, 0 not a CPython we know, -1 error. */
static int find_py_runmain(struct launch *l, uint64_t at_entry, ms_error *err)
{
    int r = lookup_in(l, NULL, NULL, at_entry, err);
    if (r != 0)
        return r;
    struct proc_maps maps;
    if (proc_maps_read(l->pid, &maps, err) < 0)
        return -1;
    const struct proc_map *lib = proc_maps_find_libpython(&maps);
    r = lib ? lookup_in(l, &maps, lib, 0, err) : 0;
    proc_maps_free(&maps);
    return r;
}

/* ---- the child side ---- */

/* Runs in the forked child: waits until memsnap has seized it (one byte on the pipe), then
 * execs. Without that byte (memsnap died first) it exits rather than run untraced. */
static void child_exec(char *const argv[], int go_fd)
{
    char go;
    ssize_t n;
    while ((n = read(go_fd, &go, 1)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        _exit(126);
    close(go_fd);
    execvp(argv[0], argv);
    int e = errno;
    dprintf(2, "memsnap: cannot run '%s': %s\n", argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

/* ---- the parent side ---- */

static int is_stop_signal(int sig)
{
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

static int wait_child(pid_t pid, int *status, ms_error *err)
{
    for (;;) {
        if (waitpid(pid, status, __WALL) == pid)
            return 0;
        if (errno != EINTR)
            return ms_error_errno(err, errno, "waiting for the child %d", (int)pid);
    }
}

static int detach_running(struct launch *l, ms_error *err)
{
    int sig = l->held_stop_signal;
    l->held_stop_signal = 0;
    l->traced = 0;
    if (ptrace(PTRACE_DETACH, l->pid, NULL, (void *)(long)sig) < 0)
        return ms_error_errno(err, errno, "detaching from the child %d", (int)l->pid);
    return 0;
}

/* PTRACE_O_EXITKILL only while one of our int3s is planted (or the injected call is in
 * flight): a wrapper followed while it waits for its exec must survive memsnap's death. */
static int set_exitkill(pid_t pid, int on, ms_error *err)
{
    long opts = LAUNCH_PTRACE_OPTIONS | (on ? PTRACE_O_EXITKILL : 0);
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)opts) < 0)
        return ms_error_errno(err, errno, "setting ptrace options on the child %d", (int)pid);
    return 0;
}

/* Called at each exec stop: plants the entry breakpoint, or, for a wrapper, waits for its
 * next exec untied from memsnap. */
static int on_exec(struct launch *l, struct breakpoint *bp, int *hops, ms_error *err)
{
    read_exe_path(l->pid, l->exe, sizeof l->exe);
    bp->stage = BP_NONE; /* any int3 of the old image vanished with it */
    if (is_wrapper(l->exe) && (*hops)++ < LAUNCH_MAX_WRAPPER_HOPS)
        return set_exitkill(l->pid, 0, err);
    uint64_t entry = 0;
    if (read_auxv_entry(l->pid, &entry, err) < 0 || set_exitkill(l->pid, 1, err) < 0)
        return -1;
    return bp_insert(l->pid, bp, entry, BP_ENTRY, err);
}

/* At the entry point: returns 1 when the Py_RunMain breakpoint is planted, 0 when the image
 * is not a CPython we know, -1 on error. */
static int on_entry(struct launch *l, struct breakpoint *bp, ms_error *err)
{
    uint64_t entry = bp->addr;
    if (bp_remove_and_rewind(l->pid, bp, err) < 0)
        return -1;
    int r = find_py_runmain(l, entry, err);
    if (r <= 0)
        return r;
    if (bp_insert(l->pid, bp, l->py_runmain, BP_RUNMAIN, err) < 0)
        return -1;
    return 1;
}

static int run_to_py_runmain(struct launch *l, ms_error *err)
{
    struct breakpoint bp = {0};
    int hops = 0;
    for (;;) {
        int status;
        if (wait_child(l->pid, &status, err) < 0)
            return -1;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            l->traced = 0;
            l->outcome = LAUNCH_EXITED;
            l->wait_status = status;
            return 0;
        }
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        int deliver = 0;
        if (sig == SIGTRAP && (status >> 16) == PTRACE_EVENT_EXEC) {
            if (on_exec(l, &bp, &hops, err) < 0)
                return -1;
        } else if (sig == SIGTRAP && bp_is_hit(l->pid, &bp)) {
            if (bp.stage == BP_RUNMAIN) {
                if (bp_remove_and_rewind(l->pid, &bp, err) < 0)
                    return -1;
                l->outcome = LAUNCH_AT_PY_RUNMAIN;
                return 0;
            }
            int r = on_entry(l, &bp, err);
            if (r < 0)
                return -1;
            if (r == 0) {
                l->outcome = LAUNCH_NOT_PYTHON;
                return detach_running(l, err);
            }
        } else if (is_stop_signal(sig) && bp.stage == BP_NONE) {
            /* A wrapper (or the pre-exec child) asked to stop: stop following it. */
            l->held_stop_signal = sig;
            l->outcome = LAUNCH_NOT_PYTHON;
            return detach_running(l, err);
        } else if (is_stop_signal(sig)) {
            l->held_stop_signal = sig;
        } else if ((status >> 16) != PTRACE_EVENT_STOP) {
            deliver = sig;
        } /* else a group-stop: none can arise, stop signals are held above; resume */
        if (ptrace(PTRACE_CONT, l->pid, NULL, (void *)(long)deliver) < 0)
            return ms_error_errno(err, errno, "resuming the child %d", (int)l->pid);
    }
}

int launch_start(char *const argv[], struct launch *l, ms_error *err)
{
    memset(l, 0, sizeof *l);
    if (!argv || !argv[0])
        return ms_error_set(err, "no command to run");
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return ms_error_errno(err, errno, "creating a pipe");
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        close(go[0]);
        close(go[1]);
        return ms_error_errno(err, errno, "fork");
    }
    if (pid == 0) {
        close(go[1]);
        child_exec(argv, go[0]);
    }
    close(go[0]);
    l->pid = pid;
    /* PTRACE_SEIZE (not TRACEME + SIGSTOP): no signal is involved in starting, and group
     * stops and PTRACE_INTERRUPT keep their seize semantics for the injector. */
    if (ptrace(PTRACE_SEIZE, pid, NULL, (void *)(long)(LAUNCH_PTRACE_OPTIONS | PTRACE_O_EXITKILL)) <
        0) {
        ms_error_errno(err, errno, "tracing the child %d (ptrace)", (int)pid);
        close(go[1]);
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        goto fail;
    }
    l->traced = 1;
    ssize_t n;
    while ((n = write(go[1], "g", 1)) < 0 && errno == EINTR)
        ;
    close(go[1]);
    if (n != 1) {
        ms_error_errno(err, errno, "starting the child %d", (int)pid);
        goto fail;
    }
    if (run_to_py_runmain(l, err) < 0)
        goto fail;
    return 0;
fail:
    ms_error_prefix(err, "starting '%s'", argv[0]);
    launch_abort(l);
    return -1;
}

int launch_detach(struct launch *l, ms_error *err)
{
    if (!l->traced)
        return 0;
    /* The injector may have left the child at a syscall stop, where PTRACE_DETACH's signal
     * argument is not honoured: queue the held stop signal instead; it is delivered as soon
     * as the child runs untraced. */
    if (l->held_stop_signal) {
        kill(l->pid, l->held_stop_signal);
        l->held_stop_signal = 0;
    }
    return detach_running(l, err);
}

void launch_abort(struct launch *l)
{
    if (!l->traced || l->pid <= 0)
        return;
    kill(l->pid, SIGKILL);
    int status;
    while (waitpid(l->pid, &status, __WALL) < 0 && errno == EINTR)
        ;
    l->traced = 0;
}
