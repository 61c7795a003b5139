/*
 * native_unwind.c - libunwind driven through accessors of our own: a page cache over
 * process_vm_readv, registers from a captured set, and a find_proc_info that searches each
 * object's .eh_frame_hdr table where the object is loaded (elf_remote.h), never a file found
 * by path. Why: native_unwind.h.
 */
#include "native_unwind.h"

#include <fcntl.h>
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf_remote.h"
#include "remote.h"

/* libunwind's search of a binary-search table through the address space's accessors; what
 * libunwind-ptrace's own find_proc_info calls once it has located a table. Exported by
 * libunwind-x86_64 but not declared in its public headers. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
                                              unw_dyn_info_t *di, unw_proc_info_t *pi,
                                              int need_unwind_info, void *arg);

#define CACHE_SLOTS 256 /* 1 MiB: the tables' pages of a few objects plus a stack */
#define PAGE        4096u
#define MAX_OBJECTS 4096

struct cache_slot {
    uint64_t page;
    int valid;
    int persistent; /* of a read-only file mapping: kept across walks */
    uint8_t data[PAGE];
};

/* One executable mapping of an object and, once a frame fell in it, the object's unwind
 * table as loaded in the target (state 1), or the proof that it has none usable (-1). */
struct unwind_object {
    uint64_t start, end;
    const struct proc_map *map;
    int state; /* 0 not looked at yet, 1 di is ready, -1 no usable table */
    unw_dyn_info_t di;
};

struct native_unwind {
    pid_t pid;
    const struct proc_maps *maps;
    int *map_fds;   /* per mapping of maps: its file, -1 not opened yet, -2 unusable */
    int pagemap_fd; /* /proc/PID/pagemap, or -1 */
    unw_addr_space_t as;
    struct unwind_object *objects; /* sorted by start (maps are) */
    size_t n_objects;
    const struct user_regs_struct *regs; /* of the walk in progress */
    char why[200];                       /* why the last walk stopped short */
    struct cache_slot cache[CACHE_SLOTS];
};

/* libunwind hands some accessors the argument of unw_init_remote and others the
 * libunwind-ptrace state of an object, so the walk in progress is found here instead. */
static _Thread_local struct native_unwind *walking;

/* 1 when the target has the page at addr in memory (or swapped out): reading it then costs
 * the target nothing. 0 when it is not there, so a read through the target's memory would
 * fault it in and add to the target's RSS (about 400 KiB of python's and libc's unwind
 * tables per attach, measured). -1 when pagemap cannot tell. */
static int page_resident(const struct native_unwind *u, uint64_t addr)
{
    uint64_t entry;
    if (u->pagemap_fd < 0 || pread(u->pagemap_fd, &entry, sizeof entry,
                                   (off_t)(addr / PAGE * sizeof entry)) != (ssize_t)sizeof entry)
        return -1;
    return (entry >> 62) != 0; /* bit 63 present, bit 62 swapped */
}

/* Reads the page at addr of a read-only file mapping m from the file itself. A page the
 * target never touched holds exactly the file's bytes (zeros past the end of the file). */
static int page_from_file(struct native_unwind *u, const struct proc_map *m, uint64_t addr,
                          uint8_t *out)
{
    size_t i = (size_t)(m - u->maps->maps);
    if (u->map_fds[i] == -1) {
        int fd = proc_maps_open(u->pid, m, NULL);
        u->map_fds[i] = fd < 0 ? -2 : fd;
    }
    if (u->map_fds[i] < 0)
        return -1;
    ssize_t n = pread(u->map_fds[i], out, PAGE, (off_t)(m->offset + (addr - m->start)));
    if (n <= 0)
        return -1;
    memset(out + n, 0, PAGE - (size_t)n);
    return 0;
}

/* Fills slot s with the page at addr. Pages of read-only file mappings (code, unwind tables)
 * are kept across walks; those the target does not have in memory come from the file. */
static int page_fill(struct native_unwind *u, uint64_t addr, struct cache_slot *s)
{
    const struct proc_map *m = proc_maps_find_addr(u->maps, addr);
    s->persistent = m && !(m->perms & PROC_MAP_WRITE) && !(m->perms & PROC_MAP_SHARED) &&
                    m->path[0] == '/' && addr + PAGE <= m->end;
    if (s->persistent && page_resident(u, addr) == 0 && page_from_file(u, m, addr, s->data) == 0)
        return 0;
    return remote_read(u->pid, addr, s->data, PAGE, NULL);
}

