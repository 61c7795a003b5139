/*
 * inject_lib.c - the sequence of injected libc calls that loads a library image into a live
 * process and calls its start function, or reuses a copy loaded earlier. The image travels
 * as a regular file of the target's /dev/shm or /tmp that has a name only while its dlopen
 * runs, a memfd only as the last resort (why: inject_lib.h). The contract is in inject_lib.h;
 * the call mechanism in inject.c; the choice of thread in safepoint.c.
 */
#include "inject_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "elf_remote.h"
#include "elf_symbols.h"
#include "inject.h"
#include "proc_maps.h"
#include "remote.h"
#include "safepoint.h"

#define SAFEPOINT_DEADLINE_MS   1000
#define CALL_TIMEOUT_MS         1000
#define DLOPEN_TIMEOUT_MS       3000
#define SCRATCH_FIXED           512 /* strings: memfd name, /proc/self/fd/N, the start symbol */
#define TARGET_RTLD_NOW         2
#define TARGET_DLOPEN_MODE_FLAG 0x80000000 /* __RTLD_DLOPEN, for __libc_dlopen_mode */
#define TARGET_MFD_CLOEXEC      1
#define STALE_FILE_AGE_S        60 /* an old-style (unlocked) image file older than this is dead */
#define FILE_RANDOM_HEX         16 /* hex digits of randomness in an image file's name */
#define FILE_PID_DIGITS_MAX     10
#define IMAGE_DIRS              2

/* The target's directories that may hold the image file, in order of preference, as the
 * target names them. */
static const char *const image_dirs[IMAGE_DIRS] = {"/dev/shm", "/tmp"};

/* One candidate image file: a directory of the target opened by memsnap, and the image memsnap
 * wrote there. fd holds the image and an exclusive flock on it for as long as memsnap lives
 * (the lock is how any memsnap tells a live memsnap's file from a dead one's); the file is
 * unnamed (O_TMPFILE) until image_file_link gives it `name`, under the stop, just before the
 * dlopen that consumes it. */
struct image_file {
    int dir_fd; /* -1: the directory is unusable */
    const char *dir;
    int fd;    /* the image, locked; -1 while there is none */
    int named; /* 1 while `name` is in the directory (we made it and have not unlinked it) */
    char name[128];
    const void *image; /* for image_file_link's fallback */
    size_t len;
    pid_t pid;
};

/* The libc functions the sequence calls, as addresses in the target. */
struct libc_funcs {
    uint64_t dlopen, dlsym, dlerror, memfd_create, close, errno_location;
    int old_dlopen; /* __libc_dlopen_mode (glibc < 2.34) */
    /* errno's offset from the thread pointer, when __errno_location's code shows it: then a
     * thread's errno is at its fs_base + errno_tpoff, found without a call. */
    int64_t errno_tpoff;
    int errno_tpoff_known;
    uint64_t stub_addr;
    uint8_t stub_orig[INJECT_STUB_LEN];
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A private memfd holding the image, so elf_symbols (which reads files) can parse it. */
static int image_open(const void *image, size_t len, struct elf_image **img, ms_error *err)
{
    int fd = memfd_create("memsnap-image", MFD_CLOEXEC);
    if (fd < 0)
        return ms_error_errno(err, errno, "memfd_create");
    const char *p = image;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, p + done, len - done);
        if (w <= 0) {
            int e = errno;
            close(fd);
            return ms_error_errno(err, e, "copying the library image");
        }
        done += (size_t)w;
    }
    return elf_image_open_fd(fd, "the library image", img, err);
}

/* DT_SONAME of the image, which names its memfd in the target; "memsnap-lib.so" if none. */
static void image_soname(const void *image, size_t len, char *out, size_t n)
{
    snprintf(out, n, "memsnap-lib.so");
    elf_version(EV_CURRENT);
    Elf *e = elf_memory((char *)image, len);
    if (!e)
        return;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t count = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; d && i < count; i++) {
            GElf_Dyn dyn;
            if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag != DT_SONAME)
                continue;
            const char *s = elf_strptr(e, sh.sh_link, dyn.d_un.d_val);
            /* Only plain file names: it becomes a memfd name and a maps path. */
            if (s && *s && strlen(s) < n &&
                strspn(s, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+") == strlen(s))
                snprintf(out, n, "%s", s);
        }
    }
    elf_end(e);
}

/* The library's name stem: its SONAME without the ".so" suffix ("libmemsnap_hook"). */
static void soname_stem(const char *soname, char *out, size_t n)
{
    snprintf(out, n, "%s", soname);
    size_t l = strlen(out);
    if (l > 3 && strcmp(out + l - 3, ".so") == 0)
        out[l - 3] = 0;
}

