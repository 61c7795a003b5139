/*
 * bench_profile.c - times the profile library on a large profile, one operation per process
 * so that each peak RSS is its own. Driven by scripts/bench.d/profile.sh.
 *
 *   bench_profile write FILE SAMPLES DEPTH GZIP tree|random
 *                                                 build a profile, write it; prints build and
 *                                                 write seconds and the file size
 *   bench_profile read FILE                       profile_read(); prints seconds and peak RSS
 *   bench_profile unpack FILE                     protobuf-c's unpack of the same raw file,
 *                                                 for comparison with our decoder
 * Output is "key=value" words on one line; *_s are wall seconds, *_cpu user + system
 * seconds (the steadier number when other work shares the machine).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "profile.h"
#include "profile.pb-c.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) used so far: steadier than wall time on a shared machine. */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* A profile of a big application: 20000 functions, a location per (function, line), four
 * sample types, `samples` stacks of `depth` frames. With tree != 0 the stacks are paths in a
 * call tree where each caller mostly calls the same callee (real programs: long shared
 * caller prefixes); else every frame is drawn at random (the worst case for compression). */
static struct profile *build(size_t samples, uint32_t depth, int tree)
{
    struct profile *p = profile_new();
    profile_add_sample_type(p, "alloc_objects", "count");
    profile_add_sample_type(p, "alloc_space", "bytes");
    profile_add_sample_type(p, "inuse_objects", "count");
    profile_add_sample_type(p, "inuse_space", "bytes");
    p->default_sample_type = 3;
    enum { N_LOC = 20000 };
    uint32_t *locs = malloc(N_LOC * sizeof *locs);
    char name[64], file[64];
    for (uint32_t i = 0; i < N_LOC; i++) {
        snprintf(name, sizeof name, "module%u.Class%u.method_%u", i % 97, i % 1013, i);
        snprintf(file, sizeof file, "/srv/app/pkg%u/module%u.py", i % 31, i % 97);
        struct profile_line line = {profile_add_function(p, name, file, i % 500), i % 700 + 1};
        locs[i] = profile_add_location(p, &line, 1);
    }
    uint32_t *stack = malloc(depth * sizeof *stack);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint32_t thread = profile_intern(p, "MainThread");
    for (size_t s = 0; s < samples; s++) {
        uint32_t at = 0; /* the root: stacks are leaf first, so it goes last */
        for (uint32_t k = 0; k < depth; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (tree) /* 7 times in 8 the caller's usual callee, else one of 16 others */
                at = (at * 2654435761u + (x % 8 ? 0 : 1 + (x >> 8) % 16) + 1) % N_LOC;
            else
                at = x % N_LOC;
            stack[depth - 1 - k] = locs[at];
        }
        int64_t v[4] = {(int64_t)(x % 100), (int64_t)(x % 100000), (int64_t)(x % 10),
                        (int64_t)(x % 10000)};
        if (profile_add_sample(p, stack, depth, v, thread, (int64_t)(x % 4096))) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
    }
    free(stack);
    free(locs);
    return p;
}

int main(int argc, char **argv)
{
    ms_error err;
    if (argc == 7 && strcmp(argv[1], "write") == 0) {
        double t0 = now(), c0 = cpu();
        struct profile *p = build(strtoul(argv[3], NULL, 10), (uint32_t)atoi(argv[4]),
                                  strcmp(argv[6], "tree") == 0);
        double t1 = now(), c1 = cpu();
        if (profile_write(p, argv[2], atoi(argv[5]), &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        double t2 = now(), c2 = cpu();
        struct stat st;
        stat(argv[2], &st);
        printf("build_s=%.3f build_cpu=%.3f write_s=%.3f write_cpu=%.3f bytes=%lld samples=%zu "
               "frames=%zu rss_mb=%ld\n",
               t1 - t0, c1 - c0, t2 - t1, c2 - c1, (long long)st.st_size, p->n_samples,
               p->n_stack_locs, peak_rss_mb());
        profile_free(p);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "read") == 0) {
        double t0 = now(), c0 = cpu();
        struct profile *p = NULL;
        if (profile_read(argv[2], &p, &err)) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        printf("read_s=%.3f read_cpu=%.3f samples=%zu rss_mb=%ld\n", now() - t0, cpu() - c0,
               p->n_samples, peak_rss_mb());
        profile_free(p);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "unpack") == 0) {
        double t0 = now(), c0 = cpu();
        FILE *f = fopen(argv[2], "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st))
            return 1;
        uint8_t *buf = malloc((size_t)st.st_size);
        if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
            return 1;
        fclose(f);
        Memsnap__Pprof__Profile *m = memsnap__pprof__profile__unpack(NULL, (size_t)st.st_size, buf);
        if (!m)
            return 1;
        printf("unpack_s=%.3f unpack_cpu=%.3f samples=%zu rss_mb=%ld\n", now() - t0, cpu() - c0,
               m->n_sample, peak_rss_mb());
        memsnap__pprof__profile__free_unpacked(m, NULL);
        free(buf);
        return 0;
    }
    fprintf(stderr, "usage: bench_profile write FILE SAMPLES DEPTH GZIP tree|random | read FILE | "
                    "unpack FILE\n");
    return 2;
}
