/*
 * testproc.c - process helpers for the integration tests; see testproc.h.
 */
#include "testproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *pyenv_root(void)
{
    static char root[PATH_MAX];
    if (root[0])
        return root;
    const char *env = getenv("PYENV_ROOT");
    if (env && *env) {
        snprintf(root, sizeof root, "%s", env);
        return root;
    }
    FILE *f = popen("pyenv root 2>/dev/null", "r");
    if (f) {
        if (fgets(root, sizeof root, f))
            root[strcspn(root, "\n")] = 0;
        pclose(f);
    }
    if (!root[0]) {
        const char *home = getenv("HOME");
        snprintf(root, sizeof root, "%s/.pyenv", home ? home : "/root");
    }
    return root;
}

/* Picks the newest pyenv install of 3.<minor> (directories named 3.<minor>.<patch>). */
static int find_pyenv(int minor, char *path, size_t n)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/versions", pyenv_root());
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int ma, mi, pa;
        char tail;
        if (sscanf(e->d_name, "%d.%d.%d%c", &ma, &mi, &pa, &tail) != 3 || ma != 3 || mi != minor)
            continue;
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%s/%s/bin/python3", dir, e->d_name);
        if (access(cand, X_OK) == 0 && pa > best) {
            best = pa;
            snprintf(path, n, "%s", cand);
        }
    }
    closedir(d);
    return best >= 0 ? 0 : -1;
}

int test_pythons(struct test_python *out, int max)
{
    int n = 0;
    if (n < max && access("/usr/bin/python3", X_OK) == 0) {
        struct test_python *t = &out[n++];
        snprintf(t->path, sizeof t->path, "/usr/bin/python3");
        t->major = 3;
        t->minor = 11;
        t->debian = 1;
        FILE *f = popen("/usr/bin/python3 -c 'import sys; print(sys.version_info[1])'", "r");
        if (f) {
            if (fscanf(f, "%d", &t->minor) != 1)
                t->minor = 11;
            pclose(f);
        }
        snprintf(t->label, sizeof t->label, "debian-3.%d", t->minor);
    } else {
        printf("SKIP: Debian's /usr/bin/python3 is not installed\n");
    }
    for (int minor = 8; minor <= 14 && n < max; minor++) {
        struct test_python *t = &out[n];
        if (find_pyenv(minor, t->path, sizeof t->path) == 0) {
            t->major = 3;
            t->minor = minor;
            t->debian = 0;
            snprintf(t->label, sizeof t->label, "pyenv-3.%d", minor);
            n++;
        } else {
            printf("SKIP: pyenv's python 3.%d is not installed under %s/versions\n", minor,
                   pyenv_root());
        }
    }
    fflush(stdout);
    return n;
}

static const char *repo_root(void)
{
    static char root[PATH_MAX];
    if (root[0])
        return root;
    /* The tests run from the repository root (make); fall back to the binary's location. */
    if (access("tests/py", F_OK) == 0) {
        if (!getcwd(root, sizeof root))
            snprintf(root, sizeof root, ".");
        return root;
    }
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        for (int up = 0; up < 5; up++) {
            char *s = strrchr(exe, '/');
            if (!s)
                break;
            *s = 0;
            char probe[PATH_MAX + 16];
            snprintf(probe, sizeof probe, "%s/tests/py", exe);
            if (access(probe, F_OK) == 0) {
                snprintf(root, sizeof root, "%s", exe);
                return root;
            }
        }
    }
    snprintf(root, sizeof root, ".");
    return root;
}

const char *test_py_script(const char *name)
{
    static char path[4][PATH_MAX];
    static int slot;
    char *p = path[slot++ & 3];
    snprintf(p, PATH_MAX, "%s/tests/py/%s", repo_root(), name);
    return p;
}

const char *test_memsnap(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("MEMSNAP");
    if (env && *env)
        return env;
    snprintf(path, sizeof path, "%s/build/memsnap", repo_root());
    return path;
}

int test_proc_spawn(struct test_proc *p, char *const argv[])
{
    int in[2], out[2];
    memset(p, 0, sizeof *p);
    p->pid = -1;
    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->in_fd = in[1];
    p->out_fd = out[0];
    return 0;
}

