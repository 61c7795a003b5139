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
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define PY_RUNMAIN "Py_RunMain"

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

/* First mapping (lowest address) of a libpython3.X shared object: its path and the address
 * its file offset 0 is mapped at. Returns 1 found, 0 none, -1 error. */
static int find_libpython(pid_t pid, char *path, size_t pathn, uint64_t *base, ms_error *err)
{
    char maps_path[64];
    snprintf(maps_path, sizeof maps_path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(maps_path, "re");
    if (!f)
        return ms_error_errno(err, errno, "opening %s", maps_path);
    char line[PATH_MAX + 128];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long start, end, off;
        int pos = 0;
        if (sscanf(line, "%llx-%llx %*4s %llx %*s %*s %n", &start, &end, &off, &pos) < 3 ||
            pos <= 0 || off != 0)
            continue;
        char *p = line + pos;
        p[strcspn(p, "\n")] = 0;
        const char *name = strrchr(p, '/');
        if (!name || strncmp(name + 1, "libpython3.", 11) || !strstr(name, ".so"))
            continue;
        snprintf(path, pathn, "%s", p);
        *base = start;
        found = 1;
    }
    fclose(f);
    return found;
}

/* Looks up a defined function symbol in an ELF file (.symtab, then .dynsym) and the vaddr
 * of the first PT_LOAD's page. Returns 1 found, 0 not found (or not ELF), -1 error. */
static int elf_find_function(int fd, const char *name, uint64_t *value, uint64_t *load_vaddr,
                             uint64_t *file_entry)
{
    if (elf_version(EV_CURRENT) == EV_NONE)
        return -1;
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e)
        return 0;
    int found = 0;
    GElf_Ehdr eh;
    if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh))
        goto out;
    *file_entry = eh.e_entry;
    *load_vaddr = UINT64_MAX;
    size_t nph = 0;
    if (elf_getphdrnum(e, &nph) != 0)
        goto out;
    for (size_t i = 0; i < nph; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && ph.p_vaddr < *load_vaddr)
            *load_vaddr = ph.p_vaddr & ~(uint64_t)0xfff;
    }
    /* .symtab has every function when present; .dynsym is what a stripped file keeps. */
    static const GElf_Word tables[] = {SHT_SYMTAB, SHT_DYNSYM};
    for (size_t t = 0; t < 2 && !found; t++) {
        Elf_Scn *scn = NULL;
        while (!found && (scn = elf_nextscn(e, scn))) {
            GElf_Shdr sh;
            if (!gelf_getshdr(scn, &sh) || sh.sh_type != tables[t] || !sh.sh_entsize)
                continue;
            Elf_Data *data = elf_getdata(scn, NULL);
            size_t count = sh.sh_size / sh.sh_entsize;
            for (size_t i = 0; data && i < count; i++) {
                GElf_Sym sym;
                if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
                    GELF_ST_TYPE(sym.st_info) != STT_FUNC)
                    continue;
                const char *s = elf_strptr(e, sh.sh_link, sym.st_name);
                if (s && !strcmp(s, name)) {
                    *value = sym.st_value;
                    found = 1;
                    break;
                }
            }
        }
    }
out:
    elf_end(e);
    return found;
}

/* Finds Py_RunMain in the child, now stopped at its entry point: first in the executable
 * (Debian's python links libpython statically and exports it), else in libpython.
 * Returns 1 found, 0 not a CPython we know, -1 error. */
static int find_py_runmain(pid_t pid, uint64_t at_entry, struct launch *l, ms_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ms_error_errno(err, errno, "opening %s", path);
    uint64_t value = 0, load_vaddr = 0, file_entry = 0;
    int r = elf_find_function(fd, PY_RUNMAIN, &value, &load_vaddr, &file_entry);
    close(fd);
    if (r < 0)
        return ms_error_set(err, "libelf is unusable");
    if (r > 0) {
        /* The executable's load bias is exact from the kernel's own AT_ENTRY. */
        l->py_runmain = value + (at_entry - file_entry);
        snprintf(l->py_host, sizeof l->py_host, "%s", l->exe);
        return 1;
    }
    uint64_t base = 0;
    char libpath[PATH_MAX];
    r = find_libpython(pid, libpath, sizeof libpath, &base, err);
    if (r <= 0)
        return r;
    snprintf(path, sizeof path, "/proc/%d/root%s", (int)pid, libpath);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ms_error_errno(err, errno, "opening %s", libpath);
    r = elf_find_function(fd, PY_RUNMAIN, &value, &load_vaddr, &file_entry);
    close(fd);
    if (r <= 0)
        return r < 0 ? ms_error_set(err, "libelf is unusable") : 0;
    l->py_runmain = value - load_vaddr + base;
    snprintf(l->py_host, sizeof l->py_host, "%s", libpath);
    return 1;
}

/* ---- the child side ---- */

static void child_exec(char *const argv[])
{
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
        dprintf(2, "memsnap: cannot trace '%s': %s\n", argv[0], strerror(errno));
        _exit(126);
    }
    /* Wait here until the parent has set its ptrace options. */
    raise(SIGSTOP);
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
    long opts = PTRACE_O_TRACEEXEC | (on ? PTRACE_O_EXITKILL : 0);
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
    int r = find_py_runmain(l->pid, entry, l, err);
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
        } else {
            siginfo_t si;
            /* A group-stop (no siginfo) cannot be held with PTRACE_TRACEME; resuming is the
             * only option, and stop signals are held above so none should arise. */
            if (ptrace(PTRACE_GETSIGINFO, l->pid, NULL, &si) == 0)
                deliver = sig;
        }
        if (ptrace(PTRACE_CONT, l->pid, NULL, (void *)(long)deliver) < 0)
            return ms_error_errno(err, errno, "resuming the child %d", (int)l->pid);
    }
}

int launch_start(char *const argv[], struct launch *l, ms_error *err)
{
    memset(l, 0, sizeof *l);
    if (!argv || !argv[0])
        return ms_error_set(err, "no command to run");
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0)
        return ms_error_errno(err, errno, "fork");
    if (pid == 0)
        child_exec(argv);
    l->pid = pid;
    l->traced = 1;
    int status;
    if (wait_child(pid, &status, err) < 0)
        goto fail;
    if (!WIFSTOPPED(status)) {
        /* PTRACE_TRACEME failed and the child reported it. */
        l->traced = 0;
        l->outcome = LAUNCH_EXITED;
        l->wait_status = status;
        return 0;
    }
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
               (void *)(long)(PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL)) < 0) {
        ms_error_errno(err, errno, "setting ptrace options on the child %d", (int)pid);
        goto fail;
    }
    if (ptrace(PTRACE_CONT, pid, NULL, NULL) < 0) {
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
