/*
 * gen_render_profile.c - writes synthetic memsnap profiles for the renderer's benchmark and browser
 * test, through the real profile builder (proto/profile.h).
 *
 *   gen_render_profile big OUT [SAMPLES] [DEPTH]   SAMPLES stacks (default 1,000,000), DEPTH frames
 *                                          each (default 40), nearly all distinct
 *   gen_render_profile demo OUT             a small Django-like startup with a numpy import,
 *                                          a leaking cache, metadata and a timeline
 *   gen_render_profile demo-after OUT       the same after a change (for --diff)
 *
 * "big" walks a random call tree: every frame calls one of 4 callees, the first ones more
 * often (weights 1/(k+1)), so some stacks dominate as in real programs while the leaves are
 * almost all different. Functions and lines derive from a hash of the caller, so the same
 * call site always has the same callees. Deterministic (fixed seed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#define BIG_FILES 300
#define BIG_FUNCS 3000
#define BIG_LINES 16

static int gen_big(const char *out, long n_samples, int depth)
{
    struct profile *p = profile_new();
    if (!p)
        return -1;
    profile_add_sample_type(p, "alloc_objects", "count");
    profile_add_sample_type(p, "alloc_space", "bytes");
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    p->default_sample_type = 3;
    static uint32_t funcs[BIG_FUNCS];
    static uint32_t locs[BIG_FUNCS][BIG_LINES];
    for (int f = 0; f < BIG_FUNCS; f++) {
        char name[64], file[128];
        snprintf(name, sizeof name, "func_%d", f);
        snprintf(file, sizeof file, "/srv/app/pkg%d/module%d.py", f % 17, f % BIG_FILES);
        funcs[f] = profile_add_function(p, name, file, 10 + f % 50);
        for (int l = 0; l < BIG_LINES; l++) {
            struct profile_line line = {funcs[f], 12 + f % 50 + l * 3};
            locs[f][l] = profile_add_location(p, &line, 1);
        }
    }
    uint32_t stack[PROFILE_MAX_STACK_DEPTH];
    for (long s = 0; s < n_samples; s++) {
        uint64_t h = 1;
        for (int d = 0; d < depth; d++) {
            /* Callee k of 4 with weight 1/(k+1): thresholds at 12/25, 18/25, 22/25. */
            uint64_t r = rng_next() % 25;
            int k = r < 12 ? 0 : r < 18 ? 1 : r < 22 ? 2 : 3;
            h = mix(h * 31 + (uint64_t)k + 1);
            stack[depth - 1 - d] = locs[h % BIG_FUNCS][(h >> 20) % BIG_LINES];
        }
        int64_t bytes = 32 + (int64_t)(rng_next() % 4096) * (int64_t)(1 + rng_next() % 8);
        int64_t count = 1 + (int64_t)(rng_next() % 16);
        int64_t values[4] = {count, bytes, count / 2, bytes / 2};
        if (profile_add_sample(p, stack, (uint32_t)depth, values, 0, bytes / count) < 0)
            return -1;
    }
    p->meta.mode = profile_intern(p, "attach");
    p->meta.pid = 4242;
    p->meta.duration_ns = 30000000000ll;
    p->meta.rate = 524288;
    ms_error err;
    int rc = profile_write(p, out, 1, &err);
    if (rc < 0)
        fprintf(stderr, "gen_render_profile: %s\n", err.msg);
    profile_free(p);
    return rc;
}

/* --- demo --- */

struct demo_frame {
    const char *name, *file;
    int line;
};

static uint32_t demo_loc(struct profile *p, const struct demo_frame *f)
{
    uint32_t fn = profile_add_function(p, f->name, f->file, 1);
    struct profile_line line = {fn, f->line};
    return profile_add_location(p, &line, 1);
}

/* Adds a sample from frames given root first. */
static void demo_sample(struct profile *p, const struct demo_frame *frames, int n, int64_t bytes,
                        int64_t count)
{
    uint32_t stack[64];
    for (int i = 0; i < n; i++)
        stack[n - 1 - i] = demo_loc(p, &frames[i]);
    int64_t values[4] = {count * 3, bytes * 2, count, bytes};
    profile_add_sample(p, stack, (uint32_t)n, values, 0, bytes / (count ? count : 1));
}

