/*
 * profile_gzip.c - gzip for profiles on every available core: compressing the writer's
 * stream, and inflating files written that way.
 *
 * Compressing is most of the cost of writing a big profile (zlib's fastest level runs at
 * about 100 MB/s on one core, and a million samples of forty frames is over 100 MB of
 * protobuf), and inflating is the largest single cost of reading one back. So each batch of
 * input is cut into 1 MiB blocks that are deflated at the same time, one thread per block,
 * and every block becomes a gzip member of its own, compressed independently of the others
 * and carrying its total size in the header's extra field (the way BGZF does). Any gunzip
 * reads the concatenation as one stream; memsnap's reader finds every member from the sizes
 * alone and inflates them all at once, each straight into its place in the output.
 *
 * Worker threads (jobs.h) exist only for the duration of a batch and touch nothing but their
 * own blocks.
 */
#include "profile_internal.h"
#include "jobs.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_THREADS JOBS_MAX
/* deflate cannot expand data more than about 1032 times; beyond that a size lies. */
#define DEFLATE_MAX_RATIO 1032

int gzip_stream_threads(void)
{
    return jobs_cpus();
}

static void le16_put(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static void le32_put(uint8_t *b, uint32_t v)
{
    le16_put(b, v);
    le16_put(b + 2, v >> 16);
}

static uint32_t le16_get(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8;
}

static uint32_t le32_get(const uint8_t *b)
{
    return le16_get(b) | le16_get(b + 2) << 16;
}

/* --- writing --- */

struct gzip_block {
    const uint8_t *in;
    size_t len;
    uint8_t *out; /* the whole member: header, deflate data, trailer */
    size_t out_len;
    int failed;
};

/* Compresses one block into a complete gzip member in a buffer of its own. */
static void *block_deflate(void *arg)
{
    struct gzip_block *b = arg;
    z_stream z = {0};
    /* Raw deflate (windowBits -15): the member's header and trailer are written around it. */
    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        b->failed = 1;
        return NULL;
    }
    size_t cap =
        GZIP_MEMBER_HEADER_BYTES + deflateBound(&z, (uLong)b->len) + GZIP_MEMBER_TRAILER_BYTES;
    b->out = malloc(cap);
    if (!b->out) {
        b->failed = 1;
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)b->in;
    z.avail_in = (uInt)b->len;
    z.next_out = b->out + GZIP_MEMBER_HEADER_BYTES;
    z.avail_out = (uInt)(cap - GZIP_MEMBER_HEADER_BYTES - GZIP_MEMBER_TRAILER_BYTES);
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        b->failed = 1;
    size_t deflated = cap - GZIP_MEMBER_HEADER_BYTES - GZIP_MEMBER_TRAILER_BYTES - z.avail_out;
    deflateEnd(&z);
    b->out_len = GZIP_MEMBER_HEADER_BYTES + deflated + GZIP_MEMBER_TRAILER_BYTES;

    /* Magic, deflate, FEXTRA, no time, fastest, Unix; XLEN 8: subfield "MS" of 4 bytes. */
    static const uint8_t header[16] = {0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 4, 3, 8, 0, 'M', 'S', 4, 0};
    memcpy(b->out, header, sizeof header);
    le32_put(b->out + 16, (uint32_t)b->out_len);
    uint8_t *trailer = b->out + b->out_len - GZIP_MEMBER_TRAILER_BYTES;
    le32_put(trailer, (uint32_t)crc32(0, b->in, (uInt)b->len));
    le32_put(trailer + 4, (uint32_t)b->len);
    return NULL;
}

int gzip_stream_put(struct gzip_stream *g, const uint8_t *in, size_t len, int last,
                    int (*emit)(void *ctx, const uint8_t *bytes, size_t n), void *ctx)
{
    struct gzip_block blocks[MAX_THREADS];
    size_t n = (len + GZIP_BLOCK_BYTES - 1) / GZIP_BLOCK_BYTES;
    if (n == 0 && last && !g->started)
        n = 1; /* an empty stream is still one (empty) member */
    if (n > MAX_THREADS)
        return -1; /* callers pass at most MAX_THREADS blocks at a time */
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t at = i * GZIP_BLOCK_BYTES;
        blocks[i] = (struct gzip_block){
            .in = in + at, .len = len - at < GZIP_BLOCK_BYTES ? len - at : GZIP_BLOCK_BYTES};
    }
    jobs_run(block_deflate, blocks, sizeof *blocks, n);

    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc && (blocks[i].failed || emit(ctx, blocks[i].out, blocks[i].out_len)))
            rc = -1;
        free(blocks[i].out);
    }
    if (rc)
        return -1;
    g->started = 1;
    return 0;
}