#define NAME_NONE   0
#define NAME_LEGACY 1 /* "<stem>-<hex>.so": an older memsnap's, never locked */
#define NAME_LOCKED 2 /* "<stem>-<memsnap pid>-<hex>.so": locked while its memsnap lives */

/* What base (a file name, no directory) is: "<stem>-<pid>-<FILE_RANDOM_HEX hex>.so", the name
 * memsnap gives image files, or "<stem>-<hex>.so", the name older versions gave them, or
 * neither (NAME_NONE): nothing else is ever reused or removed as one. */
static int image_file_name_kind(const char *base, const char *stem)
{
    size_t sl = strlen(stem);
    if (strncmp(base, stem, sl) != 0 || base[sl] != '-')
        return NAME_NONE;
    const char *h = base + sl + 1;
    int kind = NAME_LEGACY;
    size_t digits = strspn(h, "0123456789");
    if (digits > 0 && digits <= FILE_PID_DIGITS_MAX && h[digits] == '-') {
        h += digits + 1;
        kind = NAME_LOCKED;
    }
    if (strspn(h, "0123456789abcdef") != FILE_RANDOM_HEX)
        return NAME_NONE;
    return strcmp(h + FILE_RANDOM_HEX, ".so") == 0 ? kind : NAME_NONE;
}

/* 1 if a mapping's path may be a copy loaded by memsnap: "/memfd:<soname>" (the memfd way)
 * or ".../<stem>-<hex>.so" (an image file). The caller still compares the bytes. */
static int loaded_path_matches(const char *path, const char *soname, const char *stem)
{
    if (strncmp(path, "/memfd:", 7) == 0)
        return strcmp(path + 7, soname) == 0;
    const char *slash = strrchr(path, '/');
    return slash && image_file_name_kind(slash + 1, stem) != NAME_NONE;
}

/* The target's file-system uid and gid (what its open() is checked against). */
static int target_fs_ids(pid_t pid, uid_t *uid, gid_t *gid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int found = 0;
    unsigned long r, e, s, fs;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Uid:", 4) == 0 &&
            sscanf(line + 4, "%lu %lu %lu %lu", &r, &e, &s, &fs) == 4) {
            *uid = (uid_t)fs;
            found |= 1;
        } else if (strncmp(line, "Gid:", 4) == 0 &&
                   sscanf(line + 4, "%lu %lu %lu %lu", &r, &e, &s, &fs) == 4) {
            *gid = (gid_t)fs;
            found |= 2;
        }
    }
    fclose(f);
    return found == 3 ? 0 : -1;
}

/* Opens dir as the target sees it, resolved inside the target's root (a symlink planted by
 * the target cannot lead memsnap out of it), if it is a writable, executable-allowing file
 * system. Returns the descriptor or -1. */
static int target_dir_open(pid_t pid, const char *dir)
{
    char root[64];
    snprintf(root, sizeof root, "/proc/%d/root", (int)pid);
    int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        return -1;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, root_fd, dir + 1, &how, sizeof how);
    close(root_fd);
    if (fd < 0)
        return -1;
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) < 0 || (vfs.f_flag & (ST_NOEXEC | ST_RDONLY))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Removes name from dir if it is an image file nobody alive holds: a regular file (no symlink
 * followed, no FIFO opened for long) on which an exclusive flock can be taken, so its memsnap
 * is dead (a live one holds the lock from before the name exists until after it is gone). */
static void dead_file_remove(int dir_fd, const char *name)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st, again;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(dir_fd, name, &again, AT_SYMLINK_NOFOLLOW) == 0 && again.st_dev == st.st_dev &&
        again.st_ino == st.st_ino)
        unlinkat(dir_fd, name, 0);
    close(fd);
}

/* Removes image files of this library that a killed memsnap left behind: unlocked files named
 * "<stem>-<pid>-<hex>.so" at once, whoever made them (dead_file_remove), and an older
 * version's "<stem>-<hex>.so" once older than STALE_FILE_AGE_S (those carry no lock; a live
 * memsnap's lives for milliseconds). A process that maps a removed file keeps its mapping, and
 * reuse finds a loaded copy through its mapping, not its name. */
static void stale_files_remove(int dir_fd, const char *stem)
{
    int fd = dup(dir_fd);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        int kind = image_file_name_kind(de->d_name, stem);
        if (kind == NAME_LOCKED)
            dead_file_remove(dir_fd, de->d_name);
        else if (kind == NAME_LEGACY &&
                 fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISREG(st.st_mode) && st.st_mtime <= now - STALE_FILE_AGE_S)
            unlinkat(dir_fd, de->d_name, 0);
    }
    closedir(d);
}