#define DJ  "/usr/lib/python3/dist-packages/django"
#define NP  "/usr/lib/python3/dist-packages/numpy"
#define BS  "<frozen importlib._bootstrap>"
#define BSE "<frozen importlib._bootstrap_external>"
#define APP "/home/dev/shop"

/* variant 1 ("demo-after"): the numpy import made lazy, the product cache 60% bigger. */
static int gen_demo(const char *out, int variant)
{
    struct profile *p = profile_new();
    profile_add_sample_type(p, "alloc_objects", "count");
    profile_add_sample_type(p, "alloc_space", "bytes");
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    p->default_sample_type = 3;
    const struct demo_frame root[] = {{"<module>", APP "/manage.py", 22},
                                      {"main", APP "/manage.py", 18}};
    const struct demo_frame boot[] = {
        {"execute_from_command_line", DJ "/core/management/__init__.py", 442},
        {"execute", DJ "/core/management/__init__.py", 416},
        {"setup", DJ "/__init__.py", 24},
        {"populate", DJ "/apps/registry.py", 116},
        {"import_models", DJ "/apps/config.py", 304},
        {"import_module", "/usr/lib/python3.11/importlib/__init__.py", 126},
        {"_gcd_import", BS, 1206},
        {"_find_and_load", BS, 1178},
        {"_find_and_load_unlocked", BS, 1149},
        {"_load_unlocked", BS, 690},
        {"exec_module", BSE, 940},
        {"_call_with_frames_removed", BS, 241},
        {"<module>", APP "/shop/models.py", 3},
        {"_find_and_load", BS, 1178},
        {"_find_and_load_unlocked", BS, 1126},
        {"_call_with_frames_removed", BS, 241},
        {"_find_and_load", BS, 1178},
        {"_find_and_load_unlocked", BS, 1149},
        {"_load_unlocked", BS, 690},
        {"exec_module", BSE, 940},
        {"_call_with_frames_removed", BS, 241},
        {"<module>", NP "/__init__.py", 141},
    };
    struct demo_frame st[64];
    int n = 0;
    memcpy(st, root, sizeof root);
    n = 2;
    /* numpy/__init__.py body and its own imports */
    memcpy(st + n, boot, sizeof boot);
    int nb = n + (int)(sizeof boot / sizeof boot[0]);
    const char *subs[] = {"core", "lib", "linalg", "fft", "polynomial", "random", "ma"};
    for (int i = 0; i < 7; i++) {
        n = nb;
        char file[128];
        static char files[7][128];
        snprintf(file, sizeof file, NP "/%s/__init__.py", subs[i]);
        memcpy(files[i], file, sizeof file);
        struct demo_frame imp[] = {{"_handle_fromlist", BS, 1231},
                                   {"_call_with_frames_removed", BS, 241},
                                   {"_find_and_load", BS, 1178},
                                   {"_find_and_load_unlocked", BS, 1149},
                                   {"_load_unlocked", BS, 690},
                                   {"exec_module", BSE, 940},
                                   {"_call_with_frames_removed", BS, 241},
                                   {"<module>", files[i], 10 + i}};
        st[n - 1].line = 150 + i;
        memcpy(st + n, imp, sizeof imp);
        n += 8;
        if (variant == 1 && i > 0)
            continue; /* after: only numpy.core is still imported at startup */
        demo_sample(p, st, n, 400000 + 350000 * (i % 3) + 120000 * i, 2500 + 300 * i);
        /* unmarshalling the .pyc of that module: a run without a <module> frame */
        struct demo_frame pyc[] = {
            {"exec_module", BSE, 936}, {"get_code", BSE, 1073}, {"_compile_bytecode", BSE, 729}};
        memcpy(st + n - 3, pyc, sizeof pyc);
        demo_sample(p, st, n, 150000 + 40000 * i, 900 + 50 * i);
        n = nb;
    }
    st[nb - 1].line = 141;
    demo_sample(p, st, nb, 210000, 1400);
    /* the application: a leaking cache and request handling */
    n = 2;
    const struct demo_frame app[] = {
        {"execute_from_command_line", DJ "/core/management/__init__.py", 442},
        {"execute", DJ "/core/management/__init__.py", 436},
        {"run_from_argv", DJ "/core/management/base.py", 412},
        {"execute", DJ "/core/management/base.py", 458},
        {"handle", APP "/shop/management/commands/warm.py", 31},
        {"warm_cache", APP "/shop/cache.py", 57},
    };
    memcpy(st + n, app, sizeof app);
    n += 6;
    const struct demo_frame leaf1[] = {{"load_products", APP "/shop/cache.py", 40},
                                       {"<listcomp>", APP "/shop/cache.py", 41}};
    memcpy(st + n, leaf1, sizeof leaf1);
    demo_sample(p, st, n + 2, variant == 1 ? 8300000 : 5200000, 41000);
    const struct demo_frame leaf2[] = {{"load_prices", APP "/shop/cache.py", 48},
                                       {"loads", "/usr/lib/python3.11/json/__init__.py", 346},
                                       {"decode", "/usr/lib/python3.11/json/decoder.py", 337},
                                       {"raw_decode", "/usr/lib/python3.11/json/decoder.py", 353}};
    memcpy(st + n, leaf2, sizeof leaf2);
    demo_sample(p, st, n + 4, 2900000, 28000);
    const struct demo_frame leaf3[] = {{"Product.__init__", APP "/shop/models.py", 88},
                                       {"__init__", DJ "/db/models/base.py", 460}};
    memcpy(st + n, leaf3, sizeof leaf3);
    demo_sample(p, st, n + 2, 1700000, 12000);
    const struct demo_frame hostile[] = {
        {"</script><script>alert(1)</script>", "<b>&amp;\"quoted\"]]>.py", 1}};
    memcpy(st + n, hostile, sizeof hostile);
    demo_sample(p, st, n + 1, 60000, 10);

    p->meta.mode = profile_intern(p, "run");
    p->meta.pid = 31337;
    p->meta.command = profile_intern(p, "python3 manage.py warm");
    p->meta.python_version = profile_intern(p, "3.11.2");
    p->meta.duration_ns = 4200000000ll;
    p->meta.rate = 1;
    p->meta.peak_heap = 24600000;
    p->meta.peak_rss = 61000000;
    p->meta.peak_time_ns = 3100000000ll;
    p->meta.total_alloc_bytes = 187000000;
    p->meta.total_alloc_count = 1530000;
    for (int i = 0; i <= 84; i++) {
        int64_t t = (int64_t)i * 50000000;
        double x = i / 84.0;
        int64_t heap = (int64_t)(24600000 * (x < 0.74 ? x / 0.74 : 1 - (x - 0.74) * 0.6));
        profile_add_point(p, t, 18000000 + heap * 17 / 10, heap);
    }
    ms_error err;
    int rc = profile_write(p, out, 1, &err);
    if (rc < 0)
        fprintf(stderr, "gen_render_profile: %s\n", err.msg);
    profile_free(p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "big")) {
        long n = argc > 3 ? atol(argv[3]) : 1000000;
        int depth = argc > 4 ? atoi(argv[4]) : 40;
        if (n < 1 || depth < 1 || depth > 1000) {
            fputs("gen_render_profile: bad size\n", stderr);
            return 2;
        }
        return gen_big(argv[2], n, depth) < 0;
    }
    if (argc == 3 && !strcmp(argv[1], "demo"))
        return gen_demo(argv[2], 0) < 0;
    if (argc == 3 && !strcmp(argv[1], "demo-after"))
        return gen_demo(argv[2], 1) < 0;
    fputs("usage: gen_render_profile big OUT [SAMPLES] [DEPTH] | demo OUT | demo-after OUT\n",
          stderr);
    return 2;
}
