/*
 * profile_internal.h - what the builder, the writer and the reader of proto/ share and nobody
 * else may use: the builder's dedup tables and capacities, the string ownership rule, and the
 * UTF-8 repair every string goes through.
 *
 * String ownership: every byte of every string lives in a few large blocks, never in one
 * allocation per string. A profile that was read keeps them all in ONE block that starts with
 * the empty string, so strings[0] is that block and profile_free() frees it. A built profile
 * (intern != NULL) keeps a list of blocks in the intern tables, which free them all.
 */
#ifndef MEMSNAP_PROFILE_INTERNAL_H
#define MEMSNAP_PROFILE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "profile.h"

/* An empty hash slot; also the builder's "failed" return value. */
#define PROFILE_NO_INDEX UINT32_MAX

struct profile_intern {
    /* Open-addressing tables of indexes (PROFILE_NO_INDEX = empty), sized to a power of two
     * and kept at most half full. */
    uint32_t *str_slots;
    size_t str_mask;
    uint32_t *fn_slots;
    size_t fn_mask;
    uint32_t *loc_slots;
    size_t loc_mask;

    uint64_t *str_hash; /* hash of strings[i], parallel to strings (cap_strings entries) */
    uint32_t *str_len;  /* strlen(strings[i]) */

    /* String bytes: blocks[] own the memory; the last one is being filled. */
    char **blocks;
    size_t n_blocks, cap_blocks;
    size_t block_used, block_size;

    /* Allocated entries of each array of struct profile (values: cap_samples rows). */
    size_t cap_strings, cap_sample_types, cap_functions, cap_lines, cap_locations;
    size_t cap_stack_locs, cap_samples, cap_timeline, cap_comments, cap_processes;
};

/* Makes room for `need` entries of `elem` bytes in *arr (capacity *cap, in entries),
 * doubling so that n appends cost O(n). Returns 0, or -1 with errno ENOMEM and nothing
 * changed. */
int profile_array_reserve(void **arr, size_t *cap, size_t need, size_t elem);

/* Length of s[0..len) once every invalid UTF-8 sequence and every NUL byte is replaced by
 * U+FFFD (3 bytes). Equals len exactly when s is already clean. */
size_t utf8_repaired_len(const uint8_t *s, size_t len);

/* Writes the repaired form of s[0..len) (utf8_repaired_len(s, len) bytes, no terminator)
 * to dst. */
void utf8_repair(const uint8_t *s, size_t len, char *dst);

/* Decodes and validates the raw (already gunzipped) Profile message buf[0..len); `what`
 * names the input in errors ("leak.pb"), `gzipped` says byte offsets are of decompressed
 * data. On success *out is a profile the caller frees; on failure *out is NULL. */
int profile_decode(const uint8_t *buf, size_t len, const char *what, int gzipped,
                   struct profile **out, ms_error *err);

/* How profile_decode_parts cuts the samples into parts decoded by threads of their own: at
 * most max_parts (capped at 8) parts of at least min_bytes of Sample fields each, starting at
 * one of the marks taken every mark_every samples. The profile and any error are the same
 * whatever these are; profile_decode uses one part per CPU (jobs_cpus) and the defaults below,
 * tests pin them to compare. */
struct decode_parts {
    size_t max_parts;
    size_t min_bytes;
    size_t mark_every;
};

#define DECODE_PART_MIN_BYTES (1u << 20)
#define DECODE_MARK_EVERY     4096 /* a few hundred marks for a million samples */

int profile_decode_parts(const uint8_t *buf, size_t len, const char *what, int gzipped,
                         const struct decode_parts *parts, struct profile **out, ms_error *err);

/* --- memsnap's metadata and timeline as comments (profile_comments.c) --- */

#define MEMSNAP_COMMENT_PREFIX "memsnap."

/* The comment texts that carry p->meta and p->timeline, in the order they are written. */
struct comment_texts {
    char **texts; /* each malloc'd, NUL-terminated */
    size_t n;
};

/* Formats p's metadata (when not all zero) and timeline as comments. 0, or -1 on ENOMEM
 * (out is then empty). */
int comment_texts_format(const struct profile *p, struct comment_texts *out);
void comment_texts_free(struct comment_texts *t);

/* The reader's side: parses one memsnap comment into p->meta / p->timeline, following the
 * rules of profile.h. String values become string indexes: an equal entry of the table, else
 * a new entry pointing into the comment itself (its bytes live in the table's block) taken
 * from the room reserved in p->strings (*string_room slots; none left: the key is ignored).
 * *cap_timeline is p->timeline's capacity. Returns -1 on ENOMEM only. */
int comment_parse(struct profile *p, const char *text, size_t *string_room, size_t *cap_timeline,
                  size_t *cap_processes);

/* --- gzip output and input (profile_gzip.c) --- */

/* Fast deflate: our files are long runs of small varints and compress well at level 1,
 * several times faster than the default level 6 (scripts/bench.d/profile.sh measures it). */
#define GZIP_LEVEL       1
#define GZIP_BLOCK_BYTES (1u << 20)

/* memsnap's gzip files are a series of gzip members of at most GZIP_BLOCK_BYTES of input
 * each (RFC 1952 allows any number; every gunzip reads them as one stream), compressed
 * independently, each carrying its own total size in an extra-field subfield "MS" (4 bytes,
 * little-endian), so a reader can find every member without inflating anything and inflate
 * them all at once, as BGZF does. */
#define GZIP_MEMBER_HEADER_BYTES  20 /* 10 + XLEN (2) + "MS", LEN (2), size (4) */
#define GZIP_MEMBER_TRAILER_BYTES 8

/* One gzip stream being written; zero-initialise it before the first gzip_stream_put. */
struct gzip_stream {
    int started; /* a member was written */
};

/* How many blocks to compress at once: jobs_cpus(). */
int gzip_stream_threads(void);

/* Compresses in[0..len) (at most gzip_stream_threads() * GZIP_BLOCK_BYTES bytes), as the next
 * members of the stream, one thread per block, and passes the compressed bytes in order to
 * emit(), which returns 0 or -1. With last != 0 the stream ends (len may be 0; a stream that
 * had no member yet gets an empty one). Returns 0, or -1 when compressing (ENOMEM) or emit()
 * failed. */
int gzip_stream_put(struct gzip_stream *g, const uint8_t *in, size_t len, int last,
                    int (*emit)(void *ctx, const uint8_t *bytes, size_t n), void *ctx);

/* Inflates buf[0..len) when it is a series of members as memsnap writes them (every one
 * with its "MS" size, the sizes tiling the input exactly), one thread per CPU. Returns 1 with
 * *out (malloc'd) and *out_len set; 0 when the input is anything else or any member fails
 * to inflate to its stated size and CRC (the caller then takes its general path, which
 * names the fault); -1 on ENOMEM. */
int gzip_members_inflate(const uint8_t *buf, size_t len, size_t max_out, uint8_t **out,
                         size_t *out_len);

/* profile_read_mem() with the input's name for error messages. */
int profile_read_named(const uint8_t *buf, size_t len, const char *what, struct profile **out,
                       ms_error *err);

#endif