/* Gives the file the target's fs ids (so that its dlopen may open it) and writes the image. */
static int image_fill(pid_t pid, int fd, const void *image, size_t len)
{
    uid_t uid;
    gid_t gid;
    if (geteuid() == 0 && target_fs_ids(pid, &uid, &gid) == 0 &&
        (uid != geteuid() || gid != getegid()) && fchown(fd, uid, gid) < 0)
        return -1;
    const char *p = image;
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(fd, p + done, len - done, (off_t)done);
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

/* The old way, for file systems without O_TMPFILE (and image_file_link's fallback): the image
 * written under its name, locked at once. A cleaner that locks it in the instant between
 * creation and our flock removes it: then this fails. Returns 0 or -1 (nothing left). */
static int image_file_write_named(struct image_file *f)
{
    int fd = openat(f->dir_fd, f->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0500);
    if (fd < 0)
        return -1;
    struct stat st, again;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 ||
        fstatat(f->dir_fd, f->name, &again, AT_SYMLINK_NOFOLLOW) < 0 || again.st_ino != st.st_ino ||
        again.st_dev != st.st_dev) {
        close(fd); /* not ours any more: someone removed it */
        return -1;
    }
    if (image_fill(f->pid, fd, f->image, f->len) < 0) {
        unlinkat(f->dir_fd, f->name, 0);
        close(fd);
        return -1;
    }
    f->fd = fd;
    f->named = 1;
    return 0;
}

/* Prepares the image in f's directory before any thread is stopped: picks the name
 * "<stem>-<memsnap's pid>-<random>.so" and writes the image into an UNNAMED file
 * (O_TMPFILE), mode 0500, owned by the target's ids, locked (flock) by memsnap. Nothing is on
 * disk under a name yet: a memsnap killed from here until image_file_link leaves nothing.
 * Without O_TMPFILE the file is written under its name at once. Returns 0 or -1 (nothing
 * left behind). */
static int image_file_prepare(pid_t pid, struct image_file *f, const char *stem, const void *image,
                              size_t len)
{
    uint8_t rnd[FILE_RANDOM_HEX / 2];
    if (f->dir_fd < 0 || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    char hex[FILE_RANDOM_HEX + 1];
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    if (snprintf(f->name, sizeof f->name, "%s-%d-%s.so", stem, (int)getpid(), hex) >=
        (int)sizeof f->name)
        return -1;
    f->pid = pid;
    f->image = image;
    f->len = len;
    int fd = openat(f->dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0500);
    if (fd < 0)
        return image_file_write_named(f);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || image_fill(pid, fd, image, len) < 0) {
        close(fd);
        return -1;
    }
    f->fd = fd;
    f->named = 0;
    return 0;
}

/* Gives the prepared image its name (linkat of /proc/self/fd/N), still locked. Called by
 * inject_call_armed once the hijacked thread's registers point at the dlopen that consumes
 * the name: from then on, even if memsnap dies, the thread runs that dlopen and the loaded
 * hook unlinks its own file (sampler/hook/hook_file.c). If the link fails, the image is
 * written under the name instead (the stop is longer by the copy; rare). */
static void image_file_link(void *ctx)
{
    struct image_file *f = ctx;
    if (f->named || f->fd < 0)
        return;
    char src[64];
    snprintf(src, sizeof src, "/proc/self/fd/%d", f->fd);
    if (linkat(AT_FDCWD, src, f->dir_fd, f->name, AT_SYMLINK_FOLLOW) == 0) {
        f->named = 1;
        return;
    }
    close(f->fd);
    f->fd = -1;
    image_file_write_named(f); /* on failure the dlopen fails with ENOENT, harmlessly */
}

/* Removes f's name if it is still our file (the loaded hook may have unlinked it already);
 * the target's mapping keeps the loaded library alive. */
