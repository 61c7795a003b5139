/*
 * test_profile.c - the profile library: building (dedup, growth), writing (atomic, gzip or
 * raw, full disks), reading (every field back, other tools' files) and refusing malformed
 * files with one sentence instead of crashing.
 *
 * Files go to a private temporary directory. The independent-encoder test runs Debian's
 * Python protobuf (tests/decode/pprof_encode.py) and is skipped with a SKIP line when that
 * is not installed.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "profile.h"
#include "testproc.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
    return p;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/memsnap-test-profile.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    umount2(tmp_path("tiny"), MNT_DETACH); /* in case the full-disk test failed midway */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *str(const struct profile *p, uint32_t i)
{
    assert_true(i < p->n_strings);
    return p->strings[i];
}

/* A profile using every field: two sample types, unicode names, a two-line location,
 * thread and bytes labels, metadata and a timeline. */
static struct profile *rich_profile(void)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    assert_int_equal(profile_add_sample_type(p, "alloc_space", "bytes"), 0);
    assert_int_equal(profile_add_sample_type(p, "inuse_space", "bytes"), 1);
    p->default_sample_type = 1;
    p->period_type.type = profile_intern(p, "space");
    p->period_type.unit = profile_intern(p, "bytes");
    p->period = 524288;
    p->time_nanos = 1700000000123456789;
    p->duration_nanos = 30000000000;

    uint32_t f_main = profile_add_function(p, "<module>", "/srv/app/main.py", 1);
    uint32_t f_load = profile_add_function(p, "Loader.load_données", "/srv/app/加载.py", 12);
    uint32_t f_inl = profile_add_function(p, "inlined", "/srv/app/加载.py", 40);
    struct profile_line l_main = {f_main, 7};
    struct profile_line l_load = {f_load, 15};
    struct profile_line l_two[2] = {{f_inl, 41}, {f_load, 17}}; /* inlined, then caller */
    uint32_t loc_main = profile_add_location(p, &l_main, 1);
    uint32_t loc_load = profile_add_location(p, &l_load, 1);
    uint32_t loc_two = profile_add_location(p, l_two, 2);

    uint32_t stack1[] = {loc_load, loc_main};
    uint32_t stack2[] = {loc_two, loc_main};
    int64_t v1[] = {1000, 400};
    int64_t v2[] = {-5, 9000000000};
    uint32_t t_main = profile_intern(p, "MainThread");
    uint32_t t_work = profile_intern(p, "worker-🧵");
    assert_int_equal(profile_add_sample(p, stack1, 2, v1, t_main, 256), 0);
    assert_int_equal(profile_add_sample(p, stack2, 2, v2, t_work, 0), 0);
    assert_int_equal(profile_add_sample(p, NULL, 0, v1, 0, -3), 0);

    p->meta.pid = 4242;
    p->meta.command = profile_intern(p, "python3 -m app --naïve");
    p->meta.python_version = profile_intern(p, "3.11.2");
    p->meta.mode = profile_intern(p, "attach");
    p->meta.start_unix_ns = 1700000000000000000;
    p->meta.duration_ns = 30000000001;
    p->meta.rate = 524288;
    p->meta.dropped_events = 3;
    p->meta.dropped_bytes = 4096;
    p->meta.peak_rss = 123456789;
    p->meta.peak_heap = 98765432;
    p->meta.peak_time_ns = 1500000000;
    p->meta.total_alloc_bytes = 1ll << 40;
    p->meta.total_alloc_count = 77777;
    for (int i = 0; i < 5; i++)
        assert_int_equal(profile_add_point(p, i * 100000000ll, 1000000 + i, 500000 - i), 0);
    assert_int_equal(profile_add_comment(p, "recorded by test_profile; naïve=yes"), 0);
    return p;
}

/* Compares two profiles by content (strings compared as text, not as indexes). */
static void assert_same_profile(const struct profile *a, const struct profile *b)
{
    assert_int_equal(a->n_sample_types, b->n_sample_types);
    for (size_t i = 0; i < a->n_sample_types; i++) {
        assert_string_equal(str(a, a->sample_types[i].type), str(b, b->sample_types[i].type));
        assert_string_equal(str(a, a->sample_types[i].unit), str(b, b->sample_types[i].unit));
    }
    assert_int_equal(a->default_sample_type, b->default_sample_type);
    assert_string_equal(str(a, a->period_type.type), str(b, b->period_type.type));
    assert_string_equal(str(a, a->period_type.unit), str(b, b->period_type.unit));
    assert_int_equal(a->period, b->period);
    assert_int_equal(a->time_nanos, b->time_nanos);
    assert_int_equal(a->duration_nanos, b->duration_nanos);

    assert_int_equal(a->n_functions, b->n_functions);
    for (size_t i = 0; i < a->n_functions; i++) {
        assert_string_equal(str(a, a->functions[i].name), str(b, b->functions[i].name));
        assert_string_equal(str(a, a->functions[i].filename), str(b, b->functions[i].filename));
        assert_int_equal(a->functions[i].start_line, b->functions[i].start_line);
    }
    assert_int_equal(a->n_locations, b->n_locations);
    for (size_t i = 0; i < a->n_locations; i++) {
        const struct profile_location *x = &a->locations[i], *y = &b->locations[i];
        assert_int_equal(x->n_lines, y->n_lines);
        assert_int_equal(x->address, y->address);
        for (uint32_t k = 0; k < x->n_lines; k++) {
            assert_int_equal(a->lines[x->first_line + k].function,
                             b->lines[y->first_line + k].function);
            assert_int_equal(a->lines[x->first_line + k].line, b->lines[y->first_line + k].line);
        }
    }
    assert_int_equal(a->n_samples, b->n_samples);
    for (size_t i = 0; i < a->n_samples; i++) {
        const struct profile_sample *x = &a->samples[i], *y = &b->samples[i];
        assert_int_equal(x->n_locs, y->n_locs);
        assert_memory_equal(a->stack_locs + x->first_loc, b->stack_locs + y->first_loc,
                            x->n_locs * sizeof(uint32_t));
        assert_string_equal(str(a, x->thread), str(b, y->thread));
        assert_int_equal(x->block_bytes, y->block_bytes);
        assert_memory_equal(a->values + i * a->n_sample_types, b->values + i * b->n_sample_types,
                            a->n_sample_types * sizeof(int64_t));
    }
    const struct profile_meta *m = &a->meta, *n = &b->meta;
    assert_int_equal(m->pid, n->pid);
    assert_string_equal(str(a, m->command), str(b, n->command));
    assert_string_equal(str(a, m->python_version), str(b, n->python_version));
    assert_string_equal(str(a, m->mode), str(b, n->mode));
    assert_int_equal(m->start_unix_ns, n->start_unix_ns);
    assert_int_equal(m->duration_ns, n->duration_ns);
    assert_int_equal(m->rate, n->rate);
    assert_int_equal(m->dropped_events, n->dropped_events);
    assert_int_equal(m->dropped_bytes, n->dropped_bytes);
    assert_int_equal(m->peak_rss, n->peak_rss);
    assert_int_equal(m->peak_heap, n->peak_heap);
    assert_int_equal(m->peak_time_ns, n->peak_time_ns);
    assert_int_equal(m->total_alloc_bytes, n->total_alloc_bytes);
    assert_int_equal(m->total_alloc_count, n->total_alloc_count);
    assert_int_equal(a->n_timeline, b->n_timeline);
    if (a->n_timeline)
        assert_memory_equal(a->timeline, b->timeline, a->n_timeline * sizeof *a->timeline);
    assert_int_equal(a->n_comments, b->n_comments);
    for (size_t i = 0; i < a->n_comments; i++)
        assert_string_equal(str(a, a->comments[i]), str(b, b->comments[i]));
}

