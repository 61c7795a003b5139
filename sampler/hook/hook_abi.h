/*
 * hook_abi.h - the contract between memsnap and libmemsnap_hook.so inside the target.
 *
 * Included by both sides; plain fixed-width types only, little-endian x86_64.
 *
 * Life of a session:
 *   1. memsnap writes a struct mshook_config into the target's memory and calls
 *      memsnap_hook_start(cfg) in a hijacked thread (see sampler/inject.c). The function
 *      copies the config, creates the region's memfd, starts the hook's control thread and
 *      returns the memfd's descriptor number (>= 0) or a negative errno (-EBUSY: another
 *      session is live). It never takes the GIL, never blocks, and leaves the thread's errno
 *      as it found it. Since ABI 3 the control thread, not the hijacked one, sizes, seals and
 *      maps the region and writes its header, state (STARTING) last with release order:
 *      memsnap waits for a non-zero state before mapping (sampler/hook_ring_wait.h); a
 *      descriptor that goes away before that means the region could not be made. (With
 *      MSHOOK_F_SYNC_INSTALL the region is complete when the function returns.)
 *   2. memsnap opens /proc/PID/fd/N, maps the region, checks magic/abi/sizes, and sets
 *      `mapped`; the control thread then closes its descriptor (so the target keeps no fd).
 *   3. The control thread takes the GIL (PyGILState_Ensure), wraps the allocator domains
 *      named in config.domains with PyMem_SetAllocator, and sets state = RECORDING.
 *   4. Allocations go through the wrappers; sampled ones append records to the ring.
 *      memsnap keeps heartbeat_ns fresh (CLOCK_MONOTONIC) and drains the ring.
 *   5. memsnap sets stop_request, or its heartbeat goes stale for heartbeat_timeout_ms
 *      (memsnap died): the control thread takes the GIL, restores the original allocators if
 *      ours are still on top (else leaves ours as pass-through), sets state = STOPPED after the
 *      last record is published, and releases its memory. The library stays loaded; a later
 *      session calls memsnap_hook_start again.
 *
 * Trust: the target may be hostile while memsnap runs as root. memsnap treats every byte of
 * the region as untrusted (ring positions, record lengths and types, frame counts): see
 * sampler/ring_reader.c. The hook trusts its config (memsnap is the one attaching).
 *
 * Stack slots (ABI 3): an ALLOC record names its stack by a slot number, and the stack itself
 * travels once, in a STACK record that (re)defines the slot, the first time it is seen and
 * again whenever the hook's slot held another stack in between. Recording every allocation
 * (rate 1) sends each stack's frames once instead of millions of times.
 *
 * Code identity (ABI 2): the hook names code objects itself (MSHOOK_REC_CODE before the
 * first ALLOC whose stack holds one, MSHOOK_REC_CODE_GONE when the allocator frees it), and
 * memsnap reads no code object from the target's memory while recording.
 *
 * The region: header_bytes of header, then ring_bytes of ring, then table_bytes that only the
 * hook uses (its stack slot table, kept here so that memsnap can leave it out of the target's
 * RSS as it does the ring); memsnap never reads the table.
 *
 * The ring: ring_bytes (a power of two) of records after header_bytes. The hook is the only
 * producer (a try-lock inside the hook serialises producers; a contended event is dropped and
 * counted, never waited for). ring_head and ring_tail are monotonic byte counts; the
 * producer publishes ring_head with release order after writing records (after every record,
 * or in exact mode every kilobyte and at every tick, so that the line memsnap polls does not
 * move between processors at every record), the consumer publishes ring_tail after reading.
 * ring_written, on a line of its own that memsnap reads only once the target is dead, is the
 * head after every complete record: the records the dead target wrote but never published. A record
 * never wraps: when it does not fit before the end of the ring, the producer writes an
 * MSHOOK_REC_PAD record covering the rest and starts at offset 0. When the free space is too small
 * the event is dropped and counted.
 *
 * Short records (ABI 4): an ALLOC whose size and slot fit takes 16 bytes, a FREE whose address
 * fits takes 8, instead of 32 and 16. Recording every allocation moves tens of millions of
 * records a second through the ring, and its bytes, not the records' number, are what the
 * target pays for (each ring line written is a line of its cache lost). A record's first byte
 * is its type in every record (a long record's type is a little-endian uint32_t below 256);
 * a short record's length is implied by its type, a long record's is in its header.
 */
#ifndef MEMSNAP_HOOK_ABI_H
#define MEMSNAP_HOOK_ABI_H

#include <stdint.h>

