/*
 * profile_read.c - getting a profile's bytes: from a file or standard input, gunzipped when
 * they start with the gzip magic, with every size capped at PROFILE_MAX_FILE_BYTES so that a
 * hostile file (a gzip bomb, an endless pipe) costs bounded memory. Decoding and validation
 * are profile_decode.c's.
 *
 * Inflating is the largest single cost of reading a big profile, so memsnap's own files
 * (a series of independent members that state their sizes, profile_gzip.c) are inflated by
 * libdeflate on every CPU at once, and a file of one gzip member (what most tools and older
 * memsnap versions write) is inflated whole by libdeflate, which is about twice as fast as
 * zlib's streaming inflate; anything else (other series of members, a trailer that lies
 * about the size, corrupt data) goes through zlib, which also names the exact fault.
 *
 * Before any of that, the first bytes are sniffed (profile_sniff): a profile starts with
 * the gzip magic or with a valid pprof field tag, so `stats /dev/zero`, a sparse file of
 * zeros, or a random binary is refused after reading 64 KiB, not after 2 GiB of reading and
 * 4 GiB of memory. A gzip file's first decompressed bytes are sniffed the same way before it
 * is inflated whole, so a gzip bomb of zeros is refused at once too.
 */
#include "profile_internal.h"
#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libdeflate.h>
#include <unistd.h>
#include <zlib.h>

/* deflate cannot expand data more than about 1032 times; beyond that a size hint lies. */
#define DEFLATE_MAX_RATIO 1032

static int is_gzip(const uint8_t *buf, size_t len)
{
    return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

/* How many leading bytes are sniffed. */
#define SNIFF_BYTES (64u << 10)

/* Walks the top-level pprof fields in the first len bytes of a raw (not gzipped) profile
 * and refuses at the first thing no pprof Profile can hold: field number 0, an invalid wire
 * type, a known field with the wrong wire type, a varint of more than 10 bytes, a length
 * beyond PROFILE_MAX_FILE_BYTES. A field that runs past len ends the walk (the full decode
 * judges it). 0, or -1 with one sentence. */
static int sniff_raw(const uint8_t *b, size_t len, const char *what, int gzipped, ms_error *err)
{
    const char *form =
        gzipped ? "its gzip data holds no pprof protobuf" : "neither gzip nor a pprof protobuf";
    char why[96];
    size_t at = 0, field_at = 0;
    while (at < len) {
        uint64_t v[2] = {0, 0};
        field_at = at;
        /* the tag, then (by wire type) a varint or a length */
        for (int part = 0; part < 2; part++) {
            int shift = 0, done = 0;
            while (at < len && shift < 70) {
                uint8_t c = b[at++];
                v[part] |= (uint64_t)(c & 0x7f) << (shift < 64 ? shift : 63);
                shift += 7;
                if (!(c & 0x80)) {
                    done = 1;
                    break;
                }
            }
            if (!done) {
                if (shift < 70)
                    return 0; /* the prefix ends inside it */
                snprintf(why, sizeof why, "a number longer than 10 bytes");
                goto bad;
            }
            if (part == 0) {
                unsigned wt = (unsigned)(v[0] & 7);
                uint64_t field = v[0] >> 3;
                if (field == 0 || field > 536870911u) {
                    snprintf(why, sizeof why, "field number %llu", (unsigned long long)field);
                    goto bad;
                }
                int want_len = field <= 6 || field == 11;
                int want_varint = (field >= 7 && field <= 10) || field == 12 || field == 14;
                if ((wt != 0 && wt != 1 && wt != 2 && wt != 5) || (want_len && wt != 2) ||
                    (want_varint && wt != 0) || (field == 13 && wt != 0 && wt != 2)) {
                    snprintf(why, sizeof why, "field %llu has wire type %u",
                             (unsigned long long)field, wt);
                    goto bad;
                }
                if (wt == 1 || wt == 5) {
                    at += wt == 1 ? 8 : 4;
                    break;
                }
            } else if ((v[0] & 7) == 2) {
                if (v[1] > PROFILE_MAX_FILE_BYTES) {
                    snprintf(why, sizeof why, "a field of %llu bytes (truncated data)",
                             (unsigned long long)v[1]);
                    goto bad;
                }
                if (v[1] >= len - at)
                    return 0; /* runs past the prefix */
                at += (size_t)v[1];
            }
        }
    }
    return 0;
bad:
    return ms_error_set(err,
                        "%s is not a pprof profile (%s: %s at byte %zu; it starts with %02x %02x "
                        "%02x %02x)",
                        what, form, why, field_at, len > 0 ? b[0] : 0, len > 1 ? b[1] : 0,
                        len > 2 ? b[2] : 0, len > 3 ? b[3] : 0);
}

/* Refuses at once what cannot be a profile, from its first bytes (at most SNIFF_BYTES):
 * gzip data must inflate to a valid pprof start, anything else must be one. */
static int profile_sniff(const uint8_t *b, size_t len, const char *what, ms_error *err)
{
    if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        if (len >= 3 && b[2] != 8)
            return ms_error_set(err, "%s is not a pprof profile (gzip data of an unknown method)",
                                what);
        uint8_t *head = malloc(SNIFF_BYTES);
        if (!head)
            return ms_error_set(err, "reading %s: out of memory", what);
        z_stream z = {0};
        if (inflateInit2(&z, 15 + 16) != Z_OK) {
            free(head);
            return ms_error_set(err, "reading %s: cannot start zlib", what);
        }
        z.next_in = (Bytef *)b;
        z.avail_in = (uInt)(len > SNIFF_BYTES ? SNIFF_BYTES : len);
        z.next_out = head;
        z.avail_out = SNIFF_BYTES;
        inflate(&z, Z_SYNC_FLUSH); /* errors and truncation are the full inflate's to name */
        size_t got = SNIFF_BYTES - z.avail_out;
        inflateEnd(&z);
        int rc = sniff_raw(head, got, what, 1, err);
        free(head);
        return rc;
    }
    return sniff_raw(b, len, what, 0, err);
}