static void image_file_unlink(struct image_file *f)
{
    struct stat st, mine;
    if (f->named && f->fd >= 0 && fstat(f->fd, &mine) == 0 &&
        fstatat(f->dir_fd, f->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == mine.st_ino &&
        st.st_dev == mine.st_dev)
        unlinkat(f->dir_fd, f->name, 0);
    f->named = 0;
}

/* Unlinks f's name and drops the image (and so the lock). */
static void image_file_drop(struct image_file *f)
{
    image_file_unlink(f);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static int find_func(struct elf_image *libc, uint64_t bias, const char *name, uint64_t *out,
                     ms_error *err)
{
    struct elf_symbol sym;
    if (elf_image_find_symbol(libc, name, &sym, err) < 0)
        return -1;
    *out = sym.value + bias;
    return 0;
}

/* glibc's x86_64 __errno_location is "mov GOT(errno@tpoff)(%rip), %rax; add %fs:0, %rax;
 * ret" (after an endbr64 in CET builds): the GOT slot holds errno's offset from the thread
 * pointer. Reading that slot now, before any thread is stopped, spares the session a call.
 * Anything else leaves errno_tpoff_known 0 (the call is made then). */
static void errno_tpoff_find(pid_t pid, const struct proc_maps *maps, struct libc_funcs *f)
{
    static const uint8_t endbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};
    static const uint8_t add_fs[10] = {0x64, 0x48, 0x03, 0x04, 0x25, 0, 0, 0, 0, 0xc3};
    uint8_t code[24];
    /* The code as the target has it loaded (it is the mapped libc by definition). */
    const struct proc_map *m = proc_maps_find_addr(maps, f->errno_location);
    if (!m || !(m->perms & PROC_MAP_EXEC) || f->errno_location + sizeof code > m->end ||
        remote_read(pid, f->errno_location, code, sizeof code, NULL) < 0)
        return;
    size_t at = memcmp(code, endbr64, sizeof endbr64) == 0 ? sizeof endbr64 : 0;
    if (code[at] != 0x48 || code[at + 1] != 0x8b || code[at + 2] != 0x05 ||
        memcmp(code + at + 7, add_fs, sizeof add_fs) != 0)
        return;
    int32_t rel;
    memcpy(&rel, code + at + 3, sizeof rel);
    uint64_t slot = f->errno_location + at + 7 + (uint64_t)(int64_t)rel;
    int64_t tpoff;
    if (remote_read(pid, slot, &tpoff, sizeof tpoff, NULL) < 0 || tpoff >= 0 || tpoff < -(1 << 20))
        return; /* static TLS sits below the thread pointer, within a few pages */
    f->errno_tpoff = tpoff;
    f->errno_tpoff_known = 1;
}

/* Resolves the libc functions and the stub site. Every address comes from the libc that is
 * MAPPED: its file when proc_maps_open proves it is that file, else the dynamic symbol table
 * in the target's memory (elf_remote.h); a libc deleted or replaced by an upgrade, or seen
 * at a chroot's path, is never read by path. The site's original bytes come from the proven
 * file, so that a stub left by a killed memsnap is recognised rather than taken for code;
 * without one, from memory (a leftover stub then reads as the stub, which inject_begin
 * recognises and reuses without restoring). */
static int libc_resolve(pid_t pid, const struct proc_maps *maps, struct libc_funcs *f,
                        ms_error *err)
{
    memset(f, 0, sizeof *f);
    const struct proc_map *libc = proc_maps_find_libc(maps);
    if (!libc)
        return ms_error_set(err, "process %d has no glibc libc.so.6 mapped", (int)pid);
    struct elf_image *img = NULL;
    int from_memory = 0;
    if (elf_remote_open_image(pid, maps, libc, &img, &from_memory, err) < 0)
        return ms_error_prefix(err, "locating dlopen in process %d", (int)pid);
    int rc = -1;
    uint64_t vaddr, off;
    if (elf_image_first_load(img, &vaddr, &off, err) < 0)
        goto out;
    uint64_t bias = elf_load_bias(proc_maps_file_base(maps, libc), vaddr);
    if (find_func(img, bias, "dlopen", &f->dlopen, NULL) == 0) {
        if (find_func(img, bias, "dlsym", &f->dlsym, err) < 0)
            goto out;
        find_func(img, bias, "dlerror", &f->dlerror, NULL);
    } else {
        f->old_dlopen = 1;
        if (find_func(img, bias, "__libc_dlopen_mode", &f->dlopen, err) < 0 ||
            find_func(img, bias, "__libc_dlsym", &f->dlsym, err) < 0)
            goto out;
    }
    if (find_func(img, bias, "memfd_create", &f->memfd_create, err) < 0 ||
        find_func(img, bias, "close", &f->close, err) < 0 ||
        find_func(img, bias, "__errno_location", &f->errno_location, err) < 0)
        goto out;
    /* Every function memsnap will call must be code of this libc's own mappings. */
    const uint64_t called[] = {f->dlopen, f->dlsym, f->memfd_create, f->close, f->errno_location};
    for (size_t i = 0; i < sizeof called / sizeof called[0]; i++) {
        const struct proc_map *cm = proc_maps_find_addr(maps, called[i]);
        if (!cm || !(cm->perms & PROC_MAP_EXEC) || cm->inode != libc->inode ||
            cm->dev_major != libc->dev_major || cm->dev_minor != libc->dev_minor) {
            ms_error_set(err, "a libc function of process %d resolves outside libc's code",
                         (int)pid);
            goto out;
        }
    }

    /* The stub goes on libc's ELF entry point (it prints the version when libc.so.6 is run
     * as a program; a running process never executes it). It must not run into a symbol. */
    uint64_t entry = elf_image_entry(img);
    for (uint64_t k = 1; k < INJECT_STUB_LEN; k++) {
        struct elf_symbol sym;
        if (elf_image_symbol_at(img, entry + k, &sym, NULL) == 0 && sym.value > entry) {
            ms_error_set(err, "libc's entry point of process %d has no room for the call stub",
                         (int)pid);
            goto out;
        }
    }
    errno_tpoff_find(pid, maps, f);
    f->stub_addr = entry + bias;
    const struct proc_map *m = proc_maps_find_addr(maps, f->stub_addr);
    if (!m || !(m->perms & PROC_MAP_EXEC) || f->stub_addr + INJECT_STUB_LEN > m->end ||
        m->inode != libc->inode) {
        ms_error_set(err, "libc's entry point of process %d is not in its code", (int)pid);
        goto out;
    }
    int fd = from_memory ? -1 : proc_maps_open(pid, m, NULL);
    off_t file_off = (off_t)(m->offset + (f->stub_addr - m->start));
    int got = fd >= 0 && pread(fd, f->stub_orig, INJECT_STUB_LEN, file_off) == INJECT_STUB_LEN;
    if (fd >= 0)
        close(fd);
    if (!got && remote_read(pid, f->stub_addr, f->stub_orig, INJECT_STUB_LEN, err) < 0) {
        ms_error_prefix(err, "reading libc's entry point in process %d", (int)pid);
        goto out;
    }
    rc = 0;
out:
    elf_image_close(img);
    return rc;
}

/* The mapping of an already-loaded identical copy (by either way of loading), or NULL. */
static const struct proc_map *find_loaded_copy(pid_t pid, const struct proc_maps *maps,
                                               const char *name, const char *stem,
                                               const void *image, size_t len)
{
    for (size_t i = 0; i < maps->count; i++) {
        const struct proc_map *m = &maps->maps[i];
        if (m->offset != 0 || !loaded_path_matches(m->path, name, stem))
            continue;
        int fd = proc_maps_open(pid, m, NULL);
        if (fd < 0)
            continue;
        int same = 0;
        char *buf = malloc(len + 1);
        if (buf) {
            ssize_t r = pread(fd, buf, len + 1, 0);
            same = r == (ssize_t)len && memcmp(buf, image, len) == 0;
            free(buf);
        }
        close(fd);
        if (same)
            return m;
    }
    return NULL;
}

static void seccomp_hint(pid_t pid, char *out, size_t n)
{
    char path[64], line[256];
    out[0] = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Seccomp:", 8) == 0 && atoi(line + 8) == 2)
            snprintf(out, n, " (process %d runs under a seccomp filter, which may forbid it)",
                     (int)pid);
    fclose(f);
}

/* Reads the target thread's errno (after a failed libc call) as text. */
static const char *target_errno_text(pid_t pid, uint64_t errno_addr, char *buf, size_t n)
{
    int e = 0;
    if (remote_read(pid, errno_addr, &e, sizeof e, NULL) < 0)
        return "unknown error";
    snprintf(buf, n, "%s", strerror(e));
    return buf;
}

/* Copies the image into the target's memfd through /proc/PID/fd/N. */
static int fill_memfd(pid_t pid, int remote_fd, const void *image, size_t len, ms_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, remote_fd);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return ms_error_errno(err, errno, "opening %s", path);
    const char *p = image;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, p + done, len - done);
        if (w <= 0) {
            int e = errno;
            close(fd);
            return ms_error_errno(err, e, "writing the library into %s", path);
        }
        done += (size_t)w;
    }
    close(fd);
    return 0;
}