static uint8_t *file_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct profile *p = rich_profile();
    ms_error err = {{0}};
    for (int gz = 0; gz <= 1; gz++) {
        const char *path = tmp_path(gz ? "rich.pb.gz" : "rich.pb");
        assert_int_equal(profile_write(p, path, gz, &err), 0);
        size_t len;
        uint8_t *bytes = file_slurp(path, &len);
        assert_int_equal(bytes[0] == 0x1f && bytes[1] == 0x8b, gz);
        free(bytes);

        /* MEMSNAP_FUZZ_SEEDS=tests/fuzz/corpus/profile refreshes the fuzzer's seeds. */
        const char *seeds = getenv("MEMSNAP_FUZZ_SEEDS");
        if (seeds) {
            char seed[600];
            snprintf(seed, sizeof seed, "%s/rich.%s", seeds, gz ? "gz" : "raw");
            assert_int_equal(profile_write(p, seed, gz, &err), 0);
        }

        struct profile *q = NULL;
        if (profile_read(path, &q, &err))
            fail_msg("%s", err.msg);
        assert_null(q->intern);
        assert_string_equal(q->strings[0], "");
        assert_same_profile(p, q);
        assert_string_equal(str(q, q->functions[1].name), "Loader.load_données");
        assert_string_equal(str(q, q->samples[1].thread), "worker-🧵");
        assert_int_equal(profile_find_sample_type(q, "inuse_space"), 1);
        assert_int_equal(profile_find_sample_type(q, "nope"), -1);

        /* A profile that was read can be extended: the builder adopts it. */
        assert_int_equal(profile_add_function(q, "<module>", "/srv/app/main.py", 1), 0);
        uint32_t f = profile_add_function(q, "new", "/x.py", 1);
        assert_int_equal(f, q->n_functions - 1);
        assert_int_equal(profile_intern(q, "MainThread"), p->samples[0].thread);
        profile_free(q);
    }
    profile_free(p);
}

static void test_dedup_and_growth(void **state)
{
    (void)state;
    struct profile *p = profile_new();
    assert_non_null(p);
    assert_int_equal(p->n_strings, 1);
    assert_int_equal(profile_intern(p, ""), 0);
    uint32_t a = profile_intern(p, "a");
    assert_int_equal(profile_intern(p, "a"), a);
    assert_int_not_equal(profile_intern(p, "b"), a);
    /* Invalid UTF-8 is repaired on the way in, and dedups with its repaired form. */
    uint32_t bad = profile_intern(p, "x\xff\xc0\xafy");
    assert_string_equal(p->strings[bad], "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy");
    assert_int_equal(profile_intern(p, "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy"), bad);

    assert_int_equal(profile_add_sample_type(p, "t", "u"), 0);
    assert_int_equal(profile_add_sample_type(p, "t", "u"), 0);
    assert_int_equal(profile_add_sample_type(p, "t", "v"), 1);

    uint32_t f = profile_add_function(p, "f", "file.py", 3);
    assert_int_equal(profile_add_function(p, "f", "file.py", 3), f);
    assert_int_not_equal(profile_add_function(p, "f", "file.py", 4), f);
    assert_int_not_equal(profile_add_function(p, "f", "other.py", 3), f);
    struct profile_line l1[2] = {{f, 10}, {f, 11}};
    uint32_t loc = profile_add_location(p, l1, 2);
    assert_int_equal(profile_add_location(p, l1, 2), loc);
    assert_int_not_equal(profile_add_location(p, l1, 1), loc);
    struct profile_line bogus = {999, 1};
    assert_int_equal(profile_add_location(p, &bogus, 1), UINT32_MAX);

    /* Many distinct entries: the tables grow and keep finding old ones. */
    char name[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof name, "fn%d", i);
        uint32_t fi = profile_add_function(p, name, "many.py", i);
        struct profile_line ln = {fi, i};
        assert_int_not_equal(profile_add_location(p, &ln, 1), UINT32_MAX);
    }
    size_t nf = p->n_functions, nl = p->n_locations, ns = p->n_strings;
    for (int i = 0; i < 100000; i += 997) {
        snprintf(name, sizeof name, "fn%d", i);
        uint32_t fi = profile_add_function(p, name, "many.py", i);
        assert_string_equal(p->strings[p->functions[fi].name], name);
        struct profile_line ln = {fi, i};
        profile_add_location(p, &ln, 1);
    }
    assert_int_equal(p->n_functions, nf);
    assert_int_equal(p->n_locations, nl);
    assert_int_equal(p->n_strings, ns);

    int64_t v[2] = {1, 2};
    uint32_t stack[1] = {loc};
    assert_int_equal(profile_add_sample(p, stack, 1, v, 0, 0), 0);
    /* After the first sample the value matrix is fixed: no new sample type. */
    assert_int_equal(profile_add_sample_type(p, "late", "u"), UINT32_MAX);
    uint32_t bad_stack[1] = {UINT32_MAX - 5};
    assert_int_equal(profile_add_sample(p, bad_stack, 1, v, 0, 0), -1);
    assert_int_equal(p->n_samples, 1);
    profile_free(p);
}