/* --- reading --- */

struct gzip_member {
    const uint8_t *in;
    size_t len;
    uint8_t *out;
    size_t out_len;
};

/* A thread's share of the members: [first, first + n). */
struct inflate_job {
    const struct gzip_member *members;
    size_t first, n;
    int failed;
};

static void *members_inflate(void *arg)
{
    struct inflate_job *job = arg;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d) {
        job->failed = 1;
        return NULL;
    }
    for (size_t i = job->first; i < job->first + job->n && !job->failed; i++) {
        const struct gzip_member *m = &job->members[i];
        size_t in_used = 0, out_used = 0;
        /* libdeflate checks the member's CRC and ISIZE too. */
        if (libdeflate_gzip_decompress_ex(d, m->in, m->len, m->out, m->out_len, &in_used,
                                          &out_used) != LIBDEFLATE_SUCCESS ||
            in_used != m->len || out_used != m->out_len)
            job->failed = 1;
    }
    libdeflate_free_decompressor(d);
    return NULL;
}

/* The size a member at b (with `left` bytes from there to the end) says it has, or 0 when it
 * is not a member as gzip_stream_put writes them. */
static size_t member_size(const uint8_t *b, size_t left)
{
    if (left < GZIP_MEMBER_HEADER_BYTES + 2 + GZIP_MEMBER_TRAILER_BYTES)
        return 0;
    /* Exactly one extra subfield, "MS"; no name, comment or header CRC. */
    if (b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] != 4 || le16_get(b + 10) != 8 ||
        b[12] != 'M' || b[13] != 'S' || le16_get(b + 14) != 4)
        return 0;
    size_t size = le32_get(b + 16);
    if (size < GZIP_MEMBER_HEADER_BYTES + 2 + GZIP_MEMBER_TRAILER_BYTES || size > left)
        return 0;
    return size;
}

int gzip_members_inflate(const uint8_t *buf, size_t len, size_t max_out, uint8_t **out,
                         size_t *out_len)
{
    /* Find every member and where its output goes, from the sizes alone. */
    size_t n = 0, total = 0;
    for (size_t at = 0; at < len; n++) {
        size_t size = member_size(buf + at, len - at);
        if (!size)
            return 0;
        size_t isize = le32_get(buf + at + size - 4);
        if (isize / DEFLATE_MAX_RATIO > size || isize > max_out - total)
            return 0;
        total += isize;
        at += size;
    }
    if (n < 2)
        return 0; /* one member: the caller's single-call path is as fast */
    struct gzip_member *members = malloc(n * sizeof *members);
    uint8_t *dst = malloc(total ? total : 1);
    if (!members || !dst) {
        free(members);
        free(dst);
        return -1;
    }
    size_t done = 0;
    for (size_t i = 0, at = 0; i < n; i++) {
        size_t size = member_size(buf + at, len - at);
        size_t isize = le32_get(buf + at + size - 4);
        members[i] = (struct gzip_member){buf + at, size, dst + done, isize};
        done += isize;
        at += size;
    }

    /* Contiguous runs of members, of about equal compressed size, one per thread. */
    struct inflate_job jobs[MAX_THREADS];
    size_t n_jobs = (size_t)jobs_cpus();
    if (n_jobs > n)
        n_jobs = n;
    for (size_t j = 0, i = 0, seen = 0; j < n_jobs; j++) {
        jobs[j] = (struct inflate_job){.members = members, .first = i};
        size_t until = len / n_jobs * (j + 1);
        while (i < n && (j == n_jobs - 1 || seen < until))
            seen += members[i++].len;
        jobs[j].n = i - jobs[j].first;
    }
    jobs_run(members_inflate, jobs, sizeof *jobs, n_jobs);
    free(members);
    for (size_t j = 0; j < n_jobs; j++)
        if (jobs[j].failed) {
            free(dst);
            return 0;
        }
    *out = dst;
    *out_len = total;
    return 1;
}