/* dlopen(path) in the target. *handle is 0 when it failed there; the target's dlerror text
 * then goes to msg (which also clears the target's dlerror state). Returns -1 only when the
 * thread is lost to us. */
static int remote_dlopen(struct inject_thread *t, const struct libc_funcs *f, const char *path,
                         struct image_file *file, uint64_t *handle, char *msg, size_t msg_len,
                         ms_error *err)
{
    uint64_t path_addr, args[2];
    *handle = 0;
    if (inject_scratch_put(t, path, strlen(path) + 1, &path_addr, err) < 0)
        return -1;
    args[0] = path_addr;
    args[1] = f->old_dlopen ? (TARGET_RTLD_NOW | TARGET_DLOPEN_MODE_FLAG) : TARGET_RTLD_NOW;
    /* An image file gets its name only once the thread is committed to this dlopen. */
    if (inject_call_armed(t, "dlopen", f->dlopen, args, 2, DLOPEN_TIMEOUT_MS,
                          file ? image_file_link : NULL, file, handle, err) < 0)
        return -1;
    if (*handle)
        return 0;
    snprintf(msg, msg_len, "no dlerror text");
    uint64_t s = 0;
    if (f->dlerror &&
        inject_call(t, "dlerror", f->dlerror, NULL, 0, CALL_TIMEOUT_MS, &s, NULL) == 0 && s) {
        if (remote_read(t->pid, s, msg, msg_len - 1, NULL) < 0 &&
            remote_read(t->pid, s, msg, msg_len < 128 ? msg_len - 1 : 127, NULL) < 0)
            snprintf(msg, msg_len, "unreadable dlerror text");
        msg[msg_len - 1] = 0;
    }
    return 0;
}