/* The fast path: a single gzip member whose trailer tells its size, inflated in one call by
 * libdeflate (about twice zlib's speed: it decodes the whole buffer at once, without zlib's
 * window copies). Returns 1 when *out holds the data, 0 when the caller must take zlib's
 * streaming path instead (several members, a trailer that lies, corrupt data: zlib then
 * finds the exact fault for the message), -1 when out of memory. */
static int gunzip_whole(const uint8_t *buf, size_t len, uint8_t **out, size_t *out_len)
{
    if (len < 18)
        return 0;
    uint32_t isize = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                     (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
    if (isize > PROFILE_MAX_FILE_BYTES || isize / DEFLATE_MAX_RATIO > len)
        return 0;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    uint8_t *dst = malloc(isize ? isize : 1);
    if (!d || !dst) {
        libdeflate_free_decompressor(d);
        free(dst);
        return -1;
    }
    size_t in_used = 0, out_used = 0;
    enum libdeflate_result r =
        libdeflate_gzip_decompress_ex(d, buf, len, dst, isize, &in_used, &out_used);
    libdeflate_free_decompressor(d);
    if (r != LIBDEFLATE_SUCCESS || in_used != len || out_used != isize) {
        free(dst);
        return 0;
    }
    *out = dst;
    *out_len = out_used;
    return 1;
}

/* Gunzips buf (one or more concatenated gzip members) into a new buffer of at most
 * PROFILE_MAX_FILE_BYTES. */
static int gunzip(const uint8_t *buf, size_t len, const char *what, uint8_t **out, size_t *out_len,
                  ms_error *err)
{
    /* The trailer's ISIZE (size mod 2^32) is only a hint: the file may lie. */
    size_t cap = 1 << 16;
    if (len >= 18) {
        uint32_t isize = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                         (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
        if (isize > cap && isize / DEFLATE_MAX_RATIO <= len)
            cap = (size_t)isize + 1; /* +1: a full buffer then means "more is coming" */
    }
    if (cap > PROFILE_MAX_FILE_BYTES)
        cap = PROFILE_MAX_FILE_BYTES;
    uint8_t *dst = malloc(cap);
    if (!dst)
        return ms_error_set(err, "reading %s: out of memory", what);

    z_stream z = {0};
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        free(dst);
        return ms_error_set(err, "reading %s: cannot start zlib", what);
    }
    z.next_in = (Bytef *)buf;
    z.avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    size_t in_left = len - z.avail_in, used = 0;
    int rc;
    for (;;) {
        if (used == cap) {
            if (cap >= PROFILE_MAX_FILE_BYTES) {
                rc = ms_error_set(err,
                                  "%s decompresses to more than %llu bytes, too large "
                                  "for a profile",
                                  what, (unsigned long long)PROFILE_MAX_FILE_BYTES);
                goto out;
            }
            size_t ncap = cap * 2 > PROFILE_MAX_FILE_BYTES ? PROFILE_MAX_FILE_BYTES : cap * 2;
            uint8_t *n = realloc(dst, ncap);
            if (!n) {
                rc = ms_error_set(err, "reading %s: out of memory", what);
                goto out;
            }
            dst = n;
            cap = ncap;
        }
        size_t room = cap - used > UINT32_MAX ? UINT32_MAX : cap - used;
        z.next_out = dst + used;
        z.avail_out = (uInt)room;
        int zr = inflate(&z, Z_NO_FLUSH);
        used += room - z.avail_out;
        if (z.avail_in == 0 && in_left) {
            size_t more = in_left > UINT32_MAX ? UINT32_MAX : in_left;
            z.avail_in = (uInt)more;
            in_left -= more;
        }
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0 && in_left == 0)
                break;
            /* Another gzip member follows (as `cat a.gz b.gz` makes), or trailing junk. */
            if (!is_gzip(z.next_in, z.avail_in)) {
                rc = ms_error_set(err,
                                  "%s is not a pprof profile: data follows its gzip "
                                  "stream at byte %zu",
                                  what, (size_t)(z.next_in - buf));
                goto out;
            }
            inflateReset(&z);
            continue;
        }
        if (zr == Z_OK || (zr == Z_BUF_ERROR && z.avail_out == 0))
            continue;
        if (zr == Z_BUF_ERROR) /* no progress possible: the input ended mid-stream */
            rc = ms_error_set(err, "%s is not a pprof profile: its gzip data is truncated", what);
        else if (zr == Z_MEM_ERROR)
            rc = ms_error_set(err, "reading %s: out of memory", what);
        else
            rc = ms_error_set(err, "%s is not a pprof profile: its gzip data is corrupt (%s)", what,
                              z.msg ? z.msg : "bad data");
        goto out;
    }
    inflateEnd(&z);
    *out = dst;
    *out_len = used;
    return 0;
