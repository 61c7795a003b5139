/*
 * ring_reader.c - validating consumer of the hook's ring; see ring_reader.h.
 */
#include "ring_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RING_MIN_BYTES   (64ull << 10)
#define RING_MAX_BYTES   (1ull << 30)
#define HEADER_MAX_BYTES (1u << 20)
#define TABLE_MAX_BYTES  (64u << 20) /* the hook's stack table after the ring: never read */
/* Publish the tail at least this often during a long drain, so the hook gets room back. */
#define TAIL_PUBLISH_BYTES (64u << 10)
/* How far ahead of the record being read the drain prefetches. */
#define RING_PREFETCH_BYTES 512u

static void reader_reset(struct ring_reader *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* Copies n bytes out of the shared mapping. The fence keeps the compiler from reading a field
 * from the mapping again later instead of from the copy (the target may rewrite it between). */
static void shared_copy(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    atomic_signal_fence(memory_order_seq_cst);
}

static int header_check(struct ring_reader *r, void *region, size_t bytes, ms_error *err)
{
    struct mshook_shared h;
    if (bytes < sizeof h)
        return ms_error_set(err, "hook region is %zu bytes, smaller than its header", bytes);
    shared_copy(&h, region, sizeof h);
    if (h.magic != MSHOOK_MAGIC)
        return ms_error_set(err, "hook region has a bad magic number (not a memsnap ring)");
    if (h.abi != MSHOOK_ABI)
        return ms_error_set(err, "hook region speaks ABI %u, this memsnap speaks %u", h.abi,
                            MSHOOK_ABI);
    if (h.header_bytes < sizeof h || h.header_bytes % 4096 != 0 ||
        h.header_bytes > HEADER_MAX_BYTES)
        return ms_error_set(err, "hook region header size %u is invalid", h.header_bytes);
    if (h.ring_bytes < RING_MIN_BYTES || h.ring_bytes > RING_MAX_BYTES ||
        (h.ring_bytes & (h.ring_bytes - 1)) != 0)
        return ms_error_set(err, "hook ring size %llu is not a power of two in [64 KiB, 1 GiB]",
                            (unsigned long long)h.ring_bytes);
    if ((uint64_t)h.header_bytes + h.ring_bytes > bytes)
        return ms_error_set(err, "hook region is %zu bytes, its header claims %llu", bytes,
                            (unsigned long long)(h.header_bytes + h.ring_bytes));
    if (h.ring_tail % 8 != 0)
        return ms_error_set(err, "hook ring tail %llu is not 8-byte aligned",
                            (unsigned long long)h.ring_tail);
    uint32_t slots = h.config.stack_slots;
    if (slots < MSHOOK_STACK_SLOTS_MIN || slots > MSHOOK_STACK_SLOTS_MAX ||
        (slots & (slots - 1)) != 0)
        return ms_error_set(err,
                            "hook region claims %u stack slots, not a power of two in "
                            "[%u, %u]",
                            slots, MSHOOK_STACK_SLOTS_MIN, MSHOOK_STACK_SLOTS_MAX);
    r->map = region;
    r->map_bytes = (size_t)(h.header_bytes + h.ring_bytes);
    r->shared = region;
    r->ring = (const unsigned char *)region + h.header_bytes;
    r->ring_bytes = h.ring_bytes;
    r->stack_slots = slots;
    r->tail = h.ring_tail;
    return 0;
}

int ring_reader_attach(struct ring_reader *r, void *region, size_t bytes, ms_error *err)
{
    reader_reset(r);
    if (!region)
        return ms_error_set(err, "no hook region to read");
    if (header_check(r, region, bytes, err) != 0) {
        reader_reset(r);
        return -1;
    }
    return 0;
}

/* /proc/PID/fd/N must name the hook's memfd: refuse to open anything else (a FIFO, a device)
 * that a hostile target put at that number. */
static int fd_is_ring(pid_t pid, int remote_fd, ms_error *err)
{
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, remote_fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return ms_error_errno(err, errno, "reading %s", path);
    target[n] = 0;
    static const char want[] = "/memfd:" MSHOOK_MEMFD_NAME;
    if (strncmp(target, want, sizeof want - 1) != 0)
        return ms_error_set(err, "%s is not the hook's ring (it is %s)", path, target);
    return 0;
}

int ring_reader_open(pid_t pid, int remote_fd, struct ring_reader *r, ms_error *err)
{
    reader_reset(r);
    if (remote_fd < 0)
        return ms_error_set(err, "hook returned no ring descriptor (%d)", remote_fd);
    if (fd_is_ring(pid, remote_fd, err) != 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, remote_fd);
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ms_error_errno(err, errno, "opening the hook's ring %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        ms_error_errno(err, errno, "fstat of %s", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)(4096 + RING_MIN_BYTES) ||
        st.st_size > (off_t)(HEADER_MAX_BYTES + RING_MAX_BYTES + TABLE_MAX_BYTES)) {
        ms_error_set(err, "%s is not a plausible hook ring (%lld bytes)", path,
                     (long long)st.st_size);
        close(fd);
        return -1;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        ms_error_set(err, "%s is not sealed against shrinking; refusing to map it", path);
        close(fd);
        return -1;
    }
    size_t bytes = (size_t)st.st_size;
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        ms_error_errno(err, errno, "mapping %s", path);
        close(fd);
        return -1;
    }
    if (header_check(r, map, bytes, err) != 0) {
        munmap(map, bytes);
        close(fd);
        reader_reset(r);
        return ms_error_prefix(err, "pid %d", (int)pid);
    }
    r->map_bytes = bytes; /* unmap everything we mapped */
    r->fd = fd;
    __atomic_store_n(&r->shared->mapped, 1, __ATOMIC_RELEASE);
    return 0;
}