/* The last resort: dlopen through a memfd of the target (memfd_create, write through
 * /proc/PID/fd/N, dlopen /proc/self/fd/N, close). Returns -1 when the thread is lost or the
 * memfd cannot be made; *handle 0 when dlopen failed (text in msg). */
static int load_memfd(struct inject_thread *t, const struct libc_funcs *f, const char *name,
                      const void *image, size_t len, uint64_t errno_addr, uint64_t *handle,
                      char *msg, size_t msg_len, ms_error *err)
{
    pid_t pid = t->pid;
    char hint[160], etext[128];
    uint64_t name_addr, ret, args[2];
    *handle = 0;
    if (inject_scratch_put(t, name, strlen(name) + 1, &name_addr, err) < 0)
        return -1;
    args[0] = name_addr;
    args[1] = TARGET_MFD_CLOEXEC;
    if (inject_call(t, "memfd_create", f->memfd_create, args, 2, CALL_TIMEOUT_MS, &ret, err) < 0)
        return -1;
    int rfd = (int)(int32_t)ret;
    if (rfd < 0) {
        seccomp_hint(pid, hint, sizeof hint);
        return ms_error_set(err, "memfd_create failed in process %d: %s%s", (int)pid,
                            target_errno_text(pid, errno_addr, etext, sizeof etext), hint);
    }
    char path[48];
    snprintf(path, sizeof path, "/proc/self/fd/%d", rfd);
    int rc = fill_memfd(pid, rfd, image, len, err);
    if (rc == 0 && remote_dlopen(t, f, path, NULL, handle, msg, msg_len, err) < 0)
        return -1; /* the thread is gone from us; it closes nothing more */
    /* The target keeps no descriptor: the mapping holds the memfd alive. */
    args[0] = (uint64_t)rfd;
    if (inject_call(t, "close", f->close, args, 1, CALL_TIMEOUT_MS, &ret, rc < 0 ? NULL : err) < 0)
        return -1;
    return rc;
}

/* The loading part of the session: dlopen of the first image file that loads (each named just
 * before its dlopen, unlinked by the hook inside it and by us as soon as it returns), else of
 * a memfd; then dlsym. Fills *start. */
static int load_fresh(struct inject_thread *t, const struct libc_funcs *f, const char *name,
                      const char *stem, struct image_file files[IMAGE_DIRS], const void *image,
                      size_t len, const char *start_symbol, uint64_t errno_addr, uint64_t *start,
                      ms_error *err)
{
    pid_t pid = t->pid;
    char hint[160], msg[512] = "no dlerror text";
    uint64_t handle = 0, args[2];
    for (int i = 0; i < IMAGE_DIRS && !handle; i++) {
        struct image_file *file = &files[i];
        if (file->fd < 0 && image_file_prepare(pid, file, stem, image, len) < 0)
            continue;
        char path[300];
        snprintf(path, sizeof path, "%s/%s", file->dir, file->name);
        int rc = remote_dlopen(t, f, path, file, &handle, msg, sizeof msg, err);
        image_file_drop(file);
        if (rc < 0)
            return -1;
    }
    if (!handle &&
        load_memfd(t, f, name, image, len, errno_addr, &handle, msg, sizeof msg, err) < 0)
        return -1;
    if (!handle) {
        seccomp_hint(pid, hint, sizeof hint);
        return ms_error_set(err, "dlopen of the library failed in process %d: %s%s", (int)pid, msg,
                            hint);
    }
    uint64_t sym_addr;
    if (inject_scratch_put(t, start_symbol, strlen(start_symbol) + 1, &sym_addr, err) < 0)
        return -1;
    args[0] = handle;
    args[1] = sym_addr;
    if (inject_call(t, "dlsym", f->dlsym, args, 2, CALL_TIMEOUT_MS, start, err) < 0)
        return -1;
    if (!*start)
        return ms_error_set(err, "the loaded library has no symbol %s", start_symbol);
    return 0;
}

