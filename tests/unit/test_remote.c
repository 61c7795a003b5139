/*
 * test_remote.c - reading and writing a real child process's memory: single and batched
 * reads (more ranges than IOV_MAX), all-or-nothing partial reads that name the unmapped
 * address, writes to read-only pages, and the error kinds (exited, unmapped).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "remote.h"

#define PAGE 4096

/* A child whose memory layout we know: it is a fork, so addresses match ours. */
struct child {
    pid_t pid;
    unsigned char *rw; /* 4 pages: page 2 unmapped in the child */
    unsigned char *ro; /* 1 read-only page */
};

static int child_start(struct child *c)
{
    c->rw = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    c->ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->rw == MAP_FAILED || c->ro == MAP_FAILED)
        return -1;
    for (int i = 0; i < 4 * PAGE; i++)
        c->rw[i] = (unsigned char)(i * 7 + 3);
    memset(c->ro, 0xAB, PAGE);
    int go[2];
    if (pipe(go))
        return -1;
    c->pid = fork();
    if (c->pid == 0) {
        munmap(c->rw + 2 * PAGE, PAGE);
        mprotect(c->ro, PAGE, PROT_READ);
        char x = 1;
        if (write(go[1], &x, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(go[1]);
    char x;
    int ok = read(go[0], &x, 1) == 1;
    close(go[0]);
    return ok ? 0 : -1;
}

static void child_stop(struct child *c)
{
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    munmap(c->rw, 4 * PAGE);
    munmap(c->ro, PAGE);
}

static void test_read_single_and_batched(void **state)
{
    (void)state;
    struct child c;
    assert_int_equal(child_start(&c), 0);
    ms_error e;
    unsigned char buf[PAGE];
    /* Change our copy so a match proves the bytes came from the child. */
    memset(c.rw, 0, 2 * PAGE);
    assert_int_equal(remote_read(c.pid, (uint64_t)(uintptr_t)c.rw + 100, buf, 200, &e), 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(buf[i], (unsigned char)((i + 100) * 7 + 3));

    /* 3000 ranges of 2 bytes (more than IOV_MAX), plus empty ranges mixed in. */
    enum { N = 3000 };
    struct remote_iov *iov = calloc(N, sizeof *iov);
    unsigned char *out = calloc(N, 2);
    for (int i = 0; i < N; i++) {
        iov[i].addr = (uint64_t)(uintptr_t)c.rw + (uint64_t)(i % 4000);
        iov[i].buf = out + 2 * i;
        iov[i].len = i % 5 == 4 ? 0 : 2;
    }
    assert_int_equal(remote_readv(c.pid, iov, N, &e), 0);
    for (int i = 0; i < N; i++) {
        if (iov[i].len == 0)
            continue;
        int off = i % 4000;
        assert_int_equal(out[2 * i], (unsigned char)(off * 7 + 3));
        assert_int_equal(out[2 * i + 1], (unsigned char)((off + 1) * 7 + 3));
    }
    assert_int_equal(remote_readv(c.pid, iov, 0, &e), 0);

    /* One unmapped range in the middle of a batch: all-or-nothing, the address named. */
    uint64_t hole = (uint64_t)(uintptr_t)c.rw + 2 * PAGE + 16;
    iov[1500].addr = hole;
    iov[1500].len = 2;
    errno = 0;
    assert_int_equal(remote_readv(c.pid, iov, N, &e), -1);
    assert_int_equal(errno, EFAULT);
    char want[64];
    snprintf(want, sizeof want, "0x%llx", (unsigned long long)hole);
    assert_non_null(strstr(e.msg, want));
    assert_non_null(strstr(e.msg, "not mapped"));

    /* A range that starts mapped and runs into the hole. */
    unsigned char big[2 * PAGE];
    errno = 0;
    assert_int_equal(remote_read(c.pid, (uint64_t)(uintptr_t)c.rw + PAGE, big, sizeof big, &e), -1);
    assert_int_equal(errno, EFAULT);
    snprintf(want, sizeof want, "0x%llx", (unsigned long long)(uintptr_t)(c.rw + 2 * PAGE));
    assert_non_null(strstr(e.msg, want));
    /* NULL and kernel addresses. */
    assert_int_equal(remote_read(c.pid, 0, buf, 8, &e), -1);
    assert_int_equal(errno, EFAULT);
    assert_int_equal(remote_read(c.pid, 0xffffffffff600000ull - 4096, buf, 8, &e), -1);
    free(iov);
    free(out);
    child_stop(&c);
}

static void test_write_readonly(void **state)
{
    (void)state;
    struct child c;
    assert_int_equal(child_start(&c), 0);
    ms_error e;
    uint64_t ro = (uint64_t)(uintptr_t)c.ro;
    const char msg[] = "memsnap was here";
    assert_int_equal(remote_write(c.pid, ro + 10, msg, sizeof msg, &e), 0);
    char back[sizeof msg];
    assert_int_equal(remote_read(c.pid, ro + 10, back, sizeof back, &e), 0);
    assert_memory_equal(back, msg, sizeof msg);
    unsigned char before;
    assert_int_equal(remote_read(c.pid, ro + 9, &before, 1, &e), 0);
    assert_int_equal(before, 0xAB);
    assert_int_equal(remote_write(c.pid, (uint64_t)(uintptr_t)c.rw + 2 * PAGE, msg, 4, &e), -1);
    assert_int_equal(errno, EFAULT);
    child_stop(&c);
}

static void test_exited(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    ms_error e;
    char buf[8];
    errno = 0;
    assert_int_equal(remote_read(pid, (uint64_t)(uintptr_t)buf, buf, sizeof buf, &e), -1);
    assert_int_equal(errno, ESRCH);
    assert_non_null(strstr(e.msg, "exited"));
    assert_int_equal(remote_write(pid, (uint64_t)(uintptr_t)buf, buf, sizeof buf, &e), -1);
    assert_int_equal(errno, ESRCH);
    assert_non_null(strstr(remote_permission_hint(), "CAP_SYS_PTRACE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_single_and_batched),
        cmocka_unit_test(test_write_readonly),
        cmocka_unit_test(test_exited),
    };
    return cmocka_run_group_tests_name("remote", tests, NULL, NULL);
}
