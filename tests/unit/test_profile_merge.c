/*
 * test_profile_merge.c - one profile of several processes: profile_merge's samples, "pid"
 * labels, process entries and summed timelines survive a write and a read; a hostile
 * memsnap.process comment is ignored; mismatched sample types are refused; and
 * proc_tree_descendants finds a real tree of forked processes (children and grandchildren,
 * not the root, not strangers).
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc_tree.h"
#include "profile.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/memsnap-test-merge.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A one-process profile like attach writes: two stacks, a timeline from t0. */
static struct profile *one(int64_t pid, int64_t t0, int64_t heap, const char *leaf, int peak)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    profile_add_sample_type(p, "alloc_space", "bytes");
    profile_add_sample_type(p, "inuse_space", "bytes");
    if (peak)
        profile_add_sample_type(p, "peak_space", "bytes");
    p->default_sample_type = 1;
    uint32_t fm = profile_add_function(p, "<module>", "app.py", 1);
    uint32_t fl = profile_add_function(p, leaf, "app.py", 10);
    struct profile_line lm = {fm, 3}, ll = {fl, 12};
    uint32_t locs[2] = {profile_add_location(p, &ll, 1), profile_add_location(p, &lm, 1)};
    int64_t v[3] = {heap * 2, heap, heap};
    assert_int_equal(profile_add_sample(p, locs, 2, v, profile_intern(p, "MainThread"), 64), 0);
    assert_int_equal(profile_add_sample(p, locs + 1, 1, v, 0, 0), 0);
    p->meta.pid = pid;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "python3 worker.py --id %lld, with a comma", (long long)pid);
    p->meta.command = profile_intern(p, cmd);
    p->meta.mode = profile_intern(p, "attach");
    p->meta.python_version = profile_intern(p, "3.11.2");
    p->meta.start_unix_ns = t0;
    p->meta.duration_ns = 1000;
    p->meta.rate = 524288;
    p->meta.total_alloc_bytes = heap * 4;
    p->meta.total_alloc_count = 10;
    p->meta.peak_rss = 100 * heap;
    p->meta.peak_heap = heap;
    for (int i = 0; i <= 10; i++)
        profile_add_point(p, i * 100, 10 * heap, i == 10 ? heap : heap / 2);
    assert_int_equal(profile_add_comment(p, "memsnap-note: the target exited"), 0);
    return p;
}

static int64_t value_sum(const struct profile *p, const char *type, int64_t pid)
{
    int t = profile_find_sample_type(p, type);
    int64_t sum = 0;
    for (size_t i = 0; t >= 0 && i < p->n_samples; i++)
        if (!pid || p->samples[i].pid == pid)
            sum += p->values[i * p->n_sample_types + (size_t)t];
    return sum;
}

