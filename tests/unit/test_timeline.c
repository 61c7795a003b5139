/*
 * test_timeline.c - the RSS/heap timeline on this very process: RSS read from statm matches
 * VmRSS, points are spaced by the interval, the buffer stays bounded over a long recording
 * while spikes and exact peaks survive decimation, and a vanished process is an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timeline.h"

static int64_t vmrss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static void test_rss_matches_vmrss(void **state)
{
    (void)state;
    int64_t a = timeline_rss_of(getpid());
    int64_t b = vmrss_bytes();
    assert_true(a > 0 && b > 0);
    assert_true(llabs(a - b) < 1 << 20);
}

static void test_bounded_with_peaks(void **state)
{
    (void)state;
    struct timeline tl;
    ms_error err;
    assert_int_equal(timeline_open(&tl, getpid(), &err), 0);
    /* Samples every 1 ms: only every 10 ms is kept. */
    for (int64_t t = 0; t < 100 * 1000000ll; t += 1000000)
        assert_int_equal(timeline_sample(&tl, t, 1000, &err), 0);
    assert_true(tl.n_points >= 9 && tl.n_points <= 11);
    /* An hour at 10 ms with one spike in the middle. */
    int64_t spike_t = 1800ll * 1000000000;
    for (int64_t t = 100 * 1000000ll; t < 3600ll * 1000000000; t += TIMELINE_INTERVAL_NS)
        assert_int_equal(timeline_sample(&tl, t, t == spike_t ? 999999 : 5000, &err), 0);
    assert_true(tl.n_points <= TIMELINE_MAX_POINTS);
    assert_true(tl.n_points >= TIMELINE_MAX_POINTS / 2);
    assert_int_equal(tl.peak_heap, 999999);
    assert_int_equal(tl.peak_heap_ns, spike_t);
    int64_t max_heap = 0;
    for (size_t i = 0; i < tl.n_points; i++) {
        if (tl.points[i].heap > max_heap)
            max_heap = tl.points[i].heap;
        if (i)
            assert_true(tl.points[i].t_ns > tl.points[i - 1].t_ns);
    }
    assert_int_equal(max_heap, 999999); /* the spike survived decimation */
    assert_true(tl.peak_rss > 0);
    timeline_close(&tl);
}

static void test_exited_process(void **state)
{
    (void)state;
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    struct timeline tl;
    ms_error err;
    assert_int_equal(timeline_open(&tl, child, &err), 0);
    assert_int_equal(timeline_sample(&tl, 0, 0, &err), 0);
    kill(child, SIGKILL);
    usleep(50000); /* a zombie now: its address space is gone */
    assert_int_equal(timeline_sample(&tl, 1, 0, &err), -1);
    waitpid(child, NULL, 0);
    assert_int_equal(timeline_sample(&tl, 2, 0, &err), -1);
    timeline_close(&tl);
    assert_int_equal(timeline_open(&tl, child, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rss_matches_vmrss),
        cmocka_unit_test(test_bounded_with_peaks),
        cmocka_unit_test(test_exited_process),
    };
    return cmocka_run_group_tests_name("timeline", tests, NULL, NULL);
}
