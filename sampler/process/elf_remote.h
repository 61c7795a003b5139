/*
 * elf_remote.h - ELF facts read from a process's own memory: where an object is loaded, its
 * unwind table (PT_GNU_EH_FRAME: .eh_frame_hdr and the .eh_frame it indexes) and its dynamic
 * symbol table (PT_DYNAMIC: DT_SYMTAB, DT_STRTAB, DT_VERSYM, counted through DT_GNU_HASH or
 * DT_HASH). All of these live in read-only PT_LOAD segments, so they are mapped.
 *
 * Why: what memsnap calls in the target (dlopen, ...) and what proves a thread is at a safe
 * point (unwind tables, libc's symbol names) must describe the object that is MAPPED, not
 * whatever file its path names today. When the mapped file cannot be opened and proven
 * identical (proc_maps_open: deleted by an upgrade, replaced, a chroot's path, another mount
 * namespace), the same facts come from the target's memory, which is the mapped object by
 * definition. elf_remote_open_image is the one funnel every symbol lookup on a target's
 * object goes through.
 *
 * Everything read is untrusted: sizes and counts are bounded, every address must fall inside
 * the object's loaded segments, and anything odd fails with one sentence.
 */
#ifndef MEMSNAP_ELF_REMOTE_H
#define MEMSNAP_ELF_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "elf_symbols.h"
#include "error.h"
#include "proc_maps.h"

/* Reads len bytes at addr of the process; 0 or -1. */
struct elf_remote_reader {
    int (*read)(void *ctx, uint64_t addr, void *out, size_t len);
    void *ctx;
};

/* A reader over process_vm_readv of pid (ctx points at a pid_t that must outlive it). */
struct elf_remote_reader elf_remote_process_reader(const pid_t *pid);

struct elf_remote_info {
    uint64_t base;             /* runtime address of the ELF header */
    uint64_t bias;             /* runtime address = link-time address + bias */
    int type;                  /* e_type */
    uint64_t entry;            /* e_entry (link-time) */
    uint64_t first_load_vaddr; /* p_vaddr of the first PT_LOAD */
    uint64_t lo, hi;           /* runtime extent of the PT_LOAD segments */
    uint64_t eh_frame_hdr;     /* runtime address of PT_GNU_EH_FRAME, 0 if none */
    uint64_t eh_frame_hdr_size;
    uint64_t dynamic; /* runtime address of PT_DYNAMIC, 0 if none */
    uint64_t dynamic_size;
};

/* Reads the ELF header and program headers of the object whose header is loaded at base.
 * Returns 0, or -1 with err (not an x86_64 ELF, unreadable, malformed). */
int elf_remote_headers(const struct elf_remote_reader *r, uint64_t base,
                       struct elf_remote_info *out, ms_error *err);

/* The binary-search table of .eh_frame_hdr, as libunwind's remote table wants it. */
struct elf_remote_eh {
    uint64_t hdr;       /* runtime address of .eh_frame_hdr (the table's datarel base) */
    uint64_t table;     /* runtime address of the first table entry */
    uint64_t fde_count; /* entries: pairs of int32 (initial location, FDE), both hdr-relative */
    uint64_t eh_frame;  /* runtime address of .eh_frame */
};

/* Parses the loaded .eh_frame_hdr. Only the layout every x86_64 toolchain emits is accepted
 * (version 1, a sorted table of datarel sdata4 pairs); anything else fails: an object whose
 * table cannot be searched has, for memsnap, no unwind information. */
int elf_remote_eh_table(const struct elf_remote_reader *r, const struct elf_remote_info *info,
                        struct elf_remote_eh *out, ms_error *err);

/* The loaded dynamic symbol table: syms (count Elf64_Sym), versym (count, or NULL), strtab.
 * Free with elf_remote_dynsym_free. */
struct elf_remote_dynsym {
    void *syms;
    size_t count;
    uint16_t *versym;
    char *strtab;
    size_t strsz;
};

int elf_remote_dynsym(const struct elf_remote_reader *r, const struct elf_remote_info *info,
                      struct elf_remote_dynsym *out, ms_error *err);
void elf_remote_dynsym_free(struct elf_remote_dynsym *d);

/* The funnel: an elf_image for the object map belongs to (any of its mappings), from its file
 * when proc_maps_open proves the file is the mapped one, else from the dynamic symbol table
 * in pid's memory (then the image has no sections: .symtab-only names and section lookups
 * are unavailable). *from_memory (may be NULL) says which. Returns 0, or -1 with err (one
 * sentence saying neither worked). */
int elf_remote_open_image(pid_t pid, const struct proc_maps *maps, const struct proc_map *map,
                          struct elf_image **out, int *from_memory, ms_error *err);

#endif
