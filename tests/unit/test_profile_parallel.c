/*
 * test_profile_parallel.c - reading a profile on several cores gives exactly what reading it
 * on one gives.
 *
 *   - The decoder's samples pass cut into parts decoded by threads of their own
 *     (proto/profile_internal.h, struct decode_parts): the same profile, field by field, for
 *     memsnap's own files and for hand-encoded ones with unpacked location ids and hashed
 *     (non-sequential) ids; and, for inputs damaged anywhere, the same error sentence (the
 *     first faulty sample in file order wins, whichever part it is in).
 *   - memsnap's gzip files (independent members that state their sizes) are inflated member
 *     by member in parallel: byte for byte what zlib inflates, and when damaged, read by the
 *     parallel path exactly when zlib can read them, else refused with one sentence.
 *   - A big file read in slices by several threads is the file.
 *
 * Profiles are built with deterministic pseudo-random stacks deep and wide enough that
 * location ids take one to three bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include <cmocka.h>

#include "profile.h"
#include "profile_internal.h"

#define N_LOCATIONS 20000
#define N_SAMPLES   3000

static const struct decode_parts one_part = {1, 1, 1};
static const struct decode_parts parts_by_sample = {8, 1, 1};
static const struct decode_parts parts_by_marks = {3, 1, 7};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The bytes of a built profile, through the real writer, raw or gzipped. */
static uint8_t *profile_bytes_gz(const struct profile *p, int gzip, size_t *len)
{
    char path[] = "/tmp/memsnap-test-parts.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ms_error err;
    if (profile_write(p, path, gzip, &err))
        fail_msg("profile_write: %s", err.msg);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    unlink(path);
    *len = (size_t)n;
    return buf;
}

static uint8_t *profile_bytes(const struct profile *p, size_t *len)
{
    return profile_bytes_gz(p, 0, len);
}

/* A memsnap-like profile: two sample types, thread and bytes labels, stacks 0 to 60 deep. */
static struct profile *deep_profile(void)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    uint32_t fn[64];
    for (int f = 0; f < 64; f++) {
        char name[32], file[32];
        snprintf(name, sizeof name, "fn_%d", f);
        snprintf(file, sizeof file, "/app/m%d.py", f % 9);
        fn[f] = profile_add_function(p, name, file, f);
    }
    for (int l = 0; l < N_LOCATIONS; l++) {
        struct profile_line line = {fn[l % 64], l};
        assert_int_equal(profile_add_location(p, &line, 1), (uint32_t)l);
    }
    uint32_t threads[3] = {0, profile_intern(p, "MainThread"), profile_intern(p, "worker-1")};
    uint32_t stack[64];
    for (int s = 0; s < N_SAMPLES; s++) {
        uint32_t depth = (uint32_t)(rng_next() % 61);
        for (uint32_t d = 0; d < depth; d++)
            stack[d] = (uint32_t)(rng_next() % N_LOCATIONS);
        int64_t values[2] = {(int64_t)(rng_next() % 9), (int64_t)(rng_next() % 100000)};
        assert_int_equal(profile_add_sample(p, stack, depth, values, threads[s % 3],
                                            (int64_t)(rng_next() % 3) * 64),
                         0);
    }
    return p;
}

static struct profile *decode(const uint8_t *buf, size_t len, const struct decode_parts *parts,
                              ms_error *err)
{
    struct profile *p = NULL;
    int rc = profile_decode_parts(buf, len, "test.pb", 0, parts, &p, err);
    assert_int_equal(rc == 0, p != NULL);
    return p;
}

static void assert_same_samples(const struct profile *a, const struct profile *b)
{
    assert_int_equal(a->n_samples, b->n_samples);
    assert_int_equal(a->n_stack_locs, b->n_stack_locs);
    assert_int_equal(a->n_sample_types, b->n_sample_types);
    assert_int_equal(a->n_locations, b->n_locations);
    assert_int_equal(a->n_strings, b->n_strings);
    for (size_t i = 0; i < a->n_samples; i++) {
        const struct profile_sample *x = &a->samples[i], *y = &b->samples[i];
        assert_int_equal(x->first_loc, y->first_loc);
        assert_int_equal(x->n_locs, y->n_locs);
        assert_int_equal(x->thread, y->thread);
        assert_int_equal(x->block_bytes, y->block_bytes);
    }
    assert_memory_equal(a->stack_locs, b->stack_locs, a->n_stack_locs * sizeof *a->stack_locs);
    assert_memory_equal(a->values, b->values, a->n_samples * a->n_sample_types * sizeof *a->values);
}