static int corrupt(ms_error *err, const struct ring_reader *r, const char *what, uint64_t value)
{
    return ms_error_set(err, "hook ring is corrupt at byte %llu: %s (%llu)",
                        (unsigned long long)r->tail, what, (unsigned long long)value);
}

static void tail_publish(struct ring_reader *r)
{
    __atomic_store_n(&r->shared->ring_tail, r->tail, __ATOMIC_RELEASE);
}

static int kind_valid(uint8_t kind)
{
    return kind == 1 || kind == 2 || kind == 4;
}

/* Copies and checks a CODE record of len bytes at p into *out. */
static int code_decode(struct ring_reader *r, uint32_t len, const unsigned char *p,
                       struct ring_code *out, ms_error *err)
{
    struct mshook_code c;
    if (len < sizeof c)
        return corrupt(err, r, "CODE record shorter than its header", len);
    shared_copy(&c, p, sizeof c);
    if (!kind_valid(c.name_kind) || !kind_valid(c.filename_kind))
        return corrupt(err, r, "CODE record with an invalid character size",
                       kind_valid(c.name_kind) ? c.filename_kind : c.name_kind);
    uint64_t name_bytes = (uint64_t)c.name_len * c.name_kind;
    uint64_t filename_bytes = (uint64_t)c.filename_len * c.filename_kind;
    if (name_bytes > MSHOOK_CODE_NAME_MAX)
        return corrupt(err, r, "CODE record with too long a name", c.name_len);
    if (filename_bytes > MSHOOK_CODE_FILENAME_MAX)
        return corrupt(err, r, "CODE record with too long a file name", c.filename_len);
    if (c.table_len > MSHOOK_CODE_TABLE_MAX)
        return corrupt(err, r, "CODE record with too long a line table", c.table_len);
    if (c.flags &
        ~(uint32_t)(MSHOOK_CODE_NAME_CUT | MSHOOK_CODE_FILENAME_CUT | MSHOOK_CODE_NO_TABLE))
        return corrupt(err, r, "CODE record with unknown flags", c.flags);
    uint64_t body = sizeof c + name_bytes + filename_bytes + c.table_len;
    if (len != ((body + 7) & ~7ull))
        return corrupt(err, r, "CODE record length disagrees with its contents", len);
    out->code = c.code;
    out->firstlineno = c.firstlineno;
    out->flags = c.flags;
    out->name_len = c.name_len;
    out->filename_len = c.filename_len;
    out->table_len = c.table_len;
    out->name_kind = c.name_kind;
    out->filename_kind = c.filename_kind;
    p += sizeof c;
    shared_copy(out->name, p, (size_t)name_bytes);
    p += name_bytes;
    shared_copy(out->filename, p, (size_t)filename_bytes);
    p += filename_bytes;
    shared_copy(out->table, p, c.table_len);
    return 0;
}

/* Copies and checks the record of len bytes at ring offset off into ev; a CODE record's
 * contents go to *code, allocated on first use (NULL stays NULL on ENOMEM: -1). */
