/*
 * profile_gzip.c - gzip compression of the profile writer's stream on every available core.
 *
 * Compressing is most of the cost of writing a big profile: zlib's fastest level runs at
 * about 100 MB/s on one core, and a million samples of forty frames is over 100 MB of
 * protobuf. So each batch of input is cut into 1 MiB blocks that are deflated at the same
 * time, one thread per block, the way pigz does it: every block starts with the 32 KiB that
 * precede it as its dictionary (so the ratio barely changes) and ends with a sync flush (so
 * the blocks simply concatenate), and the CRCs combine. The result is ONE ordinary gzip
 * member, byte-for-byte a valid deflate stream any gunzip reads.
 *
 * Worker threads exist only for the duration of a batch, block every signal (so the caller's
 * handlers keep running on the caller's thread), and touch nothing but their own block.
 */
#include "profile_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define DICT_BYTES  32768
#define MAX_THREADS 8

struct gzip_block {
    const uint8_t *in;
    size_t len;
    const uint8_t *dict;
    size_t dict_len;
    int finish; /* the stream's last block: Z_FINISH instead of a sync flush */
    uint8_t *out;
    size_t out_len;
    uint32_t crc;
    int failed;
};

int gzip_stream_threads(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

/* Deflates one block into a buffer of its own. */
static void *block_deflate(void *arg)
{
    struct gzip_block *b = arg;
    z_stream z = {0};
    b->crc = (uint32_t)crc32(0, b->in, (uInt)b->len);
    /* Raw deflate (windowBits -15): the gzip header and trailer are written around it. */
    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        b->failed = 1;
        return NULL;
    }
    size_t cap = deflateBound(&z, (uLong)b->len) + 64; /* + the sync flush's marker */
    b->out = malloc(cap);
    if (!b->out || (b->dict_len && deflateSetDictionary(&z, b->dict, (uInt)b->dict_len) != Z_OK)) {
        b->failed = 1;
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)b->in;
    z.avail_in = (uInt)b->len;
    z.next_out = b->out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, b->finish ? Z_FINISH : Z_SYNC_FLUSH);
    if (b->finish ? rc != Z_STREAM_END : rc != Z_OK || z.avail_in != 0)
        b->failed = 1;
    b->out_len = cap - z.avail_out;
    deflateEnd(&z);
    return NULL;
}

/* Runs block_deflate on every block, in parallel, each worker thread with signals blocked. */
static void blocks_deflate(struct gzip_block *blocks, size_t n)
{
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 1; i < n; i++)
        started[i] = pthread_create(&tid[i], NULL, block_deflate, &blocks[i]) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    block_deflate(&blocks[0]);
    for (size_t i = 1; i < n; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            block_deflate(&blocks[i]); /* no thread to be had: do it here */
    }
}

static void le32_put(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

int gzip_stream_put(struct gzip_stream *g, const uint8_t *in, size_t len, int last,
                    int (*emit)(void *ctx, const uint8_t *bytes, size_t n), void *ctx)
{
    if (!g->started) {
        /* Magic, deflate, no flags, no time, fastest, Unix. */
        static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3};
        if (emit(ctx, header, sizeof header))
            return -1;
        g->started = 1;
    }
    struct gzip_block blocks[MAX_THREADS];
    size_t n = (len + GZIP_BLOCK_BYTES - 1) / GZIP_BLOCK_BYTES;
    if (n == 0 && last)
        n = 1; /* an empty final block still ends the deflate stream */
    if (n > MAX_THREADS)
        return -1; /* callers pass at most MAX_THREADS blocks at a time */
    for (size_t i = 0; i < n; i++) {
        size_t at = i * GZIP_BLOCK_BYTES;
        struct gzip_block *b = &blocks[i];
        *b = (struct gzip_block){.in = in + at,
                                 .len = len - at < GZIP_BLOCK_BYTES ? len - at : GZIP_BLOCK_BYTES,
                                 .finish = last && i == n - 1};
        if (i == 0) {
            b->dict = g->dict;
            b->dict_len = g->dict_len;
        } else {
            b->dict = in + at - DICT_BYTES; /* blocks are larger than the dictionary */
            b->dict_len = DICT_BYTES;
        }
    }
    blocks_deflate(blocks, n);

    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc && (blocks[i].failed || emit(ctx, blocks[i].out, blocks[i].out_len)))
            rc = -1;
        if (!rc) {
            g->crc = (uint32_t)crc32_combine(g->crc, blocks[i].crc, (z_off_t)blocks[i].len);
            g->total += blocks[i].len;
        }
        free(blocks[i].out);
    }
    if (rc)
        return -1;

    /* The next call's first block starts with the last 32 KiB seen so far. */
    if (len >= DICT_BYTES) {
        memcpy(g->dict, in + len - DICT_BYTES, DICT_BYTES);
        g->dict_len = DICT_BYTES;
    } else if (len) {
        size_t keep = g->dict_len + len > DICT_BYTES ? DICT_BYTES - len : g->dict_len;
        memmove(g->dict, g->dict + g->dict_len - keep, keep);
        memcpy(g->dict + keep, in, len);
        g->dict_len = keep + len;
    }
    if (last) {
        uint8_t trailer[8];
        le32_put(trailer, g->crc);
        le32_put(trailer + 4, (uint32_t)g->total); /* ISIZE: the size modulo 2^32 */
        return emit(ctx, trailer, sizeof trailer);
    }
    return 0;
}
