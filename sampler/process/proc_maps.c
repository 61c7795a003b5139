/*
 * proc_maps.c - parsing /proc/PID/maps and opening the files it names; see proc_maps.h.
 *
 * Paths are kept in one string block so a proc_maps is two allocations whatever the number
 * of mappings (a Python process with numpy has a few thousand).
 */
#include "proc_maps.h"

#include "remote.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char deleted_suffix[] = " (deleted)";

/* Parses a hex number at *p, advancing it; returns -1 when there is no digit. */
static int parse_hex(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    int digits = 0;
    while (s < end && isxdigit((unsigned char)*s)) {
        if (digits >= 16)
            return -1;
        int c = (unsigned char)*s;
        v = v * 16 + (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
        s++;
        digits++;
    }
    if (!digits)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

static int parse_dec(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    int digits = 0;
    while (s < end && isdigit((unsigned char)*s)) {
        if (digits >= 19)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
        digits++;
    }
    if (!digits)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

static int expect(const char **p, const char *end, char c)
{
    if (*p >= end || **p != c)
        return -1;
    (*p)++;
    return 0;
}

static void skip_spaces(const char **p, const char *end)
{
    while (*p < end && **p == ' ')
        (*p)++;
}

int proc_maps_parse_line(const char *line, size_t len, struct proc_map *m, char *path_buf,
                         size_t pathn)
{
    const char *p = line, *end = line + len;
    uint64_t dmaj, dmin;
    memset(m, 0, sizeof *m);
    if (parse_hex(&p, end, &m->start) || expect(&p, end, '-') || parse_hex(&p, end, &m->end) ||
        expect(&p, end, ' '))
        return -1;
    if (m->end < m->start || end - p < 5)
        return -1;
    const char *perms = p;
    if ((perms[0] != 'r' && perms[0] != '-') || (perms[1] != 'w' && perms[1] != '-') ||
        (perms[2] != 'x' && perms[2] != '-') || (perms[3] != 'p' && perms[3] != 's'))
        return -1;
    m->perms = (perms[0] == 'r' ? PROC_MAP_READ : 0) | (perms[1] == 'w' ? PROC_MAP_WRITE : 0) |
               (perms[2] == 'x' ? PROC_MAP_EXEC : 0) | (perms[3] == 's' ? PROC_MAP_SHARED : 0);
    p += 4;
    if (expect(&p, end, ' ') || parse_hex(&p, end, &m->offset) || expect(&p, end, ' ') ||
        parse_hex(&p, end, &dmaj) || expect(&p, end, ':') || parse_hex(&p, end, &dmin) ||
        expect(&p, end, ' ') || parse_dec(&p, end, &m->inode))
        return -1;
    if (dmaj > UINT_MAX || dmin > UINT_MAX)
        return -1;
    m->dev_major = (unsigned)dmaj;
    m->dev_minor = (unsigned)dmin;
    if (p < end && *p != ' ')
        return -1;
    skip_spaces(&p, end);
    size_t plen = (size_t)(end - p);
    size_t sl = sizeof deleted_suffix - 1;
    if (plen >= sl && !memcmp(end - sl, deleted_suffix, sl)) {
        m->deleted = 1;
        plen -= sl;
    }
    if (pathn == 0)
        return -1;
    if (plen >= pathn)
        plen = pathn - 1;
    memcpy(path_buf, p, plen);
    path_buf[plen] = 0;
    m->path = path_buf;
    return 0;
}

int proc_maps_parse(const char *text, size_t len, struct proc_maps *out, ms_error *err)
{
    memset(out, 0, sizeof *out);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    /* Each path is shorter than its line, so len + lines bytes hold every path and its NUL. */
    out->maps = calloc(lines, sizeof *out->maps);
    out->strings = malloc(len + lines + 1);
    if (!out->maps || !out->strings) {
        proc_maps_free(out);
        return ms_error_set(err, "out of memory parsing a maps file of %zu bytes", len);
    }
    size_t used = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        struct proc_map *m = &out->maps[out->count];
        char *buf = out->strings + used;
        size_t room = len + lines + 1 - used;
        if (proc_maps_parse_line(p, (size_t)(le - p), m, buf, room) == 0) {
            used += strlen(buf) + 1;
            out->count++;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

void proc_maps_free(struct proc_maps *m)
{
    free(m->maps);
    free(m->strings);
    m->maps = NULL;
    m->strings = NULL;
    m->count = 0;
}

int proc_maps_read(pid_t pid, struct proc_maps *out, ms_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return ms_error_set(err, "no process with pid %d exists", (int)pid);
        if (errno == EACCES || errno == EPERM)
            return ms_error_set(err, "not allowed to read %s: %s", path,
                                remote_permission_hint_for(pid));
        return ms_error_errno(err, errno, "opening %s", path);
    }
    size_t cap = 65536, len = 0;
    char *text = malloc(cap);
    if (!text) {
        close(fd);
        return ms_error_set(err, "out of memory reading %s", path);
    }
    for (;;) {
        if (len == cap) {
            if (cap >= (size_t)256 << 20) {
                free(text);
                close(fd);
                return ms_error_set(err, "%s is larger than 256 MiB", path);
            }
            char *bigger = realloc(text, cap * 2);
            if (!bigger) {
                free(text);
                close(fd);
                return ms_error_set(err, "out of memory reading %s", path);
            }
            text = bigger;
            cap *= 2;
        }
        ssize_t k = read(fd, text + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            free(text);
            close(fd);
            if (e == ESRCH)
                return ms_error_set(err, "process %d exited", (int)pid);
            if (e == EACCES || e == EPERM)
                return ms_error_set(err, "not allowed to read %s: %s", path,
                                    remote_permission_hint_for(pid));
            return ms_error_errno(err, e, "reading %s", path);
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    int rc = proc_maps_parse(text, len, out, err);
    free(text);
    if (rc == 0 && out->count == 0) {
        proc_maps_free(out);
        /* A zombie or a kernel thread has an empty maps file. */
        return ms_error_set(err, "process %d has no memory mappings (exited or a kernel thread)",
                            (int)pid);
    }
    return rc;
}

const struct proc_map *proc_maps_find_addr(const struct proc_maps *m, uint64_t addr)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct proc_map *x = &m->maps[mid];
        if (addr < x->start)
            hi = mid;
        else if (addr >= x->end)
            lo = mid + 1;
        else
            return x;
    }
    return NULL;
}

static int is_file_path(const char *path)
{
    return path && path[0] && path[0] != '[';
}

const struct proc_map *proc_maps_find_match(const struct proc_maps *m,
                                            int (*match)(const char *path, void *arg), void *arg)
{
    const char *first = NULL;
    const struct proc_map *best = NULL;
    for (size_t i = 0; i < m->count; i++) {
        const struct proc_map *x = &m->maps[i];
        if (!is_file_path(x->path))
            continue;
        if (first) {
            if (strcmp(first, x->path))
                continue;
        } else if (!match(x->path, arg)) {
            continue;
        } else {
            first = x->path;
        }
        if (!best || x->offset < best->offset)
            best = x;
    }
    return best;
}

static int match_exact(const char *path, void *arg)
{
    return !strcmp(path, (const char *)arg);
}

const struct proc_map *proc_maps_find_path(const struct proc_maps *m, const char *path)
{
    return proc_maps_find_match(m, match_exact, (void *)path);
}

const struct proc_map *proc_maps_find_exe(const struct proc_maps *m, pid_t pid)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
    ssize_t k = readlink(link, target, sizeof target - 1);
    if (k <= 0)
        return NULL;
    target[k] = 0;
    size_t sl = sizeof deleted_suffix - 1;
    if ((size_t)k > sl && !strcmp(target + k - sl, deleted_suffix))
        target[k - sl] = 0;
    /* readlink of exe is relative to the reader's root, maps paths to the target's root;
     * they agree unless the target is chrooted or in a container: then match the inode. */
    const struct proc_map *x = proc_maps_find_path(m, target);
    if (x)
        return x;
    struct stat st;
    if (stat(link, &st) != 0)
        return NULL;
    for (size_t i = 0; i < m->count; i++) {
        const struct proc_map *y = &m->maps[i];
        if (is_file_path(y->path) && y->inode == (uint64_t)st.st_ino &&
            y->dev_major == major(st.st_dev) && y->dev_minor == minor(st.st_dev))
            return proc_maps_find_path(m, y->path);
    }
    return NULL;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int proc_maps_is_libpython(const char *path)
{
    const char *b = base_name(path);
    if (strncmp(b, "libpython3.", 11))
        return 0;
    const char *p = b + 11;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == 't') /* free-threaded (3.13t+): found, so that it can be refused by name */
        p++;
    if (*p == 'm' || *p == 'd' || *p == 'u')
        p++;
    if (strncmp(p, ".so", 3))
        return 0;
    p += 3;
    return *p == 0 || *p == '.';
}

static int match_libpython(const char *path, void *arg)
{
    (void)arg;
    return proc_maps_is_libpython(path);
}

const struct proc_map *proc_maps_find_libpython(const struct proc_maps *m)
{
    return proc_maps_find_match(m, match_libpython, NULL);
}

/* "<stem>.so.<digits>" or "<stem>-<digits>.<digits>.so" (old glibc naming). */
static int match_versioned_so(const char *path, const char *stem)
{
    const char *b = base_name(path);
    size_t n = strlen(stem);
    if (strncmp(b, stem, n))
        return 0;
    const char *p = b + n;
    if (!strncmp(p, ".so.", 4))
        return isdigit((unsigned char)p[4]) != 0;
    if (*p == '-') {
        size_t l = strlen(p);
        return l > 4 && isdigit((unsigned char)p[1]) && !strcmp(p + l - 3, ".so");
    }
    return 0;
}

static int match_libc(const char *path, void *arg)
{
    (void)arg;
    return match_versioned_so(path, "libc");
}

static int match_ld(const char *path, void *arg)
{
    (void)arg;
    return match_versioned_so(path, "ld-linux-x86-64") || match_versioned_so(path, "ld");
}

const struct proc_map *proc_maps_find_libc(const struct proc_maps *m)
{
    return proc_maps_find_match(m, match_libc, NULL);
}

const struct proc_map *proc_maps_find_ld(const struct proc_maps *m)
{
    return proc_maps_find_match(m, match_ld, NULL);
}

uint64_t proc_maps_file_base(const struct proc_maps *m, const struct proc_map *of)
{
    for (size_t i = 0; i < m->count; i++) {
        const struct proc_map *x = &m->maps[i];
        if (x->offset == 0 && x->inode == of->inode && x->dev_major == of->dev_major &&
            x->dev_minor == of->dev_minor && !strcmp(x->path, of->path))
            return x->start;
    }
    return 0;
}

int proc_maps_same_file(int fd, const struct proc_map *map)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || map->inode == 0)
        return 0;
    /* The kernel prints the superblock's device as "%02x:%02x" of MAJOR() and MINOR(); fstat
     * encodes the same device, which major() and minor() decode. Where a filesystem reports
     * another device to stat than the one it maps (btrfs subvolumes, some overlayfs setups),
     * they differ and the file stays unproven: the caller reads the target's memory. */
    return (uint64_t)st.st_ino == map->inode && major(st.st_dev) == map->dev_major &&
           minor(st.st_dev) == map->dev_minor;
}

/* Opens path and keeps it only if it is the mapped file. 0 with *fd, or -1 (errno-like
 * reason in *why: 0 when a file was found but was another one). The path is first opened
 * with O_PATH, which opens nothing (a FIFO or device placed there by the target is not
 * touched); only the proven file is then opened for reading. */
static int open_if_same(const char *path, const struct proc_map *map, int *fd, int *why)
{
    int p = open(path, O_PATH | O_CLOEXEC);
    if (p < 0) {
        *why = errno;
        return -1;
    }
    if (!proc_maps_same_file(p, map)) {
        close(p);
        *why = 0;
        return -1;
    }
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", p);
    int f = open(self, O_RDONLY | O_CLOEXEC);
    *why = errno;
    close(p);
    if (f < 0)
        return -1;
    if (!proc_maps_same_file(f, map)) { /* cannot happen: the same open file */
        close(f);
        *why = 0;
        return -1;
    }
    *fd = f;
    return 0;
}

int proc_maps_open(pid_t pid, const struct proc_map *map, ms_error *err)
{
    char path[PATH_MAX + 64];
    int fd = -1, why = 0, other = 0;
    snprintf(path, sizeof path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, map->start,
             map->end);
    if (open_if_same(path, map, &fd, &why) == 0)
        return fd;
    other |= why == 0;
    if (!is_file_path(map->path))
        return ms_error_set(err, "the file mapped at 0x%" PRIx64 " by process %d cannot be opened",
                            map->start, (int)pid);
    snprintf(path, sizeof path, "/proc/%d/root%s", (int)pid, map->path);
    if (open_if_same(path, map, &fd, &why) == 0)
        return fd;
    other |= why == 0;
    if (map->path[0] == '/' && open_if_same(map->path, map, &fd, &why) == 0)
        return fd;
    other |= why == 0;
    if (other)
        return ms_error_set(err,
                            "%s (mapped by process %d) is not the file it mapped: the file was "
                            "replaced or its device and inode cannot be compared",
                            map->path, (int)pid);
    return ms_error_set(err, "%s (mapped by process %d) cannot be opened%s", map->path, (int)pid,
                        map->deleted ? ": it was deleted" : "");
}

int proc_maps_open_exe(pid_t pid, ms_error *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return ms_error_set(err, "no process with pid %d exists (or it has exited)", (int)pid);
        return ms_error_errno(err, errno, "opening %s", path);
    }
    return fd;
}