static int record_decode(struct ring_reader *r, uint32_t type, uint32_t len, uint64_t off,
                         struct ring_event *ev, struct ring_code **code, ms_error *err)
{
    const unsigned char *p = r->ring + off;
    memset(ev, 0, offsetof(struct ring_event, frames));
    if (type == MSHOOK_REC_FREE || type == MSHOOK_REC_CODE_GONE) {
        struct mshook_free f; /* struct mshook_code_gone has the same layout */
        if (len != sizeof f)
            return corrupt(err, r, "FREE or CODE_GONE record of the wrong length", len);
        shared_copy(&f, p, sizeof f);
        ev->type = type;
        ev->addr = f.addr;
        return 0;
    }
    if (type == MSHOOK_REC_CODE) {
        if (!*code && !(*code = malloc(sizeof **code)))
            return ms_error_errno(err, ENOMEM, "reading the hook's ring");
        if (code_decode(r, len, p, *code, err) != 0)
            return -1;
        ev->type = type;
        ev->addr = (*code)->code;
        ev->code = *code;
        return 0;
    }
    if (type == MSHOOK_REC_ALLOC) {
        struct mshook_alloc a;
        if (len != sizeof a)
            return corrupt(err, r, "ALLOC record of the wrong length", len);
        shared_copy(&a, p, sizeof a);
        if (a.stack >= r->stack_slots)
            return corrupt(err, r, "ALLOC record naming a stack slot out of range", a.stack);
        if (a.flags & ~(uint32_t)MSHOOK_ALLOC_REALLOC)
            return corrupt(err, r, "ALLOC record with unknown flags", a.flags);
        ev->type = type;
        ev->flags = a.flags;
        ev->addr = a.addr;
        ev->size = a.size;
        ev->slot = a.stack;
        return 0;
    }
    struct mshook_stack st;
    if (len < sizeof st)
        return corrupt(err, r, "STACK record shorter than its header", len);
    shared_copy(&st, p, sizeof st);
    if (st.slot >= r->stack_slots)
        return corrupt(err, r, "STACK record defining a slot out of range", st.slot);
    if (st.nframes > MSHOOK_MAX_FRAMES)
        return corrupt(err, r, "STACK record with too many frames", st.nframes);
    if (len != sizeof st + (uint64_t)st.nframes * sizeof(struct mshook_frame))
        return corrupt(err, r, "STACK record length disagrees with its frame count", len);
    if (st.flags & ~(uint32_t)(MSHOOK_STACK_TRUNCATED | MSHOOK_STACK_INVALID))
        return corrupt(err, r, "STACK record with unknown flags", st.flags);
    ev->type = type;
    ev->flags = st.flags;
    ev->slot = st.slot;
    ev->tstate = st.tstate;
    ev->nframes = st.nframes;
    shared_copy(ev->frames, p + sizeof st, (size_t)st.nframes * sizeof(struct mshook_frame));
    return 0;
}

/* Copies and checks the short ALLOC record at ring offset off (16 bytes are there) into ev. */
static int short_alloc_decode(struct ring_reader *r, uint64_t off, struct ring_event *ev,
                              ms_error *err)
{
    struct mshook_alloc_short a;
    shared_copy(&a, r->ring + off, sizeof a);
    uint32_t flags = (uint32_t)(a.word >> 8) & 0xff;
    uint32_t slot = (uint32_t)(a.word >> 16) & MSHOOK_SHORT_SLOT_MAX;
    if (slot >= r->stack_slots)
        return corrupt(err, r, "ALLOC record naming a stack slot out of range", slot);
    if (flags & ~(uint32_t)MSHOOK_ALLOC_REALLOC)
        return corrupt(err, r, "ALLOC record with unknown flags", flags);
    memset(ev, 0, offsetof(struct ring_event, frames));
    ev->type = MSHOOK_REC_ALLOC;
    ev->flags = flags;
    ev->addr = a.addr;
    ev->size = a.word >> 40;
    ev->slot = slot;
    return 0;
}

/* The long record (type and length in a header) at ring offset off: a PAD is consumed and
 * 1 returned; any other record is decoded into ev (its tail advanced) and 0 returned. On a
 * corrupt record *rc is set (-1, err filled) and 1 returned. */
static int long_record(struct ring_reader *r, uint64_t off, uint64_t to_end, uint64_t avail,
                       struct ring_event *ev, struct ring_code **code, int *rc, ms_error *err)
{
    struct mshook_rec hdr;
    shared_copy(&hdr, r->ring + off, sizeof hdr);
    if (hdr.len < sizeof hdr || hdr.len % 8 != 0 || hdr.len > to_end || hdr.len > avail) {
        *rc = corrupt(err, r, "record length out of bounds", hdr.len);
        return 1;
    }
    if (hdr.type == MSHOOK_REC_PAD) {
        if (hdr.len != to_end) {
            *rc = corrupt(err, r, "PAD record that does not reach the end of the ring", hdr.len);
            return 1;
        }
        r->tail += hdr.len;
        r->pads++;
        return 1;
    }
    if (hdr.type != MSHOOK_REC_ALLOC && hdr.type != MSHOOK_REC_FREE &&
        hdr.type != MSHOOK_REC_CODE && hdr.type != MSHOOK_REC_CODE_GONE &&
        hdr.type != MSHOOK_REC_STACK) {
        *rc = corrupt(err, r, "unknown record type", hdr.type);
        return 1;
    }
    if (record_decode(r, hdr.type, hdr.len, off, ev, code, err) != 0) {
        *rc = -1;
        return 1;
    }
    r->tail += hdr.len;
    return 0;
}