out:
    inflateEnd(&z);
    free(dst);
    return rc;
}

int profile_read_named(const uint8_t *buf, size_t len, const char *what, struct profile **out,
                       ms_error *err)
{
    *out = NULL;
    if (len > PROFILE_MAX_FILE_BYTES)
        return ms_error_set(err, "%s is larger than %llu bytes, too large for a profile", what,
                            (unsigned long long)PROFILE_MAX_FILE_BYTES);
    if (profile_sniff(buf, len > SNIFF_BYTES ? SNIFF_BYTES : len, what, err))
        return -1;
    if (!is_gzip(buf, len))
        return profile_decode(buf, len, what, 0, out, err);
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int fast = gzip_members_inflate(buf, len, PROFILE_MAX_FILE_BYTES, &raw, &raw_len);
    if (fast == 0)
        fast = gunzip_whole(buf, len, &raw, &raw_len);
    if (fast < 0)
        return ms_error_set(err, "reading %s: out of memory", what);
    if (!fast && gunzip(buf, len, what, &raw, &raw_len, err))
        return -1;
    int rc = profile_decode(raw, raw_len, what, 1, out, err);
    free(raw);
    return rc;
}

int profile_read_mem(const uint8_t *buf, size_t len, struct profile **out, ms_error *err)
{
    if (!out)
        return ms_error_set(err, "profile_read_mem: nowhere to put the profile");
    if (!buf && len)
        return ms_error_set(err, "profile_read_mem: no buffer");
    return profile_read_named(buf ? buf : (const uint8_t *)"", len, "the input", out, err);
}

/* Files at least this big are read by one thread per CPU, each a slice: most of reading a
 * file that is in the page cache is faulting in and filling the buffer, which then happens
 * on every core. */
#define PARALLEL_READ_BYTES (8u << 20)

struct read_slice {
    int fd;
    uint8_t *dst;
    off_t at;
    size_t len, got;
    int err; /* errno of a failed read, else 0 */
};

