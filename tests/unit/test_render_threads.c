/*
 * test_render_threads.c - the flame tree is the same, node for node, whether its depths are
 * scanned by one thread or several (flame_options.threads): plain stacks, stacks that are
 * copied (inlined multi-line locations), narrow children pruned into "(other)", and a diff
 * against a base profile.
 *
 * The profile is big enough for a depth to be split between threads (over 2 * 65536 live
 * samples) and built from deterministic pseudo-random stacks over a few hundred frames, so
 * nodes have many children, some wide and some pruned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flametree.h"

#define N_SAMPLES 150000
#define N_FUNCS   300

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rng_next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Stacks of 0 to 14 frames; callee k of a frame is picked with weight 1 / (k + 1), so a few
 * paths dominate and most are narrow. Every 50th location has two lines (inlined). */
static struct profile *random_profile(int salt)
{
    struct profile *p = profile_new();
    assert_non_null(p);
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    uint32_t fn[N_FUNCS], loc[N_FUNCS];
    for (int f = 0; f < N_FUNCS; f++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", f);
        fn[f] = profile_add_function(p, name, "/app/x.py", f);
    }
    for (int f = 0; f < N_FUNCS; f++) {
        struct profile_line lines[2] = {{fn[f], f + 1}, {fn[(f + 7) % N_FUNCS], 3}};
        loc[f] = profile_add_location(p, lines, f % 50 == 0 ? 2 : 1);
    }
    uint32_t stack[16];
    for (int s = 0; s < N_SAMPLES; s++) {
        int depth = (int)(rng_next() % 15);
        uint64_t h = 1;
        for (int d = 0; d < depth; d++) {
            uint64_t r = rng_next() % 100;
            uint64_t k = r < 50 ? 0 : r < 75 ? 1 : r < 90 ? 2 : 3 + r % 5;
            h = (h * 31 + k + 1 + (uint64_t)salt) % 1000003;
            stack[depth - 1 - d] = loc[h % N_FUNCS];
        }
        int64_t values[2] = {1 + (int64_t)(rng_next() % 4), 16 + (int64_t)(rng_next() % 5000)};
        assert_int_equal(profile_add_sample(p, stack, (uint32_t)depth, values, 0, 0), 0);
    }
    return p;
}

static struct flame_tree *build(const struct profile *p, const struct profile *base,
                                double min_fraction, int threads)
{
    struct flame_options opt = {.min_fraction = min_fraction, .threads = threads};
    struct flame_tree *t = NULL;
    ms_error err;
    if (flametree_build(p, base, &opt, &t, &err) < 0)
        fail_msg("flametree_build: %s", err.msg);
    return t;
}

static void assert_same_tree(const struct flame_tree *a, const struct flame_tree *b)
{
    assert_int_equal(a->n_nodes, b->n_nodes);
    assert_int_equal(a->n_frames, b->n_frames);
    assert_int_equal(a->max_depth, b->max_depth);
    assert_memory_equal(a->nodes, b->nodes, a->n_nodes * sizeof *a->nodes);
    assert_memory_equal(a->frames, b->frames, a->n_frames * sizeof *a->frames);
}

static void test_threads_same_tree(void **state)
{
    (void)state;
    struct profile *p = random_profile(0), *base = random_profile(1);
    static const double fractions[] = {0, 1e-4, 0.01};
    for (size_t i = 0; i < 3; i++) {
        struct flame_tree *one = build(p, NULL, fractions[i], 1);
        /* The case must be worth comparing: a big tree, with pruning where asked. */
        assert_true(one->n_nodes > 100);
        int others = 0;
        for (size_t n = 0; n < one->n_nodes; n++)
            others += one->frames[one->nodes[n].frame].kind == FLAME_OTHER;
        assert_int_equal(others > 0, fractions[i] > 0);
        for (int threads = 2; threads <= 5; threads += 3) {
            struct flame_tree *many = build(p, NULL, fractions[i], threads);
            assert_same_tree(one, many);
            flametree_free(many);
        }
        flametree_free(one);

        one = build(p, base, fractions[i], 1);
        struct flame_tree *many = build(p, base, fractions[i], 4);
        assert_true(one->has_base);
        assert_same_tree(one, many);
        flametree_free(one);
        flametree_free(many);
    }
    profile_free(p);
    profile_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_same_tree),
    };
    return cmocka_run_group_tests_name("render_threads", tests, NULL, NULL);
}