/* The whole session. adopt: tid is already traced and stopped by the caller (inject_adopt),
 * else it is attached here (tid > 0) or chosen at a safe point (tid 0). files: the
 * candidate image files (library_session owns them). */
static int session_run(pid_t pid, pid_t tid, int adopt, const void *image, size_t len,
                       const char *name, const char *stem, struct image_file files[IMAGE_DIRS],
                       const char *start_symbol, const void *arg, size_t arg_len,
                       struct inject_result *res, ms_error *err)
{
    long long t0 = now_ns();
    if (!adopt && inject_target_check(pid, err) < 0)
        return -1;

    struct elf_image *img = NULL;
    struct elf_symbol start_sym;
    uint64_t img_vaddr, img_off;
    if (image_open(image, len, &img, err) < 0)
        return ms_error_prefix(err, "reading the library to inject");
    if (elf_image_find_symbol(img, start_symbol, &start_sym, err) < 0 ||
        elf_image_first_load(img, &img_vaddr, &img_off, err) < 0) {
        elf_image_close(img);
        return ms_error_prefix(err, "reading the library to inject");
    }
    elf_image_close(img);

    struct proc_maps maps;
    if (proc_maps_read(pid, &maps, err) < 0)
        return -1;
    struct libc_funcs f;
    if (libc_resolve(pid, &maps, &f, err) < 0) {
        proc_maps_free(&maps);
        return -1;
    }
    /* A copy loaded earlier stays loaded (nothing unloads it), so finding it now, while no
     * thread is stopped, holds; only its absence must be checked again under the stop. */
    const struct proc_map *copy = find_loaded_copy(pid, &maps, name, stem, image, len);
    if (copy) {
        res->reused = 1;
        res->base = proc_maps_file_base(&maps, copy);
    }
    proc_maps_free(&maps);
    uint64_t start = 0;
    struct inject_thread t;
    memset(&t, 0, sizeof t);
    struct safepoint_stats sp;
    long long s0 = now_ns();
    memset(&sp, 0, sizeof sp);
    int rc = adopt     ? inject_adopt(&t, pid, tid, err)
             : tid > 0 ? inject_attach(&t, pid, tid, SAFEPOINT_DEADLINE_MS, err)
                       : safepoint_acquire(pid, &t, SAFEPOINT_DEADLINE_MS, &sp, err);
    res->safepoint_ns = now_ns() - s0;
    res->candidates_refused = sp.refused;
    if (rc < 0) {
        inject_thread_free(&t);
        return -1;
    }
    res->tid = t.tid;
    /* No copy before the stop: look again now that a thread is held at a safe point, since a
     * killed session's thread may have been finishing its dlopen until then. */
    if (!res->reused) {
        if (proc_maps_read(pid, &maps, err) < 0) {
            inject_release(&t, NULL);
            inject_thread_free(&t);
            return -1;
        }
        copy = find_loaded_copy(pid, &maps, name, stem, image, len);
        if (copy) {
            res->reused = 1;
            res->base = proc_maps_file_base(&maps, copy);
        }
        proc_maps_free(&maps);
    }
    if (res->reused)
        start = start_sym.value + elf_load_bias(res->base, img_vaddr);
    size_t scratch = SCRATCH_FIXED + strlen(start_symbol) + arg_len + 64;
    if (inject_begin(&t, f.stub_addr, f.stub_orig, scratch, err) < 0) {
        inject_thread_free(&t);
        return -1;
    }

