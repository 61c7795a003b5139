/*
 * safepoint.c - picks the thread to hijack: ranks threads by what /proc says they are doing,
 * attaches the best candidate, and proves from its unwound native stack that it holds neither
 * the malloc nor the loader lock. Policy and reasons in safepoint.h.
 */
#include "safepoint.h"

#include <dirent.h>
#include <errno.h>
#include <libunwind-ptrace.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "elf_symbols.h"
#include "proc_maps.h"
#include "remote.h"

#define MAX_CANDIDATES    1024
#define MAX_FRAMES        512
#define ATTACH_TIMEOUT_MS 200
#define RETRY_SLEEP_MS    3

#define CACHE_PAGES 64
#define PAGE        4096

/* libunwind-ptrace reads the target one word per PTRACE_PEEKDATA, and a first unwind walks
 * the .eh_frame tables of several objects: about 1800 syscalls, 7-12 ms, all while the
 * candidate thread is stopped. Reading whole pages with process_vm_readv and keeping them for
 * the duration of one unwind cuts that to a few dozen syscalls. The cache is emptied before
 * each unwind, because stack pages change between stops. */
struct page_cache {
    pid_t pid;
    uint64_t page[CACHE_PAGES];
    int valid[CACHE_PAGES];
    uint8_t data[CACHE_PAGES][PAGE];
};

/* libunwind hands accessors the _UPT handle as their argument, so the cache is found through
 * the thread that drives the unwind. */
static _Thread_local struct page_cache *unwind_cache;

static int cached_access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write,
                             void *arg)
{
    struct page_cache *c = unwind_cache;
    if (write || !c || (addr & 7) != 0)
        return _UPT_access_mem(as, addr, val, write, arg);
    uint64_t page = addr & ~(uint64_t)(PAGE - 1);
    unsigned slot = (unsigned)((page / PAGE) % CACHE_PAGES);
    if (!c->valid[slot] || c->page[slot] != page) {
        if (remote_read(c->pid, page, c->data[slot], PAGE, NULL) < 0) {
            c->valid[slot] = 0;
            return _UPT_access_mem(as, addr, val, write, arg);
        }
        c->page[slot] = page;
        c->valid[slot] = 1;
    }
    memcpy(val, c->data[slot] + (addr - page), sizeof *val);
    return 0;
}

struct candidate {
    pid_t tid;
    int cls;
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
    int fd = proc_maps_open(pid, n->libc, err);
    uint64_t vaddr, off;
    if (fd < 0 || elf_image_open_fd(fd, n->libc->path, &n->libc_img, err) < 0 ||
        elf_image_first_load(n->libc_img, &vaddr, &off, err) < 0) {
        elf_image_close(n->libc_img);
        proc_maps_free(&n->maps);
        return ms_error_prefix(err, "reading libc of process %d", (int)pid);
    }
    n->libc_bias = elf_load_bias(proc_maps_file_base(&n->maps, n->libc), vaddr);
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

/* Unwinds the stopped thread tid. Returns 1 if it is safe to hijack, 0 if not (reason set),
 * 2 if not because it is inside the loader or a dl* function. */
static int stack_is_safe(unw_addr_space_t as, const struct frame_namer *n, pid_t tid, char *reason,
                         size_t rn)
{
    if (unwind_cache)
        memset(unwind_cache->valid, 0, sizeof unwind_cache->valid);
    void *upt = _UPT_create(tid);
    if (!upt) {
        snprintf(reason, rn, "thread %d: cannot start unwinding", (int)tid);
        return 0;
    }
    unw_cursor_t cur;
    int safe = 0;
    if (unw_init_remote(&cur, as, upt) < 0) {
        snprintf(reason, rn, "thread %d: cannot start unwinding", (int)tid);
        goto out;
    }
    uint64_t last_ip = 0;
    int depth = 0, step = 1;
    for (; depth < MAX_FRAMES; depth++) {
        unw_word_t ip = 0;
        unw_get_reg(&cur, UNW_REG_IP, &ip);
        last_ip = ip;
        /* A return address points after its call; look the caller up by the call itself. */
        uint64_t pc = depth > 0 && ip > 0 ? ip - 1 : ip;
        const struct proc_map *m = proc_maps_find_addr(&n->maps, pc);
        if (m && same_file(m, n->ld)) {
            snprintf(reason, rn, "thread %d is inside the dynamic loader", (int)tid);
            safe = 2;
            goto out;
        }
        if (m && same_file(m, n->libc)) {
            struct elf_symbol sym;
            if (elf_image_symbol_at(n->libc_img, pc - n->libc_bias, &sym, NULL) == 0 &&
                safepoint_libc_frame_unsafe(sym.name)) {
                snprintf(reason, rn, "thread %d is inside %s()", (int)tid, sym.name);
                if (strncmp(sym.name, "dl", 2) == 0 || strncmp(sym.name, "_dl", 3) == 0)
                    safe = 2;
                goto out;
            }
        }
        step = unw_step(&cur);
        if (step <= 0)
            break;
    }
    /* A complete unwind ends (step == 0) at the frame whose CFI marks the return address
     * undefined: clone3 for threads, _start in the executable for the main thread. */
    const struct proc_map *bottom = proc_maps_find_addr(&n->maps, last_ip ? last_ip - 1 : 0);
    if (step != 0 || depth >= MAX_FRAMES ||
        !(same_file(bottom, n->libc) || same_file(bottom, n->exe))) {
        snprintf(reason, rn, "thread %d: its native stack does not unwind to a thread start",
                 (int)tid);
        goto out;
    }
    safe = 1;
out:
    _UPT_destroy(upt);
    return safe;
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
    unw_accessors_t acc = _UPT_accessors;
    acc.access_mem = cached_access_mem;
    unw_addr_space_t as = unw_create_addr_space(&acc, 0);
    if (!as) {
        namer_close(&namer);
        return ms_error_set(err, "libunwind: cannot create an address space");
    }
    unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
    struct candidate *cand = malloc(sizeof *cand * MAX_CANDIDATES);
    struct page_cache *cache = calloc(1, sizeof *cache);
    if (!cand || !cache) {
        free(cand);
        free(cache);
        unw_destroy_addr_space(as);
        namer_close(&namer);
        return ms_error_set(err, "out of memory");
    }
    cache->pid = pid;
    unwind_cache = cache;
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
            int verdict = stack_is_safe(as, &namer, cand[i].tid, stats->last_reason,
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
            ms_error_set(err, "no thread of process %d reached a safe point within %d ms (%s)",
                         (int)pid, deadline_ms,
                         stats->last_reason[0] ? stats->last_reason : "no thread could be stopped");
            goto done;
        }
        struct timespec ts = {0, RETRY_SLEEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    rc = 0;
done:
    unwind_cache = NULL;
    free(cache);
    free(cand);
    unw_destroy_addr_space(as);
    namer_close(&namer);
    return rc;
}