static void test_merge_round_trip(void **state)
{
    (void)state;
    struct profile *a = one(111, 1000000, 4096, "leak", 0);
    struct profile *b = one(222, 1000500, 1000, "leak", 0);
    struct profile *c = one(333, 1002000, 7, "other", 0);
    struct profile *m = profile_new();
    ms_error err;
    assert_int_equal(profile_merge(m, a, &err), 0);
    assert_int_equal(profile_merge(m, b, &err), 0);
    assert_int_equal(profile_merge(m, c, &err), 0);
    assert_int_equal(m->n_samples, 6);
    assert_int_equal(m->n_processes, 3);
    assert_int_equal(m->n_functions, 3); /* <module>, leak, other: shared frames merge */
    assert_int_equal(value_sum(m, "inuse_space", 0), 2 * (4096 + 1000 + 7));
    assert_int_equal(m->meta.pid, 111);
    assert_int_equal(m->meta.start_unix_ns, 1000000);
    assert_int_equal(m->meta.duration_ns, 1002000 + 1000 - 1000000);
    assert_int_equal(m->meta.total_alloc_bytes, 4 * (4096 + 1000 + 7));
    /* Summed timeline: at t=1000500 (a at 500, b at 0): 2048 + 500. */
    int found = 0;
    for (size_t i = 0; i < m->n_timeline; i++)
        if (m->timeline[i].t_ns == 500)
            found = 1, assert_int_equal(m->timeline[i].heap, 2048 + 500);
    assert_true(found);
    assert_int_equal(m->meta.peak_heap, 4096 + 1000 / 2); /* a's end, b still at half */

    char path[512];
    snprintf(path, sizeof path, "%s/merged.pb", tmpdir);
    assert_int_equal(profile_write(m, path, 1, &err), 0);
    struct profile *r = NULL;
    assert_int_equal(profile_read(path, &r, &err), 0);
    assert_int_equal(r->n_samples, 6);
    assert_int_equal(value_sum(r, "inuse_space", 111), 2 * 4096);
    assert_int_equal(value_sum(r, "inuse_space", 222), 2 * 1000);
    assert_int_equal(value_sum(r, "inuse_space", 333), 2 * 7);
    assert_int_equal(r->n_processes, 3);
    assert_int_equal(r->processes[1].pid, 222);
    assert_string_equal(r->strings[r->processes[1].command],
                        "python3 worker.py --id 222, with a comma");
    assert_int_equal(r->processes[2].start_unix_ns, 1002000);
    assert_int_equal(r->processes[0].peak_rss, 409600);
    assert_int_equal(r->n_timeline, m->n_timeline);
    /* Notes name their process. */
    int notes = 0;
    for (size_t i = 0; i < r->n_comments; i++)
        notes += strstr(r->strings[r->comments[i]], "memsnap-note: process 222: ") != NULL;
    assert_int_equal(notes, 1);
    /* A merged profile merges again (the pid labels are kept, not replaced by its meta's). */
    struct profile *m2 = profile_new();
    assert_int_equal(profile_merge(m2, r, &err), 0);
    assert_int_equal(value_sum(m2, "inuse_space", 333), 2 * 7);
    assert_int_equal(m2->n_processes, 3);
    profile_free(m2);
    profile_free(r);
    profile_free(m);
    profile_free(a);
    profile_free(b);
    profile_free(c);
}

static void test_merge_refusals(void **state)
{
    (void)state;
    struct profile *a = one(111, 1000, 10, "f", 0);
    struct profile *b = one(222, 1000, 10, "f", 1); /* has peak_space, a does not */
    struct profile *m = profile_new();
    ms_error err;
    assert_int_equal(profile_merge(m, a, &err), 0);
    assert_int_equal(profile_merge(m, b, &err), -1);
    assert_non_null(strstr(err.msg, "peak_space"));
    profile_free(m);
    /* The other way round: a lacks a type of b, which is fine (its values are 0). */
    m = profile_new();
    assert_int_equal(profile_merge(m, b, &err), 0);
    assert_int_equal(profile_merge(m, a, &err), 0);
    assert_int_equal(value_sum(m, "peak_space", 111), 0);
    assert_int_equal(value_sum(m, "peak_space", 222), 20);
    profile_free(m);
    profile_free(a);
    profile_free(b);
}

