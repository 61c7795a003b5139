/*
 * proc_maps.h - the address space of another process, as /proc/PID/maps describes it.
 *
 * Everything that reads a live interpreter starts here: which file is the python executable,
 * which is libpython, libc and ld.so, where each is loaded, and which mapping holds a given
 * address. A mapped file is opened only when it is proven to be the mapped one (same device
 * and inode as the maps line), whichever of /proc/PID/map_files, /proc/PID/root/<path> or
 * <path> yields it: a path may name another file by now (deleted, replaced by an upgrade,
 * or another mount namespace's), and nothing read from another file may describe the
 * target. Unproven objects are read from the target's memory instead (elf_remote.h).
 *
 * The maps text is untrusted only in the sense that paths may contain anything (spaces,
 * newlines are escaped by the kernel, " (deleted)" suffixes); lines that do not parse are
 * skipped rather than fatal, so a kernel that adds columns does not break us.
 */
#ifndef MEMSNAP_PROC_MAPS_H
#define MEMSNAP_PROC_MAPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* perms bits of a mapping */
#define PROC_MAP_READ   1u
#define PROC_MAP_WRITE  2u
#define PROC_MAP_EXEC   4u
#define PROC_MAP_SHARED 8u

struct proc_map {
    uint64_t start, end; /* [start, end) */
    uint64_t offset;     /* file offset of start */
    unsigned perms;      /* PROC_MAP_* */
    unsigned dev_major, dev_minor;
    uint64_t inode;
    int deleted; /* the kernel appended " (deleted)": the file is gone or replaced */
    /* The path with any " (deleted)" removed; "" for anonymous mappings; pseudo paths kept
     * as the kernel prints them ("[heap]", "[stack]", "/memfd:name"). Owned by the
     * proc_maps it belongs to. */
    const char *path;
};

struct proc_maps {
    struct proc_map *maps; /* sorted by start, as the kernel prints them */
    size_t count;
    char *strings; /* storage for every path (private) */
};

/* Reads and parses /proc/PID/maps into out (free with proc_maps_free). Fails with
 * "no such process" when pid does not exist, or a permission sentence. */
int proc_maps_read(pid_t pid, struct proc_maps *out, ms_error *err);

/* Parses maps text (len bytes, need not be NUL-terminated) into out. Lines that do not
 * parse are skipped. Fails only on allocation failure. */
int proc_maps_parse(const char *text, size_t len, struct proc_maps *out, ms_error *err);

/* Parses one line (without the newline) into m; m->path points into path_buf (pathn bytes,
 * truncated if longer). Returns 0, or -1 when the line is not a maps line. */
int proc_maps_parse_line(const char *line, size_t len, struct proc_map *m, char *path_buf,
                         size_t pathn);

/* Releases what proc_maps_read/parse allocated; out is left empty. */
void proc_maps_free(struct proc_maps *m);

/* The mapping containing addr, or NULL. */
const struct proc_map *proc_maps_find_addr(const struct proc_maps *m, uint64_t addr);

/* The mapping of exactly this path with the lowest file offset (its start is where the
 * file's offset 0 is loaded when that offset is 0), or NULL. */
const struct proc_map *proc_maps_find_path(const struct proc_maps *m, const char *path);

/* The lowest-offset mapping of the first file whose path satisfies match(path, arg), or
 * NULL. match receives the path (never "" and never a "[pseudo]" name). */
const struct proc_map *proc_maps_find_match(const struct proc_maps *m,
                                            int (*match)(const char *path, void *arg), void *arg);

/* The process's executable mapping (matched by /proc/PID/exe), or NULL. */
const struct proc_map *proc_maps_find_exe(const struct proc_maps *m, pid_t pid);

/* libpython3.X[m|d|u].so*, lowest offset, or NULL. */
const struct proc_map *proc_maps_find_libpython(const struct proc_maps *m);

/* glibc's libc.so.6 (or libc-2.X.so), lowest offset, or NULL. */
const struct proc_map *proc_maps_find_libc(const struct proc_maps *m);

/* The dynamic loader (ld-linux-x86-64.so.2, ld-2.X.so), lowest offset, or NULL. */
const struct proc_map *proc_maps_find_ld(const struct proc_maps *m);

/* 1 if the file name part of path is libpython3.<digits>[m|d|u].so, optionally followed by
 * ".<anything>", else 0. Exposed for tests. */
int proc_maps_is_libpython(const char *path);

/* Start address of the mapping of the same file at offset 0 (the ELF header), or 0 when
 * there is none. */
uint64_t proc_maps_file_base(const struct proc_maps *m, const struct proc_map *of);

/* Opens (O_RDONLY | O_CLOEXEC) the file behind a mapping, proven to be the mapped one: its
 * device and inode (fstat) equal the maps line's. Tries /proc/PID/map_files/<start>-<end>
 * (works for deleted files and memfds; needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), then
 * /proc/PID/root/<path> (the target's root: containers, chroots), then <path> itself (the
 * target's mount namespace may differ from memsnap's, so this only counts when it matches).
 * A file that opens but is another one (replaced, deleted, another namespace's, or a
 * filesystem whose stat device differs from the mapped one) is never returned. Returns the
 * fd, or -1 with err ("... is not the file it mapped" / "cannot be opened"); callers then
 * read what they need from the target's memory (elf_remote.h) or refuse. */
int proc_maps_open(pid_t pid, const struct proc_map *map, ms_error *err);

/* 1 if the open file fd is the file map maps (same inode and device), else 0. */
int proc_maps_same_file(int fd, const struct proc_map *map);

/* Opens the target's executable through /proc/PID/exe. Returns the fd or -1 with err. */
int proc_maps_open_exe(pid_t pid, ms_error *err);

#endif