/* Runs in a child whose address space is capped: adds to the profile until an allocation
 * fails, then lifts the cap and checks that the profile is whole. Returns the exit code. */
static int oom_child(void)
{
    struct profile *p = rich_profile();
    struct rlimit old;
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld", &pages) != 1 || getrlimit(RLIMIT_AS, &old))
        return 10;
    fclose(f);
    struct rlimit low = {(rlim_t)pages * 4096 + (64 << 20), old.rlim_max};
    if (setrlimit(RLIMIT_AS, &low))
        return 11;
    char name[64];
    int failed = 0;
    size_t samples = p->n_samples;
    for (int i = 0; i < 50000000 && !failed; i++) {
        snprintf(name, sizeof name, "function_with_a_long_name_%d", i);
        uint32_t fn = profile_add_function(p, name, "/srv/oom.py", i);
        struct profile_line line = {fn, i};
        uint32_t loc = fn == UINT32_MAX ? UINT32_MAX : profile_add_location(p, &line, 1);
        uint32_t stack[16];
        for (int k = 0; k < 16; k++)
            stack[k] = loc == UINT32_MAX ? 0 : loc - (uint32_t)k % (loc + 1);
        int64_t v[2] = {i, -i};
        if (fn == UINT32_MAX || loc == UINT32_MAX)
            failed = 1;
        else if (profile_add_sample(p, stack, 16, v, 0, 0))
            failed = 2;
        else
            samples++;
    }
    setrlimit(RLIMIT_AS, &old);
    if (!failed)
        return 12;
    if (p->n_samples != samples)
        return 13;
    ms_error err;
    const char *path = tmp_path("oom.pb.gz");
    struct profile *q = NULL;
    if (profile_write(p, path, 1, &err) || profile_read(path, &q, &err))
        return 14;
    if (q->n_samples != p->n_samples || q->n_functions != p->n_functions ||
        q->n_locations != p->n_locations)
        return 15;
    profile_free(q);
    /* And it keeps growing once memory is back. */
    if (profile_add_function(p, "after", "/srv/oom.py", 1) == UINT32_MAX)
        return 16;
    profile_free(p);
    return 0;
}

static void test_out_of_memory(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    print_message("SKIP: sanitizers reserve too much address space for an RLIMIT_AS test\n");
    return;
#endif
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(oom_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A write that cannot complete leaves neither a partial file nor a changed old one. */
static void test_atomic_full_disk(void **state)
{
    (void)state;
    const char *mnt = tmp_path("tiny");
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k")) {
        print_message("SKIP: cannot mount a tmpfs (%s); full-disk test skipped\n", strerror(errno));
        return;
    }
    char dest[600];
    snprintf(dest, sizeof dest, "%s/out.pb", mnt);
    struct profile *small = rich_profile();
    ms_error err = {{0}};
    assert_int_equal(profile_write(small, dest, 0, &err), 0);
    size_t old_len;
    uint8_t *old = file_slurp(dest, &old_len);

    /* Big enough to overflow 64 KiB even gzipped: random-looking values. */
    struct profile *big = rich_profile();
    uint32_t stack[2] = {0, 1};
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 40000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t v[2] = {(int64_t)x, (int64_t)(x >> 3)};
        assert_int_equal(profile_add_sample(big, stack, 2, v, 0, 0), 0);
    }
    for (int gz = 0; gz <= 1; gz++) {
        err.msg[0] = 0;
        assert_int_equal(profile_write(big, dest, gz, &err), -1);
        assert_non_null(strstr(err.msg, "No space left on device"));
        size_t now_len;
        uint8_t *now = file_slurp(dest, &now_len);
        assert_int_equal(now_len, old_len);
        assert_memory_equal(now, old, old_len);
        free(now);
        /* Nothing but out.pb is left in the directory. */
        char cmd[700];
        snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = out.pb", mnt);
        assert_int_equal(system(cmd), 0);
    }
    free(old);
    profile_free(small);
    profile_free(big);
    umount(mnt);
}