/* Hostile process comments: each is ignored, the file still reads. */
static void test_process_comment_hostile(void **state)
{
    (void)state;
    static const char *bad[] = {
        "memsnap.process=",
        "memsnap.process=0,1,1,1,1,1,1,0,0,cmd",           /* pid 0 */
        "memsnap.process=5,1,1,1,1,1,1,2,0,cmd",           /* exited 2 */
        "memsnap.process=5,1,1,1,1,1,1,1,128,cmd",         /* signal 128 */
        "memsnap.process=5,1,1,1,1,1,1,1,9",               /* no command field */
        "memsnap.process=5,-1,1,1,1,1,1,1,9,cmd",          /* negative */
        "memsnap.process=99999999999,1,1,1,1,1,1,1,9,cmd", /* pid out of range */
        "memsnap.process=5,1,1,1,1,1,1,1,9 ,cmd",          /* stray space */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct profile *p = profile_new();
        profile_add_sample_type(p, "inuse_space", "bytes");
        /* memsnap.* comments cannot be added through the API: write one by hand as a
         * process entry's text would be (the string table holds it, the comment names it). */
        p->meta.pid = 7;
        struct profile_process q = {.pid = 5};
        assert_int_equal(profile_add_process(p, &q, "x"), 0);
        char path[512];
        snprintf(path, sizeof path, "%s/bad%zu.pb", tmpdir, i);
        ms_error err;
        assert_int_equal(profile_write(p, path, 0, &err), 0);
        profile_free(p);
        /* Replace the good comment's text in place with the bad one (same length or
         * shorter, padded with a trailing command). */
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        const char *good = "memsnap.process=5,0,0,0,0,0,0,0,0,x";
        char *at = memmem(buf, n, good, strlen(good));
        assert_non_null(at);
        char repl[64];
        memset(repl, 'x', sizeof repl);
        size_t bl = strlen(bad[i]);
        if (bl > strlen(good))
            continue; /* cannot be spliced at this length; covered by the fuzzer */
        memcpy(repl, bad[i], bl);
        if (bl < strlen(good)) /* pad the command (or the last number) */
            memset(repl + bl, 'x', strlen(good) - bl);
        memcpy(at, repl, strlen(good));
        f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        struct profile *r = NULL;
        assert_int_equal(profile_read(path, &r, &err), 0);
        assert_int_equal(r->n_processes, 0); /* padding never makes a bad entry good */
        profile_free(r);
    }
}

/* A real tree: root forks a child that forks a grandchild; a stranger (our own other
 * child) is not listed. */
static void test_proc_tree(void **state)
{
    (void)state;
    int go[2];
    assert_int_equal(pipe(go), 0);
    /* Every process waits for EOF on go[0]: only the test may hold the write end. */
    pid_t stranger = fork();
    if (stranger == 0) {
        close(go[1]);
        char c;
        (void)!read(go[0], &c, 1);
        _exit(0);
    }
    pid_t root = fork();
    if (root == 0) {
        close(go[1]);
        pid_t kid = fork();
        if (kid == 0) {
            if (fork() == 0) {
                char c;
                (void)!read(go[0], &c, 1);
                _exit(0);
            }
            char c;
            (void)!read(go[0], &c, 1);
            _exit(0);
        }
        pid_t kid2 = fork();
        if (kid2 == 0) {
            char c;
            (void)!read(go[0], &c, 1);
            _exit(0);
        }
        char c;
        (void)!read(go[0], &c, 1);
        _exit(0);
    }
    pid_t out[8];
    ms_error err;
    int n = 0;
    for (int tries = 0; tries < 200 && n < 3; tries++) {
        n = proc_tree_descendants(root, out, 8, &err);
        if (n < 3)
            usleep(10000);
    }
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(out[i], root);
        assert_int_not_equal(out[i], stranger);
        pid_t pp = proc_tree_parent(out[i]);
        assert_true(pp == root || (pp != 0 && proc_tree_parent(pp) == root));
    }
    /* cap smaller than the tree: the count is still the whole tree. */
    assert_int_equal(proc_tree_descendants(root, out, 1, &err), 3);
    assert_int_equal(proc_tree_descendants(getpid(), out, 8, &err) >= 5, 1);
    assert_int_equal(proc_tree_parent(root), getpid());
    close(go[0]);
    close(go[1]); /* EOF: everyone exits */
    waitpid(root, NULL, 0);
    waitpid(stranger, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_round_trip),
        cmocka_unit_test(test_merge_refusals),
        cmocka_unit_test(test_process_comment_hostile),
        cmocka_unit_test(test_proc_tree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