#define MSHOOK_MAGIC              0x4b4f4f48504e534dull /* "MSNPHOOK" */
#define MSHOOK_ABI                5
#define MSHOOK_START_SYMBOL       "memsnap_hook_start"
#define MSHOOK_MEMFD_NAME         "memsnap-ring"
#define MSHOOK_LIB_MEMFD_NAME     "libmemsnap_hook.so"
#define MSHOOK_MAX_FRAMES         128
#define MSHOOK_DEFAULT_RING_BYTES (4u << 20)
#define MSHOOK_STACK_SLOTS_MIN    64u
#define MSHOOK_STACK_SLOTS_MAX    (1u << 20)

/* config.domains */
#define MSHOOK_DOMAIN_MEM 1u
#define MSHOOK_DOMAIN_OBJ 2u

/* config.flags */
#define MSHOOK_F_SYNC_INSTALL                                                                      \
    1u /* the caller of memsnap_hook_start holds the GIL (memsnap run                              \
        * stops the main thread at Py_RunMain): wrap the allocators                                \
        * before returning instead of from the control thread */

#define MSHOOK_F_WAIT_WHEN_FULL                                                                    \
    2u /* memsnap run's exact mode: when the ring is full, the                                     \
        * allocating thread waits (sleeping 20 us at a time) for                                   \
        * memsnap to drain instead of dropping the event, while the                                \
        * heartbeat is fresh and for at most 2 s per record; never                                 \
        * used by attach, whose targets must not be slowed */

/* shared.state */
enum mshook_state {
    MSHOOK_STATE_STARTING = 1, /* region exists, allocators not wrapped yet */
    MSHOOK_STATE_RECORDING = 2,
    MSHOOK_STATE_STOPPING = 3,
    MSHOOK_STATE_STOPPED = 4, /* final: no more records; the region may be unmapped */
    MSHOOK_STATE_FAILED = 5,  /* final: see shared.error */
};

/* Written by memsnap into the target; read once by memsnap_hook_start. */
struct mshook_config {
    uint64_t magic;
    uint32_t abi;
    uint32_t size;       /* sizeof(struct mshook_config) */
    uint64_t rate;       /* mean bytes between samples (Poisson); 1 = every allocation */
    uint64_t ring_bytes; /* power of two, >= 64 KiB */
    uint32_t domains;    /* MSHOOK_DOMAIN_* */
    uint32_t heartbeat_timeout_ms;
    uint32_t py_version_hex;
    uint32_t max_frames; /* <= MSHOOK_MAX_FRAMES */
    uint64_t seed;       /* for the sampling PRNG */
    int32_t memsnap_pid; /* the attaching memsnap, named in -EBUSY diagnostics */
    uint32_t flags;      /* MSHOOK_F_* */

    /* In-process stack capture for this version (from struct py_offsets). */
    uint32_t frame_model;         /* enum py_frame_model */
    uint32_t lasti_model;         /* enum py_lasti_model: int32 field (1, 2) or pointer (3, 4) */
    int32_t tstate_frame;         /* tstate.frame | tstate.cframe | tstate.current_frame */
    int32_t cframe_current_frame; /* PY_FRAME_CFRAME only */
    int32_t frame_back;           /* f_back | previous */
    int32_t frame_code;           /* f_code | f_executable */
    int32_t frame_lasti;          /* f_lasti | prev_instr | instr_ptr */
    int32_t frame_owner;          /* -1 when the version has no owner field */
    int32_t owner_cstack;         /* frames whose owner is >= this are skipped (C-stack shims,
                                   * 3.14 interpreter entry frames), -1 for none */
    int32_t object_type;          /* ob_type, to check f_executable is a code object */

    /* In-process reading of code objects for MSHOOK_REC_CODE (ABI 2; from struct py_offsets).
     * Every offset is >= 0 and < 4096. */
    int32_t code_name;            /* co_qualname (3.11+) or co_name: a str */
    int32_t code_filename;        /* co_filename: a str */
    int32_t code_firstlineno;     /* int */
    int32_t code_linetable;       /* co_linetable (3.10+) or co_lnotab: a bytes */
    int32_t unicode_length;       /* Py_ssize_t length (characters) */
    int32_t unicode_state;        /* the state bit-field byte: kind bits 2-4, compact 5, ascii 6 */
    int32_t unicode_ascii_size;   /* characters of a compact ASCII str start here */
    int32_t unicode_compact_size; /* characters of a compact non-ASCII str start here */
    int32_t unicode_data_ptr;     /* non-compact str: pointer to the characters */
    int32_t bytes_size;           /* ob_size of a bytes object */
    int32_t bytes_sval;           /* the bytes' characters start here */
    uint32_t code_tag_mask;       /* ABI 5: tag bits to clear from frame_code (3.14 _PyStackRef:
                                   * Py_TAG_BITS = 3), 0 before 3.14; at most 7 */

