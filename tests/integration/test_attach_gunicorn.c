/*
 * test_attach_gunicorn.c - the on-call scenario: Debian's gunicorn (run by Debian's
 * /usr/bin/python3) serving a tiny Django app (tests/py/djapp) whose view keeps every request
 * in a module-level dict. While a client on 127.0.0.1 sends real requests, memsnap attaches
 * to the worker for a few seconds. Asserts: no request failed, the worker was not restarted
 * (same pid, still the master's only child), and the leaking view's frames hold most of
 * inuse_space and top it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "profile.h"
#include "testproc.h"

#define GUNICORN            "/usr/bin/gunicorn"
#define DEBIAN_PYTHON       "/usr/bin/python3"
#define CLIENT_MAX_REQUESTS 20000
#define CLIENT_MAX_SECONDS  30

static char tmpdir[] = "/tmp/memsnap-gunicorn-XXXXXX";
static char out[1 << 16], err[1 << 16];
static pid_t gunicorn_pid = -1; /* killed by teardown if a failed assertion left it running */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

/* One HTTP/1.0 request to /remember; 0 when the answer is "200" with "ok N". */
static int request_once(int port, int i)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        close(s);
        return -1;
    }
    char req[256], resp[4096];
    int n =
        snprintf(req, sizeof req,
                 "GET /remember?i=%d HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Test: memsnap\r\n\r\n", i);
    if (write(s, req, (size_t)n) != n) {
        close(s);
        return -1;
    }
    size_t len = 0;
    ssize_t k;
    while (len < sizeof resp - 1 && (k = read(s, resp + len, sizeof resp - 1 - len)) > 0)
        len += (size_t)k;
    resp[len] = 0;
    close(s);
    return strstr(resp, " 200 ") && strstr(resp, "\r\n\r\nok ") ? 0 : -1;
}

/* The worker: the master's only child. */
static pid_t only_child(pid_t parent)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)parent, (int)parent);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    int a = 0, b = 0;
    int k = sscanf(buf, "%d %d", &a, &b);
    return k == 1 ? a : -1;
}

static int stack_has(const struct profile *p, const struct profile_sample *s, const char *fn)
{
    for (uint32_t j = 0; j < s->n_locs; j++) {
        const struct profile_location *l = &p->locations[p->stack_locs[s->first_loc + j]];
        for (uint32_t k = 0; k < l->n_lines; k++)
            if (!strcmp(p->strings[p->functions[p->lines[l->first_line + k].function].name], fn))
                return 1;
    }
    return 0;
}

static void test_gunicorn_django_leak(void **state)
{
    (void)state;
    if (access(GUNICORN, X_OK) != 0 || access(DEBIAN_PYTHON, X_OK) != 0) {
        print_message("SKIP: Debian's gunicorn or python3 is not installed\n");
        skip();
    }
    int port = free_port();
    assert_true(port > 0);
    char bind[64], chdir_arg[4096], log[256];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", port);
    snprintf(chdir_arg, sizeof chdir_arg, "%s", test_py_script("djapp"));
    snprintf(log, sizeof log, "%s/gunicorn.log", tmpdir);
    char *argv[] = {DEBIAN_PYTHON, GUNICORN,          "--chdir", chdir_arg,         "-w", "1", "-b",
                    bind,          "--error-logfile", log,       "app:application", NULL};
    struct test_proc g;
    assert_int_equal(test_proc_spawn(&g, argv), 0);
    gunicorn_pid = g.pid;
    int up = -1;
    for (long long t0 = test_now_ms(); test_now_ms() - t0 < 20000 && up != 0;) {
        usleep(100000);
        up = request_once(port, -1);
    }
    if (up != 0) {
        test_proc_kill(&g);
        fail_msg("gunicorn did not serve /remember within 20 s (see %s)", log);
    }
    pid_t worker = only_child(g.pid);
    assert_true(worker > 0);

    /* The client: real requests over loopback until the stop pipe has data, bounded. */
    int res[2], stop[2];
    assert_int_equal(pipe(res), 0);
    assert_int_equal(pipe(stop), 0);
    pid_t client = fork();
    if (client == 0) {
        int ok = 0, bad = 0;
        long long t0 = test_now_ms();
        for (int i = 0; i < CLIENT_MAX_REQUESTS && test_now_ms() - t0 < CLIENT_MAX_SECONDS * 1000;
             i++) {
            struct pollfd pf = {.fd = stop[0], .events = POLLIN};
            if (poll(&pf, 1, 0) > 0)
                break;
            if (request_once(port, i) == 0)
                ok++;
            else
                bad++;
        }
        dprintf(res[1], "%d %d\n", ok, bad);
        _exit(0);
    }
    close(res[1]);
    close(stop[0]);
    usleep(500000);
    char wpid[16], path[256];
    snprintf(wpid, sizeof wpid, "%d", (int)worker);
    snprintf(path, sizeof path, "%s/gunicorn.pb", tmpdir);
    char *args[] = {"attach", wpid, "--duration", "4",       "--rate",
                    "16384",  "-o", path,         "--quiet", NULL};
    int st = test_run_memsnap(args, out, sizeof out, err, sizeof err, 60000);
    print_message("    %s%s", out, err);
    usleep(300000);
    assert_int_equal(write(stop[1], "x", 1), 1);
    char counts[64] = "";
    ssize_t n = read(res[0], counts, sizeof counts - 1);
    counts[n > 0 ? n : 0] = 0;
    waitpid(client, NULL, 0);
    close(res[0]);
    close(stop[1]);
    int ok = -1, bad = -1;
    if (sscanf(counts, "%d %d", &ok, &bad) != 2)
        fail_msg("the client did not report");
    print_message("    client: %d requests ok, %d failed\n", ok, bad);
    assert_int_equal(bad, 0);
    assert_true(ok > 50);

    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(only_child(g.pid), worker); /* not restarted */
    assert_false(test_pid_has_stopped_thread(worker));
    assert_false(test_pid_is_traced(worker));
    /* After the recording the worker still serves. */
    for (int i = 0; i < 20; i++)
        if (request_once(port, 1000000 + i) != 0)
            fail_msg("a request after the recording failed");

    struct profile *p;
    ms_error e;
    if (profile_read(path, &p, &e) < 0)
        fail_msg("%s", e.msg);
    int t = profile_find_sample_type(p, "inuse_space");
    int64_t total = 0, view = 0, top = -1;
    int top_in_view = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        int64_t v = p->values[i * p->n_sample_types + (size_t)t];
        total += v;
        int in_view = stack_has(p, &p->samples[i], "remember");
        if (in_view) {
            view += v;
            /* the sync worker serves requests on its main thread */
            assert_string_equal(p->strings[p->samples[i].thread], "MainThread");
        }
        if (v > top) {
            top = v;
            top_in_view = in_view;
        }
    }
    print_message("    inuse_space: %lld of %lld bytes under remember(); top stack in view: %d\n",
                  (long long)view, (long long)total, top_in_view);
    assert_true(total > 0);
    assert_true(view * 2 > total);
    assert_true(top_in_view);
    profile_free(p);

    kill(g.pid, SIGTERM);
    if (test_proc_wait_exit(&g, 15000) < 0)
        fail_msg("gunicorn did not shut down on SIGTERM");
    test_proc_kill(&g);
    gunicorn_pid = -1;
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (gunicorn_pid > 0) { /* its own process group: master and worker */
        kill(-gunicorn_pid, SIGKILL);
        waitpid(gunicorn_pid, NULL, 0);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gunicorn_django_leak),
    };
    return cmocka_run_group_tests_name("attach_gunicorn", tests, setup, teardown);
}