/* The cached page at page (page-aligned), filled on a miss; NULL when unreadable. */
static const uint8_t *cache_page(struct native_unwind *u, uint64_t page)
{
    struct cache_slot *s = &u->cache[(page / PAGE) % CACHE_SLOTS];
    if (!s->valid || s->page != page) {
        s->valid = 0;
        if (page_fill(u, page, s) < 0)
            return NULL;
        s->page = page;
        s->valid = 1;
    }
    return s->data;
}

/* Reads len bytes at addr through the page cache; 0 or -1. */
static int cache_read(void *ctx, uint64_t addr, void *out, size_t len)
{
    struct native_unwind *u = ctx;
    uint8_t *o = out;
    while (len) {
        uint64_t page = addr & ~(uint64_t)(PAGE - 1);
        size_t off = (size_t)(addr - page), n = PAGE - off < len ? PAGE - off : len;
        const uint8_t *d = cache_page(u, page);
        if (!d)
            return -1;
        memcpy(o, d + off, n);
        o += n;
        addr += n;
        len -= n;
    }
    return 0;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
    (void)as;
    (void)arg;
    struct native_unwind *u = walking;
    if (write || !u || cache_read(u, addr, val, sizeof *val) < 0)
        return -UNW_EINVAL;
    return 0;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write, void *arg)
{
    (void)as;
    (void)arg;
    const struct native_unwind *u = walking;
    if (write || !u || !u->regs)
        return -UNW_EREADONLYREG;
    const struct user_regs_struct *r = u->regs;
    switch (reg) {
    case UNW_X86_64_RAX:
        *val = r->rax;
        break;
    case UNW_X86_64_RDX:
        *val = r->rdx;
        break;
    case UNW_X86_64_RCX:
        *val = r->rcx;
        break;
    case UNW_X86_64_RBX:
        *val = r->rbx;
        break;
    case UNW_X86_64_RSI:
        *val = r->rsi;
        break;
    case UNW_X86_64_RDI:
        *val = r->rdi;
        break;
    case UNW_X86_64_RBP:
        *val = r->rbp;
        break;
    case UNW_X86_64_RSP:
        *val = r->rsp;
        break;
    case UNW_X86_64_R8:
        *val = r->r8;
        break;
    case UNW_X86_64_R9:
        *val = r->r9;
        break;
    case UNW_X86_64_R10:
        *val = r->r10;
        break;
    case UNW_X86_64_R11:
        *val = r->r11;
        break;
    case UNW_X86_64_R12:
        *val = r->r12;
        break;
    case UNW_X86_64_R13:
        *val = r->r13;
        break;
    case UNW_X86_64_R14:
        *val = r->r14;
        break;
    case UNW_X86_64_R15:
        *val = r->r15;
        break;
    case UNW_X86_64_RIP:
        *val = r->rip;
        break;
    default:
        return -UNW_EBADREG;
    }
    return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
                        void *arg)
{
    (void)as, (void)reg, (void)val, (void)write, (void)arg;
    return -UNW_EBADREG;
}

static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
    (void)as, (void)c, (void)arg;
    return -UNW_EINVAL;
}

static int get_proc_name(unw_addr_space_t as, unw_word_t ip, char *buf, size_t len, unw_word_t *off,
                         void *arg)
{
    (void)as, (void)ip, (void)buf, (void)len, (void)off, (void)arg;
    return -UNW_ENOINFO;
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
    (void)as, (void)addr, (void)arg;
    return -UNW_ENOINFO; /* no JIT registers unwind info in a CPython we hijack */
}

static struct unwind_object *object_of(struct native_unwind *u, uint64_t ip)
{
    size_t lo = 0, hi = u->n_objects;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct unwind_object *o = &u->objects[mid];
        if (ip < o->start)
            hi = mid;
        else if (ip >= o->end)
            lo = mid + 1;
        else
            return o;
    }
    return NULL;
}

