/*
 * test_profile_sniff.c - the profile reader refuses what is not a profile from its first
 * bytes, in bounded time and memory: /dev/zero, a FIFO fed zeros forever, a 2 GiB sparse file
 * of zeros, a gzip of 256 MiB of zeros, random bytes. Each must be refused with one sentence
 * within a second and without the process's peak RSS growing by more than 64 MiB (the
 * reader used to read /dev/zero to its 2 GiB limit: 21 s and 4.5 GB). A real profile, raw
 * and gzipped, still reads, so the sniff refuses nothing valid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "profile.h"

#define MAX_MS         1000
#define MAX_RSS_GROWTH (64l << 20)

static char dir[] = "/tmp/memsnap-sniff-XXXXXX";

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long max_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024;
}

/* profile_read(path) must fail fast, with one sentence containing needle, in bounded memory. */
static void expect_fast_refusal(const char *path, const char *needle)
{
    long rss0 = max_rss_bytes();
    long long t0 = now_ms();
    struct profile *p = NULL;
    ms_error err = {{0}};
    int rc = profile_read(path, &p, &err);
    long long took = now_ms() - t0;
    long grew = max_rss_bytes() - rss0;
    print_message("    %s: %lld ms, peak RSS +%ld KiB: %s\n", path, took, grew / 1024, err.msg);
    if (rc == 0) {
        profile_free(p);
        fail_msg("%s was read as a profile", path);
    }
    if (!strstr(err.msg, needle))
        fail_msg("expected '%s' in: %s", needle, err.msg);
    assert_null(strchr(err.msg, '\n'));
    if (took > MAX_MS)
        fail_msg("%s: refused only after %lld ms", path, took);
    if (grew > MAX_RSS_GROWTH)
        fail_msg("%s: peak RSS grew by %ld MiB", path, grew >> 20);
}

static const char *in_dir(const char *name)
{
    static char b[4][256];
    static int k;
    char *s = b[k++ % 4];
    snprintf(s, 256, "%s/%s", dir, name);
    return s;
}

static void test_dev_zero(void **state)
{
    (void)state;
    expect_fast_refusal("/dev/zero", "is not a pprof profile");
}

static void test_sparse_file(void **state)
{
    (void)state;
    const char *path = in_dir("sparse.pb");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)2 << 30), 0); /* 2 GiB, no blocks */
    close(fd);
    expect_fast_refusal(path, "is not a pprof profile");
    unlink(path);
}

static void test_fifo_of_zeros(void **state)
{
    (void)state;
    const char *path = in_dir("zeros.fifo");
    assert_int_equal(mkfifo(path, 0644), 0);
    pid_t w = fork();
    if (w == 0) {
        int fd = open(path, O_WRONLY);
        static char zeros[65536];
        while (fd >= 0 && write(fd, zeros, sizeof zeros) > 0)
            ;
        _exit(0);
    }
    expect_fast_refusal(path, "is not a pprof profile");
    kill(w, SIGKILL); /* it writes forever; the reader closed, so it would get SIGPIPE */
    waitpid(w, NULL, 0);
    unlink(path);
}

static void test_gzip_of_zeros(void **state)
{
    (void)state;
    const char *path = in_dir("zeros.pb.gz");
    gzFile g = gzopen(path, "wb9");
    assert_non_null(g);
    static char zeros[1 << 20];
    for (int i = 0; i < 256; i++)
        assert_int_equal(gzwrite(g, zeros, sizeof zeros), (int)sizeof zeros);
    gzclose(g);
    expect_fast_refusal(path, "holds no pprof protobuf");
    unlink(path);
}

static void test_random_bytes(void **state)
{
    (void)state;
    const char *path = in_dir("random.pb");
    unsigned seed = (unsigned)time(NULL);
    print_message("    seed %u\n", seed);
    srand(seed);
    for (int round = 0; round < 20; round++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        for (int i = 0; i < 1 << 20; i++)
            fputc(rand() & 0xff, f);
        fclose(f);
        long long t0 = now_ms();
        struct profile *p = NULL;
        ms_error err = {{0}};
        int rc = profile_read(path, &p, &err);
        assert_int_equal(rc, -1);
        assert_true(now_ms() - t0 < MAX_MS);
    }
    unlink(path);
}

/* The sniff refuses nothing valid: a profile written raw and gzipped reads back. */
static void test_real_profiles_read(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    assert_non_null(p);
    assert_int_not_equal(profile_add_sample_type(p, "alloc_space", "bytes"), UINT32_MAX);
    struct profile_line line = {profile_add_function(p, "leak", "app.py", 3), 4};
    uint32_t loc = profile_add_location(p, &line, 1);
    int64_t v = 4096;
    assert_int_equal(profile_add_sample(p, &loc, 1, &v, 0, 0), 0);
    for (int gz = 0; gz < 2; gz++) {
        const char *path = in_dir(gz ? "real.pb.gz" : "real.pb");
        ms_error err = {{0}};
        assert_int_equal(profile_write(p, path, gz, &err), 0);
        struct profile *q = NULL;
        if (profile_read(path, &q, &err))
            fail_msg("%s: %s", path, err.msg);
        assert_int_equal(q->n_samples, 1);
        profile_free(q);
        unlink(path);
    }
    profile_free(p);
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dev_zero),      cmocka_unit_test(test_sparse_file),
        cmocka_unit_test(test_fifo_of_zeros), cmocka_unit_test(test_gzip_of_zeros),
        cmocka_unit_test(test_random_bytes),  cmocka_unit_test(test_real_profiles_read),
    };
    return cmocka_run_group_tests_name("profile_sniff", tests, setup, teardown);
}
