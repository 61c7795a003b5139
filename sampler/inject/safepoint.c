/*
 * safepoint.c - picks the thread to hijack: ranks threads by what /proc says they are doing,
 * attaches the best candidate, and proves from its unwound native stack that it holds neither
 * the malloc nor the loader lock. Policy and reasons in safepoint.h.
 */
#include "safepoint.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "elf_remote.h"
#include "elf_symbols.h"
#include "native_unwind.h"
#include "proc_maps.h"

#define MAX_CANDIDATES    1024
#define MAX_FRAMES        512
#define ATTACH_TIMEOUT_MS 200
#define RETRY_SLEEP_MS    3

struct candidate {
    pid_t tid;
    int cls;
    uint64_t sp, pc; /* from /proc: where a blocked thread sits in user space; 0 if unknown */
};

/* What a process's libc and loader look like, for naming frames. */
struct frame_namer {
    struct proc_maps maps;
    const struct proc_map *libc, *ld, *exe;
    struct elf_image *libc_img;
    uint64_t libc_bias;
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int safepoint_syscall_class(const char *line)
{
    if (strncmp(line, "running", 7) == 0)
        return 2;
    char *end;
    long nr = strtol(line, &end, 10);
    if (end == line || nr < 0)
        return 2; /* "-1 sp pc": blocked outside a syscall (page fault, stop) */
    switch (nr) {
    case SYS_clock_nanosleep:
    case SYS_nanosleep:
    case SYS_select:
    case SYS_pselect6:
    case SYS_poll:
    case SYS_ppoll:
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
#endif
    case SYS_read:
    case SYS_readv:
    case SYS_pread64:
    case SYS_accept:
    case SYS_accept4:
    case SYS_recvfrom:
    case SYS_recvmsg:
    case SYS_wait4:
    case SYS_waitid:
    case SYS_pause:
    case SYS_rt_sigsuspend:
    case SYS_rt_sigtimedwait:
        return 0;
    case SYS_futex:
        return 1;
    case SYS_mmap:
    case SYS_munmap:
    case SYS_mremap:
    case SYS_brk:
    case SYS_mprotect:
    case SYS_madvise:
        return 3;
    default:
        return 2;
    }
}

int safepoint_libc_frame_unsafe(const char *name)
{
    static const char *const exact[] = {
        "malloc",         "free",           "calloc",         "realloc",      "reallocarray",
        "cfree",          "posix_memalign", "aligned_alloc",  "memalign",     "valloc",
        "pvalloc",        "mallinfo",       "mallinfo2",      "fork",         "_Fork",
        "vfork",          "exit",           "_exit",          "quick_exit",   "__cxa_finalize",
        "pthread_create", "pthread_join",   "pthread_detach", "pthread_exit", "__libc_freeres",
        "strdup",         "strndup",        "getdelim",       "getline",      "__call_tls_dtors",
    };
    static const char *const prefix[] = {
        "malloc_",     "__malloc",        "__libc_malloc", "__libc_calloc",  "__libc_realloc",
        "__libc_free", "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "dl",
        "_dl_",        "__libc_dl",       "__libc_fork",   "__libc_pthread",
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(name, exact[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
        if (strncmp(name, prefix[i], strlen(prefix[i])) == 0)
            return 1;
    return 0;
}

static int namer_open(pid_t pid, struct frame_namer *n, ms_error *err)
{
    memset(n, 0, sizeof *n);
    if (proc_maps_read(pid, &n->maps, err) < 0)
        return -1;
    n->libc = proc_maps_find_libc(&n->maps);
    n->ld = proc_maps_find_ld(&n->maps);
    n->exe = proc_maps_find_exe(&n->maps, pid);
    if (!n->libc) {
        proc_maps_free(&n->maps);
        return ms_error_set(err, "process %d has no glibc libc.so.6 mapped", (int)pid);
    }
    uint64_t vaddr, off;
    /* libc's names from the mapped libc: its proven file, or its dynamic symbols in memory. */
    if (elf_remote_open_image(pid, &n->maps, n->libc, &n->libc_img, NULL, err) < 0 ||
        elf_image_first_load(n->libc_img, &vaddr, &off, err) < 0) {
        elf_image_close(n->libc_img);
        proc_maps_free(&n->maps);
        return ms_error_prefix(err, "reading libc of process %d", (int)pid);
    }
    n->libc_bias = elf_load_bias(proc_maps_file_base(&n->maps, n->libc), vaddr);
    /* The first lookup sorts libc's symbols (about 1 ms): do it now, not with a thread
     * stopped. */
    struct elf_symbol sym;
    elf_image_symbol_at(n->libc_img, vaddr, &sym, NULL);
    return 0;
}

static void namer_close(struct frame_namer *n)
{
    elf_image_close(n->libc_img);
    proc_maps_free(&n->maps);
}

static int same_file(const struct proc_map *a, const struct proc_map *b)
{
    return a && b && a->inode == b->inode && a->dev_major == b->dev_major &&
           a->dev_minor == b->dev_minor && strcmp(a->path, b->path) == 0;
}

/* What stack_is_safe's frame visitor needs and finds. */
struct frame_check {
    const struct frame_namer *n;
    pid_t tid;
    char *reason;
    size_t rn;
};

/* A frame in the loader or an unsafe libc function stops the walk: 2 for the loader or a
 * dl* function, 3 for the others. */
static int frame_check(uint64_t ip, int depth, void *ctx)
{
    struct frame_check *c = ctx;
    const struct frame_namer *n = c->n;
    /* A return address points after its call; look the caller up by the call itself. */
    uint64_t pc = depth > 0 && ip > 0 ? ip - 1 : ip;
    const struct proc_map *m = proc_maps_find_addr(&n->maps, pc);
    if (m && same_file(m, n->ld)) {
        snprintf(c->reason, c->rn, "thread %d is inside the dynamic loader", (int)c->tid);
        return 2;
    }
    if (m && same_file(m, n->libc)) {
        struct elf_symbol sym;
        if (elf_image_symbol_at(n->libc_img, pc - n->libc_bias, &sym, NULL) == 0 &&
            safepoint_libc_frame_unsafe(sym.name)) {
            snprintf(c->reason, c->rn, "thread %d is inside %s()", (int)c->tid, sym.name);
            return strncmp(sym.name, "dl", 2) == 0 || strncmp(sym.name, "_dl", 3) == 0 ? 2 : 3;
        }
    }
    return 0;
}

/* Unwinds the stopped thread tid, whose registers are regs. Returns 1 if it is safe to
 * hijack, 0 if not (reason set), 2 if not because it is inside the loader or a dl* function. */
static int stack_is_safe(struct native_unwind *u, const struct frame_namer *n, pid_t tid,
                         const struct user_regs_struct *regs, char *reason, size_t rn)
{
    struct frame_check check = {n, tid, reason, rn};
    uint64_t last_ip = 0;
    int rc = native_unwind_walk(u, regs, MAX_FRAMES, frame_check, &check, &last_ip);
    if (rc > 0)
        return rc == 2 ? 2 : 0;
    /* A complete unwind ends at the frame whose CFI marks the return address undefined:
     * clone3 for threads, _start in the executable for the main thread. */
    if (rc < 0) {
        snprintf(reason, rn, "thread %d: %s", (int)tid, native_unwind_why(u));
        return 0;
    }
    const struct proc_map *bottom = proc_maps_find_addr(&n->maps, last_ip ? last_ip - 1 : 0);
    if (!(same_file(bottom, n->libc) || same_file(bottom, n->exe))) {
        snprintf(reason, rn, "thread %d: its native stack does not unwind to a thread start",
                 (int)tid);
        return 0;
    }
    return 1;
}

/* Before stopping a thread blocked in a syscall, walks its stack as /proc shows it (stack
 * pointer and program counter only): the verdict means nothing, but the walk loads the
 * unwind tables and pages that the real walk, done while the thread is stopped, needs. */
static void stack_rehearse(struct native_unwind *u, const struct candidate *c)
{
    if (!c->sp || !c->pc)
        return;
    struct user_regs_struct regs;
    memset(&regs, 0, sizeof regs);
    regs.rsp = c->sp;
    regs.rip = c->pc;
    native_unwind_walk(u, &regs, MAX_FRAMES, NULL, NULL, NULL);
}

static int cmp_candidate(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->cls != y->cls)
        return x->cls - y->cls;
    return (int)x->tid - (int)y->tid; /* the main thread (tid == pid) has the lowest tid */
}

static int list_candidates(pid_t pid, struct candidate *out, int max)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[320], line[256] = "";
        snprintf(path, sizeof path, "%s/%s/syscall", dir, e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        fclose(f);
        out[n].tid = (pid_t)atoi(e->d_name);
        out[n].cls = safepoint_syscall_class(line);
        out[n].sp = out[n].pc = 0;
        /* "nr arg1 .. arg6 sp pc" in a syscall, "-1 sp pc" blocked elsewhere */
        unsigned long long w[9];
        int got = sscanf(line, "%*d %llx %llx %llx %llx %llx %llx %llx %llx", &w[0], &w[1], &w[2],
                         &w[3], &w[4], &w[5], &w[6], &w[7]);
        if (got == 8) {
            out[n].sp = w[6];
            out[n].pc = w[7];
        }
        n++;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof out[0], cmp_candidate);
    return n;
}

int safepoint_acquire(pid_t pid, struct inject_thread *t, int deadline_ms,
                      struct safepoint_stats *stats, ms_error *err)
{
    struct safepoint_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    struct frame_namer namer;
    if (namer_open(pid, &namer, err) < 0)
        return -1;
    struct native_unwind *unwinder;
    if (native_unwind_open(pid, &namer.maps, &unwinder, err) < 0) {
        namer_close(&namer);
        return -1;
    }
    struct candidate *cand = malloc(sizeof *cand * MAX_CANDIDATES);
    if (!cand) {
        native_unwind_close(unwinder);
        namer_close(&namer);
        return ms_error_set(err, "out of memory");
    }
    long long deadline = now_ns() + (long long)deadline_ms * 1000000LL;
    int rc = -1, found = 0;
    ms_error attach_err = {""};
    while (!found) {
        int n = list_candidates(pid, cand, MAX_CANDIDATES);
        if (n <= 0) {
            ms_error_set(err, "process %d no longer exists", (int)pid);
            goto done;
        }
        /* A thread seen inside the loader may be loading our own library (a session whose
         * memsnap was killed finishes its dlopen on its own): wait for it rather than
         * hijack another thread and decide, mid-load, whether a copy is loaded. */
        int loader_busy = 0;
        for (int i = 0; i < n && !found && !loader_busy; i++) {
            stack_rehearse(unwinder, &cand[i]);
            if (inject_attach(t, pid, cand[i].tid, ATTACH_TIMEOUT_MS, &attach_err) < 0) {
                if (kill(pid, 0) < 0 && errno == ESRCH) {
                    ms_error_set(err, "process %d exited", (int)pid);
                    goto done;
                }
                /* Permission problems concern every thread alike: report them at once. */
                if (strstr(attach_err.msg, "not allowed")) {
                    *err = attach_err;
                    goto done;
                }
                snprintf(stats->last_reason, sizeof stats->last_reason, "%s", attach_err.msg);
                continue;
            }
            stats->attempts++;
            long long u0 = now_ns();
            int verdict = stack_is_safe(unwinder, &namer, cand[i].tid, &t->raw, stats->last_reason,
                                        sizeof stats->last_reason);
            if (verdict == 1) {
                stats->unwind_ns = now_ns() - u0;
                found = 1;
            } else {
                loader_busy = verdict == 2;
                stats->refused++;
                inject_release(t, NULL);
            }
        }
        if (found)
            break;
        if (now_ns() >= deadline) {
            ms_error_set(err,
                         "no thread of process %d could be proven to be at a safe point within "
                         "%d ms: %s",
                         (int)pid, deadline_ms,
                         stats->last_reason[0] ? stats->last_reason : "no thread could be stopped");
            goto done;
        }
        struct timespec ts = {0, RETRY_SLEEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    rc = 0;
done:
    free(cand);
    native_unwind_close(unwinder);
    namer_close(&namer);
    return rc;
}