/* Locates o's object in the target (its ELF header, where its offset-0 mapping is) and its
 * .eh_frame_hdr table, through the page cache: pages come from the mapped file only when it
 * is proven identical, else from the target's memory. */
static void object_resolve(struct native_unwind *u, struct unwind_object *o)
{
    o->state = -1;
    uint64_t base = proc_maps_file_base(u->maps, o->map);
    struct elf_remote_reader r = {cache_read, u};
    struct elf_remote_info info;
    struct elf_remote_eh eh;
    if (!base || elf_remote_headers(&r, base, &info, NULL) < 0 ||
        elf_remote_eh_table(&r, &info, &eh, NULL) < 0 || o->start < info.lo || o->end > info.hi)
        return;
    memset(&o->di, 0, sizeof o->di);
    o->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    o->di.start_ip = o->start;
    o->di.end_ip = o->end;
    o->di.u.rti.name_ptr = 0;
    o->di.u.rti.segbase = eh.hdr;
    o->di.u.rti.table_data = eh.table;
    o->di.u.rti.table_len = eh.fde_count * 8 / sizeof(unw_word_t);
    o->state = 1;
}

/* The procedure info of ip from the table of the object holding it. Never -UNW_ENOINFO:
 * libunwind answers that with frame-pointer and PLT heuristics, whose guesses would make an
 * unproven walk look complete; every failure is a hard error that ends the walk. */
static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi,
                          int need_unwind_info, void *arg)
{
    struct native_unwind *u = walking;
    if (!u)
        return -UNW_EINVAL;
    struct unwind_object *o = object_of(u, ip);
    if (!o) {
        snprintf(u->why, sizeof u->why, "a frame at 0x%llx is in no file-backed code",
                 (unsigned long long)ip);
        return -UNW_EINVAL;
    }
    if (o->state == 0)
        object_resolve(u, o);
    if (o->state < 0) {
        snprintf(u->why, sizeof u->why, "%s has no unwind table readable from the process",
                 o->map->path);
        return -UNW_EINVAL;
    }
    int rc = _Ux86_64_dwarf_search_unwind_table(as, ip, &o->di, pi, need_unwind_info, arg);
    if (rc < 0) {
        snprintf(u->why, sizeof u->why, "no unwind information covers 0x%llx in %s",
                 (unsigned long long)ip, o->map->path);
        return rc == -UNW_ENOINFO ? -UNW_EINVAL : rc;
    }
    return 0;
}

/* 1 if the frame at ip (depth > 0: a return address, so the call before it) lies in an
 * object whose table has an FDE covering it: the step from it is then made by CFI. */
static int frame_proven(struct native_unwind *u, uint64_t ip, int depth)
{
    uint64_t pc = depth > 0 && ip > 0 ? ip - 1 : ip;
    struct unwind_object *o = object_of(u, pc);
    if (!o) {
        snprintf(u->why, sizeof u->why, "a frame at 0x%llx is in no file-backed code",
                 (unsigned long long)pc);
        return 0;
    }
    if (o->state == 0)
        object_resolve(u, o);
    if (o->state < 0) {
        snprintf(u->why, sizeof u->why, "%s has no unwind table readable from the process",
                 o->map->path);
        return 0;
    }
    unw_proc_info_t pi;
    memset(&pi, 0, sizeof pi);
    if (_Ux86_64_dwarf_search_unwind_table(u->as, pc, &o->di, &pi, 0, u) < 0 || pc < pi.start_ip ||
        pc >= pi.end_ip) {
        snprintf(u->why, sizeof u->why, "no unwind information covers 0x%llx in %s",
                 (unsigned long long)pc, o->map->path);
        return 0;
    }
    return 1;
}

static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
    _UPT_put_unwind_info(as, pi, arg);
}

/* Executable mappings of an object that may carry unwind tables: files and the vDSO.
 * Anonymous code (JITs, trampolines) has none: a frame there ends the walk unproven. */
static int unwindable(const struct proc_map *m)
{
    return (m->perms & PROC_MAP_EXEC) && (m->path[0] == '/' || strcmp(m->path, "[vdso]") == 0);
}