static void test_parts_match_one_pass(void **state)
{
    (void)state;
    struct profile *built = deep_profile();
    size_t len;
    uint8_t *buf = profile_bytes(built, &len);
    ms_error err;
    struct profile *one = decode(buf, len, &one_part, &err);
    if (!one)
        fail_msg("one part: %s", err.msg);
    /* What was built comes back, then every cut gives the same. */
    assert_int_equal(one->n_samples, N_SAMPLES);
    for (size_t i = 0; i < built->n_samples; i++) {
        assert_int_equal(one->samples[i].n_locs, built->samples[i].n_locs);
        assert_memory_equal(one->stack_locs + one->samples[i].first_loc,
                            built->stack_locs + built->samples[i].first_loc,
                            built->samples[i].n_locs * sizeof *built->stack_locs);
    }
    const struct decode_parts *cuts[] = {&parts_by_sample, &parts_by_marks};
    for (size_t c = 0; c < 2; c++) {
        struct profile *many = decode(buf, len, cuts[c], &err);
        if (!many)
            fail_msg("parts: %s", err.msg);
        assert_same_samples(one, many);
        profile_free(many);
    }
    profile_free(one);
    free(buf);
    profile_free(built);
}

/* --- a hand-encoded file: unpacked and packed ids, ids that are not index + 1 --- */

struct pb {
    uint8_t *b;
    size_t n, cap;
};

static void pb_put(struct pb *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->b = realloc(b->b, b->cap);
        assert_non_null(b->b);
    }
    memcpy(b->b + b->n, data, n);
    b->n += n;
}

static void pb_varint(struct pb *b, uint64_t v)
{
    uint8_t x[10];
    size_t n = 0;
    do {
        x[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(b, x, n);
}

static void pb_num(struct pb *b, uint32_t field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

static void pb_msg(struct pb *b, uint32_t field, const struct pb *m)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, m->n);
    pb_put(b, m->b, m->n);
}

static void pb_str(struct pb *b, const char *s)
{
    pb_varint(b, 6 << 3 | 2);
    pb_varint(b, strlen(s));
    pb_put(b, s, strlen(s));
}

/* Location ids 5000 + 3 * i, so the decoder needs its id table; even samples list their ids
 * packed, odd ones one field per id. */
static uint8_t *hand_encoded(size_t *len)
{
    struct pb out = {0}, m = {0}, sub = {0};
    pb_str(&out, "");
    pb_str(&out, "alloc_space");
    pb_str(&out, "bytes");
    pb_str(&out, "f");
    pb_str(&out, "/f.py");
    m.n = 0;
    pb_num(&m, 1, 2);
    pb_num(&m, 2, 3);
    pb_msg(&out, 1, &m);
    m.n = 0;
    pb_num(&m, 1, 77);
    pb_num(&m, 2, 3);
    pb_num(&m, 4, 4);
    pb_msg(&out, 5, &m);
    for (uint64_t i = 0; i < 3000; i++) {
        m.n = sub.n = 0;
        pb_num(&sub, 1, 77);
        pb_num(&sub, 2, i);
        pb_num(&m, 1, 5000 + 3 * i);
        pb_msg(&m, 4, &sub);
        pb_msg(&out, 4, &m);
    }
    for (int s = 0; s < 2000; s++) {
        m.n = sub.n = 0;
        int depth = (int)(rng_next() % 30);
        for (int d = 0; d < depth; d++) {
            uint64_t id = 5000 + 3 * (rng_next() % 3000);
            if (s % 2)
                pb_num(&m, 1, id);
            else
                pb_varint(&sub, id);
        }
        if (s % 2 == 0 && sub.n)
            pb_msg(&m, 1, &sub);
        pb_num(&m, 2, rng_next() % 1000);
        pb_msg(&out, 2, &m);
    }
    free(m.b);
    free(sub.b);
    *len = out.n;
    return out.b;
}

static void test_parts_unpacked_hashed_ids(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = hand_encoded(&len);
    ms_error err;
    struct profile *one = decode(buf, len, &one_part, &err);
    if (!one)
        fail_msg("one part: %s", err.msg);
    assert_int_equal(one->n_samples, 2000);
    assert_true(one->n_stack_locs > 2000 * 10);
    const struct decode_parts *cuts[] = {&parts_by_sample, &parts_by_marks};
    for (size_t c = 0; c < 2; c++) {
        struct profile *many = decode(buf, len, cuts[c], &err);
        if (!many)
            fail_msg("parts: %s", err.msg);
        assert_same_samples(one, many);
        profile_free(many);
    }
    profile_free(one);
    free(buf);
}

/* Damages one byte at a time all over the samples (and a few past them), with values that
 * break numbers, lengths, field numbers and ids; one pass and parts must agree on the
 * outcome and the sentence. */
static void test_parts_same_errors(void **state)
{
    (void)state;
    struct profile *built = deep_profile();
    size_t len;
    uint8_t *buf = profile_bytes(built, &len);
    profile_free(built);
    static const uint8_t values[] = {0x00, 0xff, 0x80, 0x7f, 0x12};
    size_t tried = 0, refused = 0;
    for (size_t at = len / 3; at < len; at += 601 + at % 1487) {
        for (size_t v = 0; v < sizeof values; v++) {
            uint8_t was = buf[at];
            buf[at] = values[v];
            ms_error e1 = {0}, e2 = {0};
            struct profile *one = decode(buf, len, &one_part, &e1);
            struct profile *many = decode(buf, len, &parts_by_sample, &e2);
            assert_int_equal(one != NULL, many != NULL);
            if (one)
                assert_same_samples(one, many);
            else
                assert_string_equal(e1.msg, e2.msg);
            refused += one == NULL;
            tried++;
            profile_free(one);
            profile_free(many);
            buf[at] = was;
        }
    }
    /* The damage must have mattered often, or this compared nothing. */
    print_message("%zu damaged inputs, %zu refused\n", tried, refused);
    assert_true(tried > 800);
    assert_true(refused > tried / 4);
    free(buf);
}

/* --- gzip members --- */

/* What zlib makes of gz[0..len) (every member, as gunzip does): 0 and the bytes, or -1. */
static int zlib_gunzip(const uint8_t *gz, size_t len, uint8_t **out, size_t *out_len)
{
    size_t cap = 1 << 20, used = 0;
    uint8_t *dst = malloc(cap);
    assert_non_null(dst);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)len;
    int rc = -1;
    for (;;) {
        if (used == cap) {
            cap *= 2;
            dst = realloc(dst, cap);
            assert_non_null(dst);
        }
        z.next_out = dst + used;
        z.avail_out = (uInt)(cap - used);
        int zr = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0) {
                rc = 0;
                break;
            }
            inflateReset(&z);
            continue;
        }
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0))
            break;
    }
    inflateEnd(&z);
    if (rc) {
        free(dst);
        return -1;
    }
    *out = dst;
    *out_len = used;
    return 0;
}

