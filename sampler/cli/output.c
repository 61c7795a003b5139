/*
 * output.c - the -o of attach and run: what the path is, checked before recording, and
 * writing the profile to it after (contract in output.h).
 *
 * Why not always "temporary file + rename": renaming over a device node, a FIFO or a symlink
 * replaces the node itself (-o /dev/null turned the machine's /dev/null into a regular file;
 * a FIFO's reader got nothing; a symlink became a plain file). So the path is classified
 * first, following symlinks by hand to the file that is really meant, and only regular files
 * (or names not yet taken) get the atomic replacement. And the check happens before any
 * process is touched: an output found impossible after a long recording loses the recording.
 */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUTPUT_MAX_LINKS 40 /* the kernel's own limit on a chain of symlinks */

/* The directory part of path ("." when none). */
static void dir_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

/* Follows path through any symlinks to the name that is really written: out gets it, *st its
 * lstat and *exists whether it exists. A dangling link's target is created there. */
static int follow_links(const char *path, char *out, size_t n, struct stat *st, int *exists,
                        ms_error *err)
{
    char cur[PATH_MAX];
    if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur)
        return ms_error_set(err, "cannot write the profile to %.100s...: the path is too long",
                            path);
    for (int hops = 0;; hops++) {
        if (lstat(cur, st) < 0) {
            if (errno != ENOENT)
                return ms_error_errno(err, errno, "cannot write the profile to %s", path);
            *exists = 0;
            break;
        }
        if (!S_ISLNK(st->st_mode)) {
            *exists = 1;
            break;
        }
        if (hops == OUTPUT_MAX_LINKS)
            return ms_error_errno(err, ELOOP, "cannot write the profile to %s", path);
        char target[PATH_MAX];
        ssize_t len = readlink(cur, target, sizeof target - 1);
        if (len < 0)
            return ms_error_errno(err, errno, "cannot write the profile to %s: reading link %s",
                                  path, cur);
        target[len] = 0;
        if (target[0] != '/' && !strncmp(cur, "/proc/", 6) && strchr(target, ':')) {
            /* A /proc magic link to a pipe or socket ("pipe:[123]": -o /dev/stdout into a
             * pipe): not a path; the link itself opens the object. */
            if (stat(cur, st) < 0)
                return ms_error_errno(err, errno, "cannot write the profile to %s", path);
            *exists = 1;
            break;
        }
        if (target[0] == '/' || !strchr(cur, '/')) {
            snprintf(cur, sizeof cur, "%s", target);
        } else {
            char dir[PATH_MAX], next[2 * PATH_MAX + 2];
            dir_of(cur, dir, sizeof dir);
            snprintf(next, sizeof next, "%s/%s", dir, target);
            if (strlen(next) >= sizeof cur)
                return ms_error_errno(err, ENAMETOOLONG, "cannot write the profile to %s", path);
            snprintf(cur, sizeof cur, "%s", next);
        }
    }
    if (!cur[0] || cur[strlen(cur) - 1] == '/')
        return ms_error_set(err, "cannot write the profile to %s: it names a directory", path);
    snprintf(out, n, "%s", cur);
    return 0;
}

/* Proves that dest's directory accepts a new file, the way profile_write will create its
 * temporary: an unnamed O_TMPFILE (gone on close), else a hidden name removed at once. */
static int dir_probe(const char *given, const char *dest, ms_error *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 64];
    dir_of(dest, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) < 0)
        return ms_error_errno(err, errno, "cannot write the profile to %s: directory %s", given,
                              dir);
    if (!S_ISDIR(st.st_mode))
        return ms_error_errno(err, ENOTDIR, "cannot write the profile to %s: %s", given, dir);
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/.memsnap-probe.%d.tmp", dir, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ms_error_errno(
            err, errno, "cannot write the profile to %s: cannot create a file in %s", given, dir);
    close(fd);
    unlink(tmp);
    return 0;
}

/* Opens a device or FIFO for writing without blocking on the open itself, then makes the
 * descriptor blocking for the writes. -1 with errno. */