    /* errno is thread-local state the target may be about to read: keep it. Its address
     * comes from the thread pointer when libc's code told errno's offset, else from a call. */
    uint64_t errno_addr = 0, ret = 0;
    int saved_errno = 0, have_errno = 0;
    rc = 0;
    if (f.errno_tpoff_known) {
        errno_addr = t.raw.fs_base + (uint64_t)f.errno_tpoff;
        if (remote_read(pid, errno_addr, &saved_errno, sizeof saved_errno, NULL) == 0)
            have_errno = 1;
    }
    if (!have_errno)
        rc = inject_call(&t, "__errno_location", f.errno_location, NULL, 0, CALL_TIMEOUT_MS,
                         &errno_addr, err);
    if (have_errno ||
        (rc == 0 && remote_read(pid, errno_addr, &saved_errno, sizeof saved_errno, err) == 0))
        have_errno = 1;
    else if (rc == 0)
        rc = ms_error_prefix(err, "reading errno of thread %d", (int)t.tid);
    if (rc == 0 && !res->reused)
        rc = load_fresh(&t, &f, name, stem, files, image, len, start_symbol, errno_addr, &start,
                        err);
    if (rc == 0) {
        uint64_t arg_addr = 0;
        if (arg && arg_len)
            rc = inject_scratch_put(&t, arg, arg_len, &arg_addr, err);
        if (rc == 0) {
            rc = inject_call(&t, start_symbol, start, &arg_addr, 1, CALL_TIMEOUT_MS, &ret, err);
            res->start_result = (int)(int32_t)ret;
        }
    }
    if (have_errno && t.seized)
        inject_write(&t, errno_addr, &saved_errno, sizeof saved_errno, NULL);
    ms_error finish_err;
    if (inject_finish(&t, &finish_err) < 0 && rc == 0)
        rc = ms_error_set(err, "%s", finish_err.msg);
    res->stopped_ns = t.timing.stopped_ns;
    res->longest_stop_ns = t.timing.longest_stop_ns;
    inject_thread_free(&t);

    if (rc == 0 && !res->reused && proc_maps_read(pid, &maps, NULL) == 0) {
        const struct proc_map *m = find_loaded_copy(pid, &maps, name, stem, image, len);
        if (m)
            res->base = proc_maps_file_base(&maps, m);
        proc_maps_free(&maps);
    }
    res->wall_ns = now_ns() - t0;
    return rc;
}

/* Prepares the image files before any thread is stopped (removing killed runs' leftovers and
 * writing the image, unnamed, into the first usable directory, so that the stop stays short),
 * runs the session, and unlinks whatever file is left in every case. */
static int library_session(pid_t pid, pid_t tid, int adopt, const void *image, size_t len,
                           const char *start_symbol, const void *arg, size_t arg_len,
                           struct inject_result *res, ms_error *err)
{
    struct inject_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    long long t0 = now_ns();
    if (!image || len < 64 || !start_symbol)
        return ms_error_set(err, "inject_library: no library image or start symbol");
    char name[256], stem[256];
    image_soname(image, len, name, sizeof name);
    soname_stem(name, stem, sizeof stem);
    struct image_file files[IMAGE_DIRS];
    int created = 0;
    for (int i = 0; i < IMAGE_DIRS; i++) {
        files[i].dir = image_dirs[i];
        files[i].name[0] = 0;
        files[i].fd = -1;
        files[i].named = 0;
        files[i].dir_fd = target_dir_open(pid, image_dirs[i]);
        if (files[i].dir_fd >= 0)
            stale_files_remove(files[i].dir_fd, stem);
        if (!created)
            created = image_file_prepare(pid, &files[i], stem, image, len) == 0;
    }
    long long prepare_ns = now_ns() - t0;
    int rc = session_run(pid, tid, adopt, image, len, name, stem, files, start_symbol, arg, arg_len,
                         res, err);
    for (int i = 0; i < IMAGE_DIRS; i++) {
        image_file_drop(&files[i]);
        if (files[i].dir_fd >= 0)
            close(files[i].dir_fd);
    }
    res->wall_ns += prepare_ns;
    return rc;
}

int inject_library(pid_t pid, const void *image, size_t len, const char *start_symbol,
                   const void *arg, size_t arg_len, struct inject_result *res, ms_error *err)
{
    return inject_library_on_thread(pid, 0, image, len, start_symbol, arg, arg_len, res, err);
}

int inject_library_on_thread(pid_t pid, pid_t tid, const void *image, size_t len,
                             const char *start_symbol, const void *arg, size_t arg_len,
                             struct inject_result *res, ms_error *err)
{
    return library_session(pid, tid, 0, image, len, start_symbol, arg, arg_len, res, err);
}

int inject_library_adopted(pid_t pid, pid_t tid, const void *image, size_t len,
                           const char *start_symbol, const void *arg, size_t arg_len,
                           struct inject_result *res, ms_error *err)
{
    if (tid <= 0)
        return ms_error_set(err, "inject_library_adopted: no thread given");
    return library_session(pid, tid, 1, image, len, start_symbol, arg, arg_len, res, err);
}