static void *slice_read(void *arg)
{
    struct read_slice *sl = arg;
    while (sl->got < sl->len) {
        ssize_t r = pread(sl->fd, sl->dst + sl->got, sl->len - sl->got, sl->at + (off_t)sl->got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            sl->err = errno;
        if (r <= 0)
            return NULL; /* an error, or the file shrank: the caller reads it again in order */
        sl->got += (size_t)r;
    }
    return NULL;
}

/* Fills buf with the `size` bytes a regular file had at fstat, in parallel slices. Returns
 * `size` and leaves the file offset there; 0 (offset untouched) when the file changed size
 * meanwhile, so the caller reads it in order instead; -1 with errno on a read error. */
static ssize_t slices_read(int fd, uint8_t *buf, size_t size)
{
    struct read_slice slices[JOBS_MAX];
    size_t n = (size_t)jobs_cpus();
    for (size_t i = 0; i < n; i++) {
        size_t at = size / n * i;
        size_t end = i + 1 == n ? size : size / n * (i + 1);
        slices[i] =
            (struct read_slice){.fd = fd, .dst = buf + at, .at = (off_t)at, .len = end - at};
    }
    jobs_run(slice_read, slices, sizeof *slices, n);
    for (size_t i = 0; i < n; i++)
        if (slices[i].err) {
            errno = slices[i].err;
            return -1;
        }
    for (size_t i = 0; i < n; i++)
        if (slices[i].got != slices[i].len)
            return 0;
    if (lseek(fd, (off_t)size, SEEK_SET) != (off_t)size)
        return 0;
    return (ssize_t)size;
}

/* Reads all of fd, up to PROFILE_MAX_FILE_BYTES. */
static int read_all(int fd, const char *what, uint8_t **out, size_t *out_len, ms_error *err)
{
    struct stat st;
    size_t cap = 1 << 16;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((unsigned long long)st.st_size > PROFILE_MAX_FILE_BYTES)
            return ms_error_set(err, "%s is larger than %llu bytes, too large for a profile", what,
                                (unsigned long long)PROFILE_MAX_FILE_BYTES);
        cap = (size_t)st.st_size + 1; /* +1 so that reading to EOF needs no growth */
        /* Sniff the start first: a big file of zeros is refused before it is read. */
        uint8_t head[4096];
        ssize_t h = pread(fd, head, sizeof head, 0);
        if (h > 0 && profile_sniff(head, (size_t)h, what, err))
            return -1;
    }
    uint8_t *buf = malloc(cap);
    if (!buf)
        return ms_error_set(err, "reading %s: out of memory", what);
    size_t len = 0;
    int sniffed = 0;
    if (cap > PARALLEL_READ_BYTES && jobs_cpus() > 1) {
        ssize_t r = slices_read(fd, buf, cap - 1);
        if (r < 0) {
            int e = errno;
            free(buf);
            return ms_error_errno(err, e, "reading %s", what);
        }
        len = (size_t)r; /* then on to the end, in case the file grew */
    }
    for (;;) {
        if (len == cap) {
            if (cap > PROFILE_MAX_FILE_BYTES) {
                free(buf);
                return ms_error_set(err,
                                    "%s is larger than %llu bytes, too large for a "
                                    "profile",
                                    what, (unsigned long long)PROFILE_MAX_FILE_BYTES);
            }
            uint8_t *n = realloc(buf, cap * 2);
            if (!n) {
                free(buf);
                return ms_error_set(err, "reading %s: out of memory", what);
            }
            buf = n;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            return ms_error_errno(err, e, "reading %s", what);
        }
        if (r == 0)
            break;
        len += (size_t)r;
        /* A stream (a device, a FIFO, a pipe) is sniffed once its first bytes are in, so
         * /dev/zero is refused at once instead of read to the size limit. */
        if (!sniffed && len >= SNIFF_BYTES) {
            sniffed = 1;
            if (profile_sniff(buf, SNIFF_BYTES, what, err)) {
                free(buf);
                return -1;
            }
        }
    }
    *out = buf;
    *out_len = len;
    return 0;
}

int profile_read(const char *path, struct profile **out, ms_error *err)
{
    if (!out)
        return ms_error_set(err, "profile_read: nowhere to put the profile");
    *out = NULL;
    if (!path || !*path)
        return ms_error_set(err, "no profile file given");
    int from_stdin = strcmp(path, "-") == 0;
    const char *what = from_stdin ? "standard input" : path;
    int fd = from_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ms_error_errno(err, errno, "cannot open %s", path);
    struct stat st;
    if (!from_stdin && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return ms_error_set(err, "%s is a directory, not a profile", path);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_all(fd, what, &buf, &len, err);
    if (!from_stdin)
        close(fd);
    if (rc)
        return -1;
    rc = profile_read_named(buf, len, what, out, err);
    free(buf);
    return rc;
}