static int open_in_place(const char *path)
{
    int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* Appends to err what the failure cost: the recording is not saved anywhere. -1. */
static int lost(ms_error *err, const char *state, const char *name)
{
    char inner[sizeof err->msg];
    snprintf(inner, sizeof inner, "%s", err->msg);
    return ms_error_set(err, "%s; the recording was not saved (%s: %s)", inner, name, state);
}

int output_prepare(struct output *o, const char *path, ms_error *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    if (!path || !*path)
        return ms_error_set(err, "no output file given");
    if (snprintf(o->given, sizeof o->given, "%s", path) >= (int)sizeof o->given)
        return ms_error_set(err, "cannot write the profile to %.100s...: the path is too long",
                            path);
    if (!strcmp(path, "-")) {
        o->kind = OUTPUT_STDOUT;
        int fl = fcntl(STDOUT_FILENO, F_GETFL);
        if (fl < 0)
            return ms_error_set(err, "cannot write the profile to standard output: it is closed");
        if ((fl & O_ACCMODE) == O_RDONLY)
            return ms_error_set(err,
                                "cannot write the profile to standard output: it is read-only");
        return 0;
    }
    struct stat st;
    int exists = 0;
    if (follow_links(path, o->dest, sizeof o->dest, &st, &exists, err) < 0)
        return -1;
    if (!exists || S_ISREG(st.st_mode)) {
        o->kind = OUTPUT_FILE;
        return dir_probe(path, o->dest, err);
    }
    if (S_ISCHR(st.st_mode)) {
        o->kind = OUTPUT_CHAR;
        o->fd = open_in_place(o->dest);
        if (o->fd < 0)
            return ms_error_errno(err, errno, "cannot write the profile to %s (a device)", path);
        return 0;
    }
    if (S_ISFIFO(st.st_mode)) {
        o->kind = OUTPUT_FIFO;
        o->fd = open_in_place(o->dest);
        if (o->fd >= 0)
            return 0;
        if (errno != ENXIO) /* ENXIO: no reader yet; opened (blocking) at the end */
            return ms_error_errno(err, errno, "cannot write the profile to %s (a FIFO)", path);
        if (access(o->dest, W_OK) < 0)
            return ms_error_errno(err, errno, "cannot write the profile to %s (a FIFO)", path);
        return 0;
    }
    const char *what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return ms_error_set(err,
                        "cannot write the profile to %s: it is %s (give a file name, a "
                        "character device, a FIFO, or - for standard output)",
                        path, what);
}

int output_is_stream(const struct output *o)
{
    return o->kind != OUTPUT_FILE;
}

int output_write(struct output *o, const struct profile *p, ms_error *err)
{
    if (o->kind == OUTPUT_FILE) {
        if (profile_write(p, o->dest, 1, err) == 0)
            return 0;
        return lost(err, "no partial file was left behind", o->given);
    }
    int fd = o->kind == OUTPUT_STDOUT ? STDOUT_FILENO : o->fd;
    const char *name = o->kind == OUTPUT_STDOUT ? "standard output" : o->given;
    if (fd < 0) {
        /* A FIFO that had no reader when recording began: wait for one, as a shell would. */
        do
            fd = open(o->dest, O_WRONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0)
            return ms_error_errno(err, errno, "the profile was not saved: opening %s", name);
        o->fd = fd;
    }
    /* A reader that goes away must give EPIPE, not kill memsnap before it says so. */
    struct sigaction ign = {0}, old;
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    int rc = profile_write_fd(p, fd, 1, name, err);
    if (rc == 0 && o->kind == OUTPUT_STDOUT && fsync(fd) < 0 && errno != EINVAL && errno != EROFS &&
        errno != EBADF) {
        /* a regular file behind stdout: a full disk shows up at latest here */
        rc = ms_error_errno(err, errno, "writing the profile to %s", name);
    }
    sigaction(SIGPIPE, &old, NULL);
    if (rc < 0)
        return lost(err, "what reached it is incomplete", name);
    return 0;
}

void output_close(struct output *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
}