int native_unwind_open(pid_t pid, const struct proc_maps *maps, struct native_unwind **out,
                       ms_error *err)
{
    *out = NULL;
    struct native_unwind *u = calloc(1, sizeof *u);
    if (!u)
        return ms_error_set(err, "out of memory");
    u->pid = pid;
    u->maps = maps;
    u->pagemap_fd = -1;
    u->map_fds = malloc((maps->count ? maps->count : 1) * sizeof *u->map_fds);
    if (!u->map_fds) {
        free(u);
        return ms_error_set(err, "out of memory");
    }
    for (size_t i = 0; i < maps->count; i++)
        u->map_fds[i] = -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
    u->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    for (size_t i = 0; i < maps->count; i++)
        n += unwindable(&maps->maps[i]);
    if (n > MAX_OBJECTS)
        n = MAX_OBJECTS;
    u->objects = calloc(n ? n : 1, sizeof *u->objects);
    if (!u->objects) {
        native_unwind_close(u);
        return ms_error_set(err, "out of memory");
    }
    for (size_t i = 0; i < maps->count && u->n_objects < n; i++) {
        const struct proc_map *m = &maps->maps[i];
        if (unwindable(m))
            u->objects[u->n_objects++] =
                (struct unwind_object){.start = m->start, .end = m->end, .map = m};
    }
    unw_accessors_t acc = {
        .find_proc_info = find_proc_info,
        .put_unwind_info = put_unwind_info,
        .get_dyn_info_list_addr = get_dyn_info_list_addr,
        .access_mem = access_mem,
        .access_reg = access_reg,
        .access_fpreg = access_fpreg,
        .resume = resume,
        .get_proc_name = get_proc_name,
    };
    u->as = unw_create_addr_space(&acc, 0);
    if (!u->as) {
        native_unwind_close(u);
        return ms_error_set(err, "libunwind: cannot create an address space");
    }
    /* The address space's own cache of parsed frames: a rehearsal fills it, so the real
     * walk mostly finds each frame's rules ready (measured: 0.14-0.23 ms per walk against
     * 0.26-0.29 ms without it, whose every step re-parses CFI and locks libunwind's pools). */
    unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
    *out = u;
    return 0;
}

int native_unwind_walk(struct native_unwind *u, const struct user_regs_struct *regs, int max_frames,
                       native_frame_fn visit, void *ctx, uint64_t *last_ip)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (!u->cache[i].persistent)
            u->cache[i].valid = 0;
    u->regs = regs;
    u->why[0] = 0;
    walking = u;
    int rc = -1;
    unw_cursor_t cur;
    if (unw_init_remote(&cur, u->as, u) < 0) {
        snprintf(u->why, sizeof u->why, "its registers cannot be read");
        goto out;
    }
    for (int depth = 0; depth < max_frames; depth++) {
        unw_word_t ip = 0;
        unw_get_reg(&cur, UNW_REG_IP, &ip);
        /* Every frame must be covered by CFI before libunwind steps out of it. */
        if (!frame_proven(u, ip, depth))
            goto out;
        if (visit) {
            int v = visit(ip, depth, ctx);
            if (v > 0) {
                rc = v;
                goto out;
            }
        }
        int step = unw_step(&cur);
        if (step == 0) {
            if (last_ip)
                *last_ip = ip;
            rc = 0;
            goto out;
        }
        if (step < 0) {
            if (!u->why[0])
                snprintf(u->why, sizeof u->why, "the unwind failed at 0x%llx (libunwind error %d)",
                         (unsigned long long)ip, step);
            goto out;
        }
    }
    snprintf(u->why, sizeof u->why, "its native stack is deeper than %d frames", max_frames);
out:
    walking = NULL;
    u->regs = NULL;
    return rc;
}

void native_unwind_close(struct native_unwind *u)
{
    if (!u)
        return;
    if (u->as)
        unw_destroy_addr_space(u->as);
    for (size_t i = 0; u->map_fds && i < u->maps->count; i++)
        if (u->map_fds[i] >= 0)
            close(u->map_fds[i]);
    if (u->pagemap_fd >= 0)
        close(u->pagemap_fd);
    free(u->map_fds);
    free(u->objects);
    free(u);
}

const char *native_unwind_why(const struct native_unwind *u)
{
    return u->why[0] ? u->why : "its native stack could not be unwound";
}