static void test_write_errors(void **state)
{
    (void)state;
    struct profile *p = rich_profile();
    ms_error err = {{0}};
    assert_int_equal(profile_write(p, "/nonexistent-dir/x.pb", 0, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent-dir"));
    assert_int_equal(profile_write(p, tmpdir, 0, &err), -1); /* a directory */
    /* An inconsistent model is refused, not written. */
    p->stack_locs[0] = 77;
    assert_int_equal(profile_write(p, tmp_path("bad.pb"), 0, &err), -1);
    assert_non_null(strstr(err.msg, "inconsistent"));
    assert_int_equal(access(tmp_path("bad.pb"), F_OK), -1);

    /* "-" is standard output. */
    p->stack_locs[0] = 0;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(tmp_path("stdout.pb"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    int rc = profile_write(p, "-", 1, &err);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(fd);
    assert_int_equal(rc, 0);
    struct profile *q = NULL;
    if (profile_read(tmp_path("stdout.pb"), &q, &err))
        fail_msg("%s", err.msg);
    assert_same_profile(p, q);
    profile_free(q);
    profile_free(p);
}

/* Reading must fail with one sentence, never crash, on every prefix of a valid file. */
static void test_truncation_everywhere(void **state)
{
    (void)state;
    struct profile *p = rich_profile();
    ms_error err = {{0}};
    for (int gz = 0; gz <= 1; gz++) {
        const char *path = tmp_path("trunc.pb");
        assert_int_equal(profile_write(p, path, gz, &err), 0);
        size_t len;
        uint8_t *bytes = file_slurp(path, &len);
        struct profile *q = NULL;
        for (size_t n = 0; n < len; n++) {
            err.msg[0] = 0;
            int rc = profile_read_mem(bytes, n, &q, &err);
            /* A raw prefix that ends exactly between top-level fields is a valid (smaller)
             * profile; anything else must be refused. */
            if (rc == 0) {
                assert_false(gz);
                profile_free(q);
                continue;
            }
            assert_null(q);
            assert_true(strlen(err.msg) > 10);
            assert_null(strchr(err.msg, '\n'));
        }
        assert_int_equal(profile_read_mem(bytes, len, &q, &err), 0);
        profile_free(q);
        free(bytes);
    }
    profile_free(p);
}

static void test_bit_flips(void **state)
{
    (void)state;
    struct profile *p = rich_profile();
    ms_error err;
    const char *path = tmp_path("flip.pb");
    assert_int_equal(profile_write(p, path, 0, &err), 0);
    size_t len;
    uint8_t *bytes = file_slurp(path, &len);
    uint8_t *copy = malloc(len);
    srand(1234);
    int refused = 0;
    for (int round = 0; round < 20000; round++) {
        memcpy(copy, bytes, len);
        for (int k = 0; k < 1 + round % 4; k++)
            copy[rand() % len] ^= (uint8_t)(1u << (rand() % 8));
        struct profile *q = NULL;
        if (profile_read_mem(copy, len, &q, &err) == 0) {
            /* Accepted: it must honour the contract, so walk every reference. */
            for (size_t i = 0; i < q->n_samples; i++)
                for (uint32_t k = 0; k < q->samples[i].n_locs; k++) {
                    const struct profile_location *l =
                        &q->locations[q->stack_locs[q->samples[i].first_loc + k]];
                    assert_true(l->n_lines >= 1);
                    const struct profile_line *ln = &q->lines[l->first_line + l->n_lines - 1];
                    assert_true(strlen(q->strings[q->functions[ln->function].name]) < len * 3);
                }
            profile_free(q);
        } else {
            refused++;
        }
    }
    assert_true(refused > 0);
    free(copy);
    free(bytes);
    profile_free(p);
}

/* --- hand-made malformed files --- */

/* A protobuf message being written by hand, to make exactly the bytes a test needs. */
struct pb {
    uint8_t d[1 << 16];
    size_t n;
};

static void pb_varint(struct pb *b, uint64_t v)
{
    while (v >= 0x80) {
        b->d[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->d[b->n++] = (uint8_t)v;
}

static void pb_num(struct pb *b, uint32_t field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

static void pb_bytes(struct pb *b, uint32_t field, const void *data, size_t len)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, len);
    memcpy(b->d + b->n, data, len);
    b->n += len;
}

static void pb_msg(struct pb *b, uint32_t field, const struct pb *m)
{
    pb_bytes(b, field, m->d, m->n);
}

static void pb_str(struct pb *b, const char *s)
{
    pb_bytes(b, 6, s, strlen(s));
}

/* The parts of a small valid profile, each replaceable by a test. Strings: 0 "", 1 "t",
 * 2 "u", 3 "f", 4 "file.py". */
struct parts {
    int strings;     /* write the standard string table */
    int sample_type; /* write sample_type {1, 2} */
    uint64_t fn_id;  /* function {fn_id, name 3, filename 4} */
    uint64_t fn_name;
    uint64_t loc_id; /* location {loc_id, line {line_fn, 7}} */
    uint64_t line_fn;
    uint64_t sample_loc; /* sample {location_id [sample_loc], value [5]} */
    int n_values;
};

static const struct parts valid = {1, 1, 1, 3, 1, 1, 1, 1};

static size_t build_parts(const struct parts *x, struct pb *out)
{
    struct pb *m = calloc(1, sizeof *m), *inner = calloc(1, sizeof *inner);
    assert_non_null(m);
    assert_non_null(inner);
    out->n = 0;
    if (x->sample_type) {
        m->n = 0;
        pb_num(m, 1, 1);
        pb_num(m, 2, 2);
        pb_msg(out, 1, m);
    }
    m->n = 0; /* the sample first: ids used before they are defined */
    pb_num(m, 1, x->sample_loc);
    for (int i = 0; i < x->n_values; i++)
        pb_num(m, 2, 5);
    pb_msg(out, 2, m);
    m->n = 0;
    inner->n = 0;
    pb_num(inner, 1, x->line_fn);
    pb_num(inner, 2, 7);
    pb_num(m, 1, x->loc_id);
    pb_msg(m, 4, inner);
    pb_msg(out, 4, m);
    m->n = 0;
    pb_num(m, 1, x->fn_id);
    pb_num(m, 2, x->fn_name);
    pb_num(m, 4, 4);
    pb_msg(out, 5, m);
    if (x->strings) {
        pb_str(out, "");
        pb_str(out, "t");
        pb_str(out, "u");
        pb_str(out, "f");
        pb_str(out, "file.py");
    }
    free(m);
    free(inner);
    return out->n;
}

/* Reads b and expects a refusal whose message contains `needle`. */
static void expect_refused(const uint8_t *d, size_t n, const char *needle)
{
    struct profile *q = (struct profile *)1;
    ms_error err = {{0}};
    if (profile_read_mem(d, n, &q, &err) == 0)
        fail_msg("accepted a file that should say \"%s\"", needle);
    assert_null(q);
    if (!strstr(err.msg, needle))
        fail_msg("expected \"%s\" in: %s", needle, err.msg);
    assert_null(strchr(err.msg, '\n'));
}

static void expect_parts_refused(const struct parts *x, const char *needle)
{
    static struct pb b;
    build_parts(x, &b);
    expect_refused(b.d, b.n, needle);
}

static void test_malformed(void **state)
{
    (void)state;
    static struct pb b;
    struct profile *q = NULL;
    ms_error err = {{0}};

    /* The base case is valid, so each variant below fails for its own reason only. */
    build_parts(&valid, &b);
    if (profile_read_mem(b.d, b.n, &q, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(q->n_samples, 1);
    assert_string_equal(q->strings[q->functions[0].name], "f");
    profile_free(q);

    struct parts x;
    x = valid, x.strings = 0;
    expect_parts_refused(&x, "no string table");
    x = valid, x.sample_type = 0;
    expect_parts_refused(&x, "no sample types");
    x = valid, x.fn_id = 0, x.line_fn = 0;
    expect_parts_refused(&x, "function 1 has no id");
    x = valid, x.loc_id = 0, x.sample_loc = 0;
    expect_parts_refused(&x, "location 1 has no id");
    x = valid, x.sample_loc = 2;
    expect_parts_refused(&x, "location id 2, which is not defined");
    x = valid, x.line_fn = 99;
    expect_parts_refused(&x, "function id 99, which is not defined");
    x = valid, x.fn_name = 5;
    expect_parts_refused(&x, "refers to string 5 of a table of 5");
    x = valid, x.fn_name = UINT64_MAX; /* -1 as an int64 */
    expect_parts_refused(&x, "refers to string -1");
    x = valid, x.n_values = 2;
    expect_parts_refused(&x, "more than 1 values");
    x = valid, x.n_values = 0;
    expect_parts_refused(&x, "0 values for 1 sample types");

    /* Sparse, repeated and huge ids. */
    x = valid, x.fn_id = x.line_fn = 1ull << 63, x.loc_id = x.sample_loc = UINT64_MAX;
    build_parts(&x, &b);
    assert_int_equal(profile_read_mem(b.d, b.n, &q, &err), 0);
    profile_free(q);
    x = valid, x.fn_id = x.line_fn = 77;
    build_parts(&x, &b);
    struct pb *m = calloc(1, sizeof *m);
    pb_num(m, 1, 77);
    pb_num(m, 2, 3);
    pb_msg(&b, 5, m); /* a second function with id 77 */
    expect_refused(b.d, b.n, "function id 77 is defined twice");
    build_parts(&valid, &b);
    m->n = 0;
    pb_num(m, 1, 1);
    pb_msg(&b, 4, m); /* a second location with id 1 (sequential ids: 1, 1) */
    expect_refused(b.d, b.n, "location id 1 is defined twice");

    /* Wire-level damage. */
    expect_refused(NULL, 0, "it is empty");
    expect_refused((const uint8_t *)"hello, world\n", 13, "is not a pprof profile");
    expect_refused((const uint8_t *)"<svg xmlns=", 11, "is not a pprof profile");
    build_parts(&valid, &b);
    b.d[0] = 1 << 3 | 0; /* sample_type as a number */
    expect_refused(b.d, b.n, "wire type");
    b.n = 0;
    pb_varint(&b, 2 << 3 | 2);
    pb_varint(&b, 1ull << 40); /* a length far past the end */
    expect_refused(b.d, b.n, "truncated");
    b.n = 0;
    pb_varint(&b, 9 << 3);
    memset(b.d + b.n, 0xff, 11);
    b.n += 11;
    b.d[b.n++] = 1;
    expect_refused(b.d, b.n, "longer than 10 bytes");
    const uint8_t field_zero[] = {0x00, 0x01};
    expect_refused(field_zero, sizeof field_zero, "field number 0");
    const uint8_t group[] = {0x0b, 0x0c};
    expect_refused(group, sizeof group, "wire type 3");

    /* Stack depth: the limit is accepted, one more is refused. */
    for (int depth = PROFILE_MAX_STACK_DEPTH; depth <= PROFILE_MAX_STACK_DEPTH + 1; depth++) {
        b.n = 0;
        build_parts(&valid, &b);
        m->n = 0;
        struct pb *ids = calloc(1, sizeof *ids);
        for (int i = 0; i < depth; i++)
            pb_varint(ids, 1); /* the same location over and over: deep recursion */
        pb_msg(m, 1, ids);
        pb_num(m, 2, 1);
        pb_msg(&b, 2, m);
        free(ids);
        if (depth == PROFILE_MAX_STACK_DEPTH) {
            if (profile_read_mem(b.d, b.n, &q, &err))
                fail_msg("%s", err.msg);
            assert_int_equal(q->samples[1].n_locs, depth);
            profile_free(q);
        } else {
            expect_refused(b.d, b.n, "frames deep");
        }
    }
    free(m);
}

/* A gzip member holding d[0..n), written to out (cap bytes); returns its size. */
static size_t gzip_bytes(const uint8_t *d, size_t n, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)d;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t size = cap - z.avail_out;
    deflateEnd(&z);
    return size;
}

/* gzip framing: members, truncation, corruption, junk after the end. */
static void test_gzip_framing(void **state)
{
    (void)state;
    struct profile *p = rich_profile(), *q = NULL;
    ms_error err = {{0}};
    const char *path = tmp_path("frame.pb.gz");
    assert_int_equal(profile_write(p, path, 1, &err), 0);
    size_t len;
    uint8_t *gz = file_slurp(path, &len);
    /* Two gzip members (`cat a.gz b.gz`): the profile, then one more sample of it. */
    static struct pb extra, sample;
    sample.n = extra.n = 0;
    pb_num(&sample, 1, 1);
    pb_num(&sample, 2, 11);
    pb_num(&sample, 2, 22);
    pb_msg(&extra, 2, &sample);
    uint8_t *two = malloc(len + 4096);
    memcpy(two, gz, len);
    size_t n2 = gzip_bytes(extra.d, extra.n, two + len, 4096);
    if (profile_read_mem(two, len + n2, &q, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(q->n_samples, p->n_samples + 1);
    assert_int_equal(q->values[p->n_samples * 2 + 1], 22);
    profile_free(q);
    memcpy(two + len, "junk", 4);
    expect_refused(two, len + 4, "data follows its gzip stream");
    expect_refused(gz, len - 9, "gzip data is truncated");
    memcpy(two, gz, len);
    two[len / 2] ^= 0x55;
    expect_refused(two, len, "is not a pprof profile");
    /* The trailer is checked, whichever inflater runs: a size that lies either way, and a
     * wrong CRC. */
    static const struct {
        size_t at;
        uint8_t flip;
    } trailer_lies[] = {{4, 0x01}, {1, 0x7f}, {8, 0x10}};
    for (size_t i = 0; i < sizeof trailer_lies / sizeof trailer_lies[0]; i++) {
        memcpy(two, gz, len);
        two[len - trailer_lies[i].at] ^= trailer_lies[i].flip;
        expect_refused(two, len, "gzip data is corrupt");
    }
    free(two);
    free(gz);

    /* A file that is not there, a directory, and standard input. */
    assert_int_equal(profile_read(tmp_path("missing.pb"), &q, &err), -1);
    assert_non_null(strstr(err.msg, "No such file"));
    assert_int_equal(profile_read(tmpdir, &q, &err), -1);
    assert_non_null(strstr(err.msg, "directory"));
    profile_free(p);
}

/* A profile big enough for the gzip writer to use many blocks and several batches: the
 * compressed file must be the raw file, byte for byte, to GNU gzip's own decoder too. */
static void test_gzip_large(void **state)
{
    (void)state;
    struct profile *p = rich_profile();
    uint32_t stack[24];
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < 300000; i++) {
        for (int k = 0; k < 24; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            stack[k] = (uint32_t)(x % p->n_locations);
        }
        int64_t v[2] = {(int64_t)(x % 1000), (int64_t)(x >> 40)};
        assert_int_equal(profile_add_sample(p, stack, 1 + (uint32_t)(x % 24), v, 0, 0), 0);
    }
    ms_error err = {{0}};
    const char *raw = tmp_path("large.pb"), *gz = tmp_path("large.pb.gz");
    assert_int_equal(profile_write(p, raw, 0, &err), 0);
    assert_int_equal(profile_write(p, gz, 1, &err), 0);
    struct profile *q = NULL;
    if (profile_read(gz, &q, &err))
        fail_msg("%s", err.msg);
    assert_same_profile(p, q);
    profile_free(q);
    if (access("/bin/gzip", X_OK) == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "/bin/gzip -dc '%s' | cmp -s - '%s'", gz, raw);
        assert_int_equal(system(cmd), 0);
    } else {
        print_message("SKIP: /bin/gzip is not installed\n");
    }
    profile_free(p);
}

/* --- independent encoder and decoder --- */

/* Absolute path of tests/decode/<name>, found from the working directory (make runs tests
 * from the repository root) or above the test binary. */
static const char *decode_file(const char *name)
{
    static char path[PATH_MAX + 64];
    char root[PATH_MAX];
    if (getcwd(root, sizeof root)) {
        snprintf(path, sizeof path, "%s/tests/decode/%s", root, name);
        if (access(path, F_OK) == 0)
            return path;
    }
    ssize_t k = readlink("/proc/self/exe", root, sizeof root - 1);
    root[k > 0 ? k : 0] = 0;
    for (char *s; (s = strrchr(root, '/'));) {
        *s = 0;
        snprintf(path, sizeof path, "%s/tests/decode/%s", root, name);
        if (access(path, F_OK) == 0)
            return path;
    }
    return NULL;
}

/* Appends the canonical summary of p (see tests/decode/decode.js) to out. */
static void summarize(const struct profile *p, char *out, size_t n)
{
    size_t len = 0;
#define PUT(...) (len += (size_t)snprintf(out + len, len < n ? n - len : 0, __VA_ARGS__))
    PUT("types ");
    for (size_t i = 0; i < p->n_sample_types; i++)
        PUT("%s%s/%s", i ? "," : "", p->strings[p->sample_types[i].type],
            p->strings[p->sample_types[i].unit]);
    PUT("\ndefault %s\n", p->strings[p->sample_types[p->default_sample_type].type]);
    PUT("period %s/%s %lld\n", p->strings[p->period_type.type], p->strings[p->period_type.unit],
        (long long)p->period);
    PUT("time %lld %lld\n", (long long)p->time_nanos, (long long)p->duration_nanos);
    for (size_t i = 0; i < p->n_samples; i++) {
        const struct profile_sample *s = &p->samples[i];
        PUT("sample ");
        for (size_t t = 0; t < p->n_sample_types; t++)
            PUT("%s%lld", t ? "," : "", (long long)p->values[i * p->n_sample_types + t]);
        PUT(" thread=%s bytes=%lld stack=", p->strings[s->thread], (long long)s->block_bytes);
        for (uint32_t k = 0; k < s->n_locs; k++) {
            const struct profile_location *l = &p->locations[p->stack_locs[s->first_loc + k]];
            PUT("%s", k ? ";" : "");
            for (uint32_t j = 0; j < l->n_lines; j++) {
                const struct profile_line *ln = &p->lines[l->first_line + j];
                const struct profile_function *f = &p->functions[ln->function];
                PUT("%s%s@%s:%lld", j ? "+" : "", p->strings[f->name], p->strings[f->filename],
                    (long long)ln->line);
            }
        }
        PUT("\n");
    }
    for (size_t i = 0; i < p->n_comments; i++)
        PUT("comment %s\n", p->strings[p->comments[i]]);
#undef PUT
    assert_true(len < n);
}

/* Fails at the first line where the two summaries differ. */
static void assert_same_summary(const char *want, const char *got, const char *who)
{
    size_t line = 1;
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        line += *w == '\n';
        w++, g++;
    }
    if (*w || *g) {
        fail_msg("%s disagrees at line %zu:\n  expected: %.200s\n  got:      %.200s", who, line,
                 w - (w > want ? 1 : 0), g - (g > got ? 1 : 0));
    }
}

#define SUMMARY_BYTES (1 << 20)

/* Reading what Google's Python protobuf wrote from the public schema. */
static void test_independent_encoder(void **state)
{
    (void)state;
    const char *script = decode_file("pprof_encode.py");
    assert_non_null(script);
    char check[64];
    char *argv[] = {"/usr/bin/python3", "-c", "import google.protobuf", NULL};
    if (access("/usr/bin/python3", X_OK) ||
        test_run_capture(argv, check, sizeof check, check, sizeof check, 20000) != 0) {
        print_message("SKIP: /usr/bin/python3 with python3-protobuf is not installed\n");
        return;
    }
    char *want = malloc(SUMMARY_BYTES), *got = malloc(SUMMARY_BYTES), errs[4096];
    assert_non_null(want);
    assert_non_null(got);
    for (int seed = 1; seed <= 3; seed++) {
        char seed_s[16];
        snprintf(seed_s, sizeof seed_s, "%d", seed);
        const char *path = tmp_path("python.pb");
        char *enc[] = {"/usr/bin/python3",
                       (char *)script,
                       (char *)path,
                       seed_s,
                       seed == 2 ? "--raw" : NULL,
                       NULL};
        int st = test_run_capture(enc, want, SUMMARY_BYTES, errs, sizeof errs, 60000);
        if (st != 0)
            fail_msg("pprof_encode.py failed (%d): %s", st, errs);
        struct profile *q = NULL;
        ms_error err = {{0}};
        if (profile_read(path, &q, &err))
            fail_msg("%s", err.msg);
        summarize(q, got, SUMMARY_BYTES);
        assert_same_summary(want, got, "memsnap's reader");
        assert_int_equal(q->meta.pid, 0); /* another tool's profile: no memsnap metadata */
        assert_int_equal(q->meta.command, 0);
        assert_int_equal(q->n_timeline, 0);
        profile_free(q);
    }
    free(want);
    free(got);
}

/* Decoding what we write with pprof-format (npm), an independent JavaScript decoder. */
static void test_independent_decoder(void **state)
{
    (void)state;
    const char *script = decode_file("decode.js");
    assert_non_null(script);
    char mods[PATH_MAX + 64];
    snprintf(mods, sizeof mods, "%s", script);
    snprintf(strrchr(mods, '/'), sizeof mods - (size_t)(strrchr(mods, '/') - mods),
             "/node_modules/pprof-format");
    if (access("/usr/bin/node", X_OK) || access(mods, F_OK)) {
        print_message("SKIP: node or tests/decode/node_modules (scripts/install-deps.sh) is "
                      "missing\n");
        return;
    }
    char *want = malloc(SUMMARY_BYTES), *got = malloc(SUMMARY_BYTES), errs[4096];
    assert_non_null(want);
    assert_non_null(got);
    struct profile *p = rich_profile();
    summarize(p, want, SUMMARY_BYTES);
    /* What every pprof reader must see of rich_profile()'s metadata: the format of profile.h,
     * spelled out here rather than produced by the code under test. */
    strcat(want, "comment memsnap.command=python3 -m app --naïve\n"
                 "comment memsnap.python_version=3.11.2\n"
                 "comment memsnap.mode=attach\n"
                 "comment memsnap.pid=4242\n"
                 "comment memsnap.start_unix_ns=1700000000000000000\n"
                 "comment memsnap.duration_ns=30000000001\n"
                 "comment memsnap.rate=524288\n"
                 "comment memsnap.dropped_events=3\n"
                 "comment memsnap.dropped_bytes=4096\n"
                 "comment memsnap.peak_rss=123456789\n"
                 "comment memsnap.peak_heap=98765432\n"
                 "comment memsnap.peak_time_ns=1500000000\n"
                 "comment memsnap.total_alloc_bytes=1099511627776\n"
                 "comment memsnap.total_alloc_count=77777\n"
                 "comment memsnap.timeline=0,1000000,500000;100000000,1000001,499999;"
                 "200000000,1000002,499998;300000000,1000003,499997;400000000,1000004,499996\n");
    ms_error err = {{0}};
    for (int gz = 0; gz <= 1; gz++) {
        const char *path = tmp_path("for-node.pb");
        assert_int_equal(profile_write(p, path, gz, &err), 0);
        char *argv[] = {"/usr/bin/node", (char *)script, (char *)path, NULL};
        int st = test_run_capture(argv, got, SUMMARY_BYTES, errs, sizeof errs, 60000);
        if (st != 0)
            fail_msg("decode.js refused our file (%d): %s", st, errs);
        assert_same_summary(want, got, "pprof-format");
    }
    profile_free(p);
    free(want);
    free(got);
}

/* A profile whose comments are exactly `texts` (memsnap's included: the test plays a file
 * of another writer), written and read back. */
static struct profile *with_comments(const char *const *texts, size_t n)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    assert_int_equal(profile_add_sample_type(p, "inuse_space", "bytes"), 0);
    p->comments = calloc(n + 1, sizeof *p->comments);
    assert_non_null(p->comments);
    for (size_t i = 0; i < n; i++)
        p->comments[i] = profile_intern(p, texts[i]);
    p->n_comments = n;
    ms_error err = {{0}};
    const char *path = tmp_path("comments.pb");
    assert_int_equal(profile_write(p, path, 0, &err), 0);
    free(p->comments); /* the builder did not allocate it */
    p->comments = NULL;
    p->n_comments = 0;
    profile_free(p);
    struct profile *q = NULL;
    if (profile_read(path, &q, &err))
        fail_msg("%s", err.msg);
    return q;
}

/* memsnap's comments are parsed strictly: anything out of range, malformed, unknown, or
 * out of order is ignored, never an error; other comments are kept as they were. */
static void test_meta_comments(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "memsnap.pid=0", /* out of range */
        "memsnap.pid=5", /* repeated key: the last valid one wins */
        "memsnap.pid=7",
        "memsnap.pid=12x",
        "memsnap.pid=-3",
        "memsnap.pid=",
        "memsnap.pid=2147483648", /* past a pid */
        "memsnap.rate=0",         /* rate is at least 1 */
        "memsnap.total_alloc_bytes=9223372036854775807",
        "memsnap.total_alloc_count=9223372036854775808", /* past int64 */
        "memsnap.dropped_bytes=00000000000000000001234", /* too many digits */
        "memsnap.peak_rss=+5",
        "memsnap.command=python3 -c x=1; print(x)", /* only the first '=' splits */
        "memsnap.mode=",
        "memsnap.python_version=3.12.1",
        "memsnap.future_key=1",
        "memsnap.",
        "memsnap.timeline",
        "user comment: keep me",
        "memsnap",
        "memsnap.timeline=10,1,2;20,3,4",
        "memsnap.timeline=30,5,6;25,7,8", /* goes back in time within itself */
        "memsnap.timeline=15,5,6",        /* before what is already kept */
        "memsnap.timeline=40,5",          /* a point of two numbers */
        "memsnap.timeline=40,5,6;",       /* an empty point */
        "memsnap.timeline=40,5,6,7",
        "memsnap.timeline=",
        "memsnap.timeline=40,-5,6",
        "memsnap.timeline=20,9,9;50,11,12", /* equal times are kept */
        "",
    };
    size_t n = sizeof texts / sizeof texts[0];
    struct profile *q = with_comments(texts, n);
    assert_int_equal(q->meta.pid, 7);
    assert_int_equal(q->meta.rate, 0);
    assert_int_equal(q->meta.total_alloc_bytes, INT64_MAX);
    assert_int_equal(q->meta.total_alloc_count, 0);
    assert_int_equal(q->meta.dropped_bytes, 0);
    assert_int_equal(q->meta.peak_rss, 0);
    assert_string_equal(str(q, q->meta.command), "python3 -c x=1; print(x)");
    assert_int_equal(q->meta.mode, 0);
    assert_string_equal(str(q, q->meta.python_version), "3.12.1");
    assert_int_equal(q->n_timeline, 4);
    const struct profile_point want[] = {{10, 1, 2}, {20, 3, 4}, {20, 9, 9}, {50, 11, 12}};
    assert_memory_equal(q->timeline, want, sizeof want);
    /* Every memsnap comment is taken out, valid or not; the others stay, in order. */
    assert_int_equal(q->n_comments, 3);
    assert_string_equal(str(q, q->comments[0]), "user comment: keep me");
    assert_string_equal(str(q, q->comments[1]), "memsnap");
    assert_string_equal(str(q, q->comments[2]), "");

    /* Writing what was read gives the same metadata, as memsnap's own comments now. */
    ms_error err = {{0}};
    const char *path = tmp_path("comments2.pb.gz");
    assert_int_equal(profile_write(q, path, 1, &err), 0);
    struct profile *r = NULL;
    if (profile_read(path, &r, &err))
        fail_msg("%s", err.msg);
    assert_same_profile(q, r);
    profile_free(r);
    profile_free(q);

    /* The builder keeps memsnap's namespace for meta and the timeline. */
    struct profile *p = profile_new();
    assert_non_null(p);
    errno = 0;
    assert_int_equal(profile_add_comment(p, "memsnap.pid=1"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(p->n_comments, 0);
    profile_free(p);
}

/* A long timeline takes several comments and comes back whole; one past the reader's bound
 * is ignored. */
static void test_long_timeline(void **state)
{
    (void)state;
    struct profile *p = rich_profile();
    for (int i = 5; i < 4096; i++)
        assert_int_equal(profile_add_point(p, i * 100000000ll, 1ll << 40, i), 0);
    ms_error err = {{0}};
    const char *path = tmp_path("timeline.pb.gz");
    assert_int_equal(profile_write(p, path, 1, &err), 0);
    struct profile *q = NULL;
    if (profile_read(path, &q, &err))
        fail_msg("%s", err.msg);
    assert_same_profile(p, q);
    profile_free(q);
    profile_free(p);

    /* PROFILE_MAX_TIMELINE_POINTS + 1 points in one comment. */
    size_t n = PROFILE_MAX_TIMELINE_POINTS + 1, len = 0, size = 32 + n * 16;
    char *big = malloc(size);
    assert_non_null(big);
    len += (size_t)snprintf(big, size, "memsnap.timeline=");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(big + len, size - len, "%s%zu,1,1", i ? ";" : "", i);
    const char *texts[] = {"memsnap.timeline=1,2,3", big};
    q = with_comments(texts, 2);
    assert_int_equal(q->n_timeline, 1);
    profile_free(q);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),          cmocka_unit_test(test_dedup_and_growth),
        cmocka_unit_test(test_out_of_memory),       cmocka_unit_test(test_atomic_full_disk),
        cmocka_unit_test(test_write_errors),        cmocka_unit_test(test_truncation_everywhere),
        cmocka_unit_test(test_bit_flips),           cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_gzip_framing),        cmocka_unit_test(test_gzip_large),
        cmocka_unit_test(test_independent_encoder), cmocka_unit_test(test_independent_decoder),
        cmocka_unit_test(test_meta_comments),       cmocka_unit_test(test_long_timeline),
    };
    return cmocka_run_group_tests_name("profile", tests, setup, teardown);
}