    /* ABI 3: slots of the hook's stack table, a power of two within
     * [MSHOOK_STACK_SLOTS_MIN, MSHOOK_STACK_SLOTS_MAX]; ALLOC and STACK records name slots
     * below it. */
    uint32_t stack_slots;
    uint32_t _pad3;
};

/* At offset 0 of the shared region. */
struct mshook_shared {
    uint64_t magic;
    uint32_t abi;
    uint32_t header_bytes; /* the ring starts here; a multiple of 4096 */
    uint64_t ring_bytes;
    uint64_t table_bytes; /* after the ring: the hook's private stack table, a multiple of 4096 */
    int32_t hook_pid;     /* getpid() in the target when the session started */
    int32_t memsnap_pid;
    struct mshook_config config;

    uint32_t state;         /* enum mshook_state; hook writes (release) */
    uint32_t stop_request;  /* memsnap writes 1 */
    uint32_t mapped;        /* memsnap writes 1 once it has mapped the region */
    uint32_t frees_via_raw; /* hook: 1 when sampled blocks are routed to the raw domain, whose
                               free alone is wrapped (hook/hook_alloc.h); 0 on older hooks */
    uint64_t heartbeat_ns;  /* memsnap writes CLOCK_MONOTONIC at least every 250 ms */
    uint64_t start_ns;      /* hook: CLOCK_MONOTONIC when recording began */
    uint64_t stop_ns;       /* hook: CLOCK_MONOTONIC when recording ended */

    /* Counters, written by the hook (relaxed). */
    uint64_t alloc_count; /* every allocation through the wrappers, sampled or not */
    uint64_t alloc_bytes;
    uint64_t free_count; /* 0 since ABI 3: frees are not counted (a store per free) */
    uint64_t sampled_allocs;
    uint64_t sampled_frees;
    uint64_t live_sampled_bytes; /* bytes of sampled blocks still live (exact heap at rate 1) */
    uint64_t dropped_events;     /* ring full, producer contention, or live table full */
    uint64_t dropped_bytes;      /* size of dropped sampled allocations */
    uint64_t truncated_stacks;   /* stacks cut at max_frames */

    uint64_t ring_head; /* bytes ever written; hook publishes with release */
    uint64_t ring_tail; /* bytes ever consumed; memsnap publishes with release */

    char error[256]; /* NUL-terminated sentence when state == FAILED */

    /* ABI 3: bytes ever written, after every record (relaxed); for a dead target's last
     * records. */
    uint64_t ring_written __attribute__((aligned(64)));

    /* Hook safety (0 on older hooks; see docs/hook-safety.md). */
    uint64_t invalid_stacks __attribute__((aligned(64))); /* sampled allocations whose stack was
                               cut at an unprovable frame (MSHOOK_STACK_INVALID), or dropped
                               because it could not be walked safely */
    /* Where each domain's PyMemAllocatorEx lives in the target (0: not found), and the ctx and
     * malloc our wrapper put there: memsnap compares them while recording, and a difference
     * means the target replaced the allocator (PyMem_SetAllocator, tracemalloc.start/stop). */
    uint64_t alloc_table[3];
    uint64_t alloc_ctx[3];
    uint64_t alloc_malloc[3];
};

/* Records. Every record starts with this header; len is the whole record in bytes,
 * a multiple of 8, at least sizeof(struct mshook_rec). */
struct mshook_rec {
    uint32_t type; /* enum mshook_rec_type */
    uint32_t len;
};

enum mshook_rec_type {
    MSHOOK_REC_PAD = 1,         /* skip to the end of the ring */
    MSHOOK_REC_ALLOC = 2,       /* struct mshook_alloc: an allocation, its stack by slot */
    MSHOOK_REC_FREE = 3,        /* struct mshook_free: a sampled block was freed */
    MSHOOK_REC_CODE = 4,        /* struct mshook_code + its bytes: a code object's identity */
    MSHOOK_REC_CODE_GONE = 5,   /* struct mshook_code_gone: an announced code object was freed */
    MSHOOK_REC_STACK = 6,       /* struct mshook_stack + nframes struct mshook_frame */
    MSHOOK_REC_ALLOC_SHORT = 7, /* struct mshook_alloc_short: an ALLOC in 16 bytes */
    MSHOOK_REC_FREE_SHORT = 8,  /* uint64_t: a FREE in 8 bytes (see MSHOOK_FREE_SHORT_WORD) */
};

struct mshook_frame {
    uint64_t code;  /* PyCodeObject address in the target */
    uint64_t lasti; /* raw field: f_lasti (int, sign-extended) or instruction pointer */
};

/* An allocation. Its stack is the one the last STACK record for `stack` defined (always
 * earlier in the ring); a slot never defined means an unknown stack. */