int test_proc_wait_line(struct test_proc *p, const char *prefix, char *line, size_t n,
                        int timeout_ms)
{
    long long deadline = test_now_ms() + timeout_ms;
    size_t scanned = 0;
    for (;;) {
        /* Look for a complete line with the prefix among what is buffered. */
        char *start = p->buf;
        char *nl;
        while ((nl = memchr(start, '\n', p->len - (size_t)(start - p->buf)))) {
            size_t plen = strlen(prefix);
            if ((size_t)(nl - start) >= plen && !memcmp(start, prefix, plen)) {
                size_t l = (size_t)(nl - start);
                if (line && n) {
                    if (l >= n)
                        l = n - 1;
                    memcpy(line, start, l);
                    line[l] = 0;
                }
                /* Consume through this line so the next wait sees later output. */
                size_t used = (size_t)(nl + 1 - p->buf);
                memmove(p->buf, nl + 1, p->len - used);
                p->len -= used;
                p->buf[p->len] = 0;
                return 0;
            }
            start = nl + 1;
        }
        (void)scanned;
        long long left = deadline - test_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (p->len + 1 >= sizeof p->buf) {
            /* Drop everything but the unfinished last line. */
            char *last = memrchr(p->buf, '\n', p->len);
            size_t keep = last ? p->len - (size_t)(last + 1 - p->buf) : 0;
            memmove(p->buf, p->buf + p->len - keep, keep);
            p->len = keep;
        }
        ssize_t k = read(p->out_fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p->len += (size_t)k;
        p->buf[p->len] = 0;
    }
}

int test_proc_send(struct test_proc *p, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = write(p->in_fd, s, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

int test_proc_wait_exit(struct test_proc *p, int timeout_ms)
{
    long long deadline = test_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = -1;
            return st;
        }
        if (r < 0)
            return -1;
        if (test_now_ms() > deadline)
            return -1;
        usleep(5000);
    }
}

void test_proc_kill(struct test_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    if (p->in_fd > 0)
        close(p->in_fd);
    if (p->out_fd > 0)
        close(p->out_fd);
    p->in_fd = p->out_fd = -1;
}

static int for_each_task_status(pid_t pid, const char *key, char *val, size_t n, int want)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int hit = 0;
    struct dirent *e;
    while (!hit && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[128];
        snprintf(path, sizeof path, "%s/%s/status", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char l[256];
        while (fgets(l, sizeof l, f)) {
            if (!strncmp(l, key, strlen(key))) {
                const char *v = l + strlen(key);
                while (*v == ' ' || *v == '\t')
                    v++;
                snprintf(val, n, "%s", v);
                if (want == 0 && (v[0] == 't' || v[0] == 'T'))
                    hit = 1;
                if (want == 1 && atoi(v) != 0)
                    hit = 1;
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return hit;
}

int test_pid_has_stopped_thread(pid_t pid)
{
    char v[64];
    return for_each_task_status(pid, "State:", v, sizeof v, 0);
}

int test_pid_is_traced(pid_t pid)
{
    char v[64];
    return for_each_task_status(pid, "TracerPid:", v, sizeof v, 1);
}

static void drain(int fd, char *buf, size_t n, size_t *len, int *open)
{
    char tmp[4096];
    ssize_t k = read(fd, tmp, sizeof tmp);
    if (k <= 0) {
        if (k == 0 || errno != EINTR)
            *open = 0;
        return;
    }
    size_t room = n > *len + 1 ? n - 1 - *len : 0;
    size_t c = (size_t)k < room ? (size_t)k : room;
    memcpy(buf + *len, tmp, c);
    *len += c;
    buf[*len] = 0;
}

int test_run_capture(char *const argv[], char *out, size_t outn, char *err, size_t errn,
                     int timeout_ms)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t lo = 0, le = 0;
    if (out && outn)
        out[0] = 0;
    if (err && errn)
        err[0] = 0;
    char dummy[2];
    int oo = 1, eo = 1;
    long long deadline = test_now_ms() + timeout_ms;
    while (oo || eo) {
        struct pollfd pf[2] = {{.fd = oo ? po[0] : -1, .events = POLLIN},
                               {.fd = eo ? pe[0] : -1, .events = POLLIN}};
        long long left = deadline - test_now_ms();
        if (left <= 0)
            break;
        int r = poll(pf, 2, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (pf[0].revents)
            drain(po[0], out ? out : dummy, out ? outn : sizeof dummy, &lo, &oo);
        if (pf[1].revents)
            drain(pe[0], err ? err : dummy, err ? errn : sizeof dummy, &le, &eo);
    }
    close(po[0]);
    close(pe[0]);
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (test_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -2;
        }
        usleep(2000);
    }
}

int test_run_memsnap(char *const args[], char *out, size_t outn, char *err, size_t errn,
                     int timeout_ms)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)test_memsnap();
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return test_run_capture(argv, out, outn, err, errn, timeout_ms);
}

int test_copy_executable(const char *src, char *out, size_t n)
{
    char dir[] = "/tmp/memsnap-copy-XXXXXX";
    if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
        return -1;
    snprintf(out, n, "%s/memsnap", dir);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    int ok = in >= 0 && fd >= 0;
    char buf[65536];
    ssize_t got;
    while (ok && (got = read(in, buf, sizeof buf)) > 0)
        ok = write(fd, buf, (size_t)got) == got;
    if (in >= 0)
        close(in);
    if (fd >= 0 && close(fd) < 0)
        ok = 0;
    if (!ok || chmod(out, 0755) < 0) {
        unlink(out);
        rmdir(dir);
        out[0] = 0;
        return -1;
    }
    return 0;
}

void test_remove_copy(const char *path)
{
    if (!path[0])
        return;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    unlink(path);
    if (slash) {
        *slash = 0;
        rmdir(dir);
    }
}