static void test_members_inflate_in_parallel(void **state)
{
    (void)state;
    struct profile *built = deep_profile();
    /* Several members, and a file read in parallel slices: pad the profile with comments
     * until it passes 8 MiB raw. */
    char text[4096];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    for (int i = 0; i < 2300; i++) {
        text[i % 4000] = (char)('a' + i % 26);
        assert_int_equal(profile_add_comment(built, text), 0);
    }
    size_t raw_len, gz_len;
    uint8_t *raw = profile_bytes(built, &raw_len);
    uint8_t *gz = profile_bytes_gz(built, 1, &gz_len);
    profile_free(built);
    assert_true(raw_len > 8 * GZIP_BLOCK_BYTES);

    /* The file, read in slices, decodes to what its bytes in memory decode to. */
    char path[] = "/tmp/memsnap-test-parallel.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, raw, raw_len), (ssize_t)raw_len);
    close(fd);
    struct profile *from_file = NULL, *from_mem = NULL;
    ms_error err;
    if (profile_read(path, &from_file, &err) || profile_read_mem(raw, raw_len, &from_mem, &err))
        fail_msg("reading: %s", err.msg);
    unlink(path);
    assert_same_samples(from_file, from_mem);
    assert_int_equal(from_file->n_comments, from_mem->n_comments);
    assert_string_equal(from_file->strings[from_file->comments[2299]],
                        from_mem->strings[from_mem->comments[2299]]);
    profile_free(from_file);
    profile_free(from_mem);

    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(gzip_members_inflate(gz, gz_len, PROFILE_MAX_FILE_BYTES, &out, &out_len), 1);
    assert_int_equal(out_len, raw_len);
    assert_memory_equal(out, raw, raw_len);
    free(out);
    /* A limit below the size: not this path's to refuse, the general path names it. */
    assert_int_equal(gzip_members_inflate(gz, gz_len, raw_len - 1, &out, &out_len), 0);

    /* Damage: the parallel path agrees with zlib, or steps aside for the general path. */
    size_t tried = 0, read_back = 0;
    for (size_t at = 0; at < gz_len; at += 1 + (at * 7919) % (gz_len / 60)) {
        uint8_t was = gz[at];
        gz[at] ^= (uint8_t)(1 + at % 255);
        uint8_t *z = NULL;
        size_t z_len = 0;
        int z_ok = zlib_gunzip(gz, gz_len, &z, &z_len) == 0;
        int fast = gzip_members_inflate(gz, gz_len, PROFILE_MAX_FILE_BYTES, &out, &out_len);
        assert_true(fast == 0 || fast == 1);
        if (fast == 1) {
            assert_true(z_ok);
            assert_int_equal(out_len, z_len);
            assert_memory_equal(out, z, z_len);
            free(out);
        }
        struct profile *p = NULL;
        int rc = profile_read_mem(gz, gz_len, &p, &err);
        if (!z_ok)
            assert_int_equal(rc, -1);
        if (rc == 0 && z_len == raw_len && memcmp(z, raw, raw_len) == 0)
            read_back++;
        profile_free(p);
        free(z);
        gz[at] = was;
        tried++;
    }
    assert_true(tried > 40);
    assert_true(read_back < tried);
    /* Some damage is harmless: a member's time stamp is not checked by anyone. */
    gz[5] ^= 0xff;
    assert_int_equal(gzip_members_inflate(gz, gz_len, PROFILE_MAX_FILE_BYTES, &out, &out_len), 1);
    assert_memory_equal(out, raw, raw_len);
    free(out);
    free(raw);
    free(gz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_match_one_pass),
        cmocka_unit_test(test_parts_unpacked_hashed_ids),
        cmocka_unit_test(test_parts_same_errors),
        cmocka_unit_test(test_members_inflate_in_parallel),
    };
    return cmocka_run_group_tests_name("profile_parallel", tests, NULL, NULL);
}