struct mshook_alloc {
    struct mshook_rec hdr;
    uint64_t addr;
    uint64_t size;  /* requested size */
    uint32_t stack; /* slot < config.stack_slots */
    uint32_t flags; /* MSHOOK_ALLOC_REALLOC */
};

#define MSHOOK_ALLOC_REALLOC 2u /* the block came from realloc */

/* Defines (or redefines) slot `slot`: the frames of a stack, innermost first, and the thread
 * that ran it. Every code object named in the frames was announced by a CODE record before
 * this record, and none has been freed since. Later ALLOC records naming the slot mean this
 * stack until the next STACK record for the same slot. */
struct mshook_stack {
    struct mshook_rec hdr;
    uint64_t tstate;  /* PyThreadState * of the thread (thread label) */
    uint32_t slot;    /* < config.stack_slots */
    uint32_t nframes; /* frames that follow, <= MSHOOK_MAX_FRAMES */
    uint32_t flags;   /* MSHOOK_STACK_TRUNCATED, MSHOOK_STACK_INVALID */
    uint32_t _pad;
    /* struct mshook_frame frames[nframes]; */
};

#define MSHOOK_STACK_TRUNCATED 1u /* the stack had more than max_frames frames */
#define MSHOOK_STACK_INVALID                                                                       \
    2u /* the walk stopped at a frame whose code the hook could not prove readable (or at a        \
        * frame chain that loops): the frames kept are the ones below it */

struct mshook_free {
    struct mshook_rec hdr;
    uint64_t addr;
};

/* An ALLOC whose size and slot fit in 24 bits each (flags in 8): word is
 * MSHOOK_REC_ALLOC_SHORT | flags << 8 | slot << 16 | size << 40. */
struct mshook_alloc_short {
    uint64_t word;
    uint64_t addr;
};

#define MSHOOK_SHORT_SLOT_MAX 0xffffffu
#define MSHOOK_SHORT_SIZE_MAX 0xffffffu
/* A FREE of an address below 2^56 (every user-space address of x86_64, five-level paging
 * included): the record is this one word. */
#define MSHOOK_FREE_SHORT_ADDR_MAX   0x00ffffffffffffffull
#define MSHOOK_FREE_SHORT_WORD(addr) ((uint64_t)MSHOOK_REC_FREE_SHORT | (uint64_t)(addr) << 8)

/* A code object's identity, written the first time a recorded stack references it (always
 * before that ALLOC record), so memsnap names frames without reading the target's memory,
 * even for code objects that die before the ring is drained (a module's top-level code dies
 * as soon as its import ends). After the bytes that follow the struct, in this order:
 *   name_len * name_kind bytes     co_qualname (3.11+) or co_name, raw PEP 393 characters
 *   filename_len * filename_kind   co_filename, the same way
 *   table_len bytes                co_linetable / co_lnotab, raw
 * then zeros up to len (a multiple of 8): len == round_up_8(sizeof + those three sizes).
 * Kinds are 1, 2 or 4. Caps (bytes): name MSHOOK_CODE_NAME_MAX, filename
 * MSHOOK_CODE_FILENAME_MAX (longer strings are cut, whole characters, and flagged), table
 * MSHOOK_CODE_TABLE_MAX (a longer or unreadable table is left out, table_len 0, and flagged:
 * memsnap then uses firstlineno). An unreadable name or filename is sent empty (kind 1). The
 * announcement lasts until the matching MSHOOK_REC_CODE_GONE; a second CODE for an address
 * replaces the first. */
struct mshook_code {
    struct mshook_rec hdr;
    uint64_t code;       /* PyCodeObject address, as in struct mshook_frame */
    int32_t firstlineno; /* co_firstlineno */
    uint32_t flags;      /* MSHOOK_CODE_* */
    uint32_t name_len;   /* characters */
    uint32_t filename_len;
    uint32_t table_len; /* bytes */
    uint8_t name_kind;  /* 1, 2, 4 */
    uint8_t filename_kind;
    uint16_t _pad;
    /* uint8_t bytes[]; */
};

#define MSHOOK_CODE_NAME_MAX     1024u
#define MSHOOK_CODE_FILENAME_MAX 4096u
#define MSHOOK_CODE_TABLE_MAX    65536u

#define MSHOOK_CODE_NAME_CUT     1u /* the name was longer than MSHOOK_CODE_NAME_MAX bytes */
#define MSHOOK_CODE_FILENAME_CUT 2u
#define MSHOOK_CODE_NO_TABLE     4u /* the line table is missing: too long or unreadable */

/* The code object at `code` was freed: frames naming that address from now on are of a new
 * code object (which gets its own MSHOOK_REC_CODE first). */
struct mshook_code_gone {
    struct mshook_rec hdr;
    uint64_t code;
};

/* The start function's signature. */
typedef int (*mshook_start_fn)(const struct mshook_config *cfg);

#endif