int ring_reader_drain(struct ring_reader *r,
                      int (*on_event)(void *ctx, const struct ring_event *ev), void *ctx,
                      ms_error *err)
{
    if (!r->shared)
        return ms_error_set(err, "hook ring is not open");
    uint64_t head = __atomic_load_n(&r->shared->ring_head, __ATOMIC_ACQUIRE);
    if (r->producer_gone) {
        /* Dead, so nothing is in flight: every byte up to ring_written is a whole record. A
         * value behind the published head is ignored; one too far ahead is caught below. */
        uint64_t written = __atomic_load_n(&r->shared->ring_written, __ATOMIC_ACQUIRE);
        if (written > head)
            head = written;
        if (head < r->tail) /* we already read past the published head: nothing new */
            head = r->tail;
    }
    if (head < r->tail)
        return corrupt(err, r, "head behind the tail", head);
    if (head - r->tail > r->ring_bytes)
        return corrupt(err, r, "head more than a ring ahead", head);
    if (head % 8 != 0)
        return corrupt(err, r, "head not 8-byte aligned", head);

    struct ring_event ev;
    struct ring_code *code = NULL; /* ~70 KiB: only when a CODE record comes by */
    int count = 0;
    uint64_t published = r->tail;
    int rc = 0;
    while (r->tail < head) {
        uint64_t off = r->tail & (r->ring_bytes - 1);
        uint64_t to_end = r->ring_bytes - off;
        uint64_t avail = head - r->tail;
        /* The lines ahead were written by the target's processor: ask for them early so the
         * transfers overlap (a hint only; the address stays inside the ring). */
        __builtin_prefetch(r->ring + ((off + RING_PREFETCH_BYTES) & (r->ring_bytes - 1)));
        uint64_t word;
        shared_copy(&word, r->ring + off, sizeof word); /* off is 8-aligned: 8 bytes fit */
        if ((word & 0xff) == MSHOOK_REC_FREE_SHORT) {
            memset(&ev, 0, offsetof(struct ring_event, frames));
            ev.type = MSHOOK_REC_FREE;
            ev.addr = word >> 8;
            r->tail += sizeof word;
        } else if ((word & 0xff) == MSHOOK_REC_ALLOC_SHORT) {
            if (sizeof(struct mshook_alloc_short) > to_end ||
                sizeof(struct mshook_alloc_short) > avail) {
                rc = corrupt(err, r, "short ALLOC record cut by the end of the ring or data",
                             word & 0xff);
                break;
            }
            if (short_alloc_decode(r, off, &ev, err) != 0) {
                rc = -1;
                break;
            }
            r->tail += sizeof(struct mshook_alloc_short);
        } else if (long_record(r, off, to_end, avail, &ev, &code, &rc, err)) {
            if (rc != 0)
                break;
            continue; /* a PAD */
        }
        r->events++;
        count++;
        if (on_event(ctx, &ev) != 0) {
            rc = ms_error_set(err, "the ring consumer stopped the drain");
            break;
        }
        if (r->tail - published >= TAIL_PUBLISH_BYTES) {
            tail_publish(r);
            published = r->tail;
        }
    }
    tail_publish(r);
    free(code);
    return rc != 0 ? -1 : count;
}

void ring_reader_producer_gone(struct ring_reader *r)
{
    r->producer_gone = 1;
}

void ring_reader_heartbeat(struct ring_reader *r)
{
    if (!r->shared)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    __atomic_store_n(&r->shared->heartbeat_ns, ns, __ATOMIC_RELEASE);
}

void ring_reader_request_stop(struct ring_reader *r)
{
    if (r->shared)
        __atomic_store_n(&r->shared->stop_request, 1, __ATOMIC_RELEASE);
}

uint32_t ring_reader_state(const struct ring_reader *r)
{
    if (!r->shared)
        return 0;
    return __atomic_load_n(&r->shared->state, __ATOMIC_ACQUIRE);
}

void ring_reader_counters(const struct ring_reader *r, struct mshook_shared *out)
{
    if (!r->shared) {
        memset(out, 0, sizeof *out);
        return;
    }
    shared_copy(out, r->shared, sizeof *out);
    out->error[sizeof out->error - 1] = 0;
}

void ring_reader_close(struct ring_reader *r)
{
    if (r->map && r->fd >= 0) {
        munmap(r->map, r->map_bytes);
        close(r->fd);
    }
    reader_reset(r);
}
