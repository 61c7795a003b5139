/*
 * elf_remote.c - ELF headers, .eh_frame_hdr and the dynamic symbol table read from a
 * process's memory, and the funnel that prefers a proven file; see elf_remote.h.
 */
#include "elf_remote.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

#define MAX_PHNUM        64
#define MAX_PHOFF        65536
#define MAX_DYN          1024
#define MAX_SYMS         (1u << 20)
#define MAX_STRSZ        (16u << 20)
#define MAX_FDES         (4u << 20)
#define MAX_GNU_BUCKETS  (1u << 20)
#define MAX_CHAIN_STEPS  (1u << 20)
#define DW_EH_PE_udata4  0x03
#define DW_EH_PE_sdata4  0x0b
#define DW_EH_PE_pcrel   0x10
#define DW_EH_PE_datarel 0x30

static int process_read(void *ctx, uint64_t addr, void *out, size_t len)
{
    return remote_read(*(const pid_t *)ctx, addr, out, len, NULL);
}

struct elf_remote_reader elf_remote_process_reader(const pid_t *pid)
{
    return (struct elf_remote_reader){process_read, (void *)pid};
}

static int rd(const struct elf_remote_reader *r, uint64_t addr, void *out, size_t len)
{
    if (addr + len < addr)
        return -1;
    return r->read(r->ctx, addr, out, len);
}

/* 1 if [addr, addr + len) lies within the object's loaded segments. */
static int inside(const struct elf_remote_info *info, uint64_t addr, uint64_t len)
{
    return addr >= info->lo && addr <= info->hi && len <= info->hi - addr;
}

int elf_remote_headers(const struct elf_remote_reader *r, uint64_t base,
                       struct elf_remote_info *out, ms_error *err)
{
    memset(out, 0, sizeof *out);
    Elf64_Ehdr eh;
    if (rd(r, base, &eh, sizeof eh) < 0)
        return ms_error_set(err, "the ELF header at 0x%llx cannot be read",
                            (unsigned long long)base);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
        return ms_error_set(err, "no x86_64 ELF header at 0x%llx", (unsigned long long)base);
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > MAX_PHNUM ||
        eh.e_phoff > MAX_PHOFF)
        return ms_error_set(err, "the ELF header at 0x%llx has malformed program headers",
                            (unsigned long long)base);
    Elf64_Phdr ph[MAX_PHNUM];
    if (rd(r, base + eh.e_phoff, ph, eh.e_phnum * sizeof ph[0]) < 0)
        return ms_error_set(err, "the program headers at 0x%llx cannot be read",
                            (unsigned long long)(base + eh.e_phoff));
    out->base = base;
    out->type = eh.e_type;
    out->entry = eh.e_entry;
    int have_load = 0;
    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (!have_load) {
            if (ph[i].p_offset >= 4096)
                return ms_error_set(err, "the first segment at 0x%llx does not hold the header",
                                    (unsigned long long)base);
            out->first_load_vaddr = ph[i].p_vaddr;
            out->bias = base - (ph[i].p_vaddr & ~(uint64_t)0xfff);
            out->lo = UINT64_MAX;
            have_load = 1;
        }
        uint64_t s = ph[i].p_vaddr + out->bias, e = s + ph[i].p_memsz;
        if (e < s)
            return ms_error_set(err, "a segment of the object at 0x%llx wraps around",
                                (unsigned long long)base);
        if (s < out->lo)
            out->lo = s & ~(uint64_t)0xfff;
        if (e > out->hi)
            out->hi = e;
    }
    if (!have_load)
        return ms_error_set(err, "the object at 0x%llx has no PT_LOAD segment",
                            (unsigned long long)base);
    if (out->type == ET_EXEC && out->bias != 0)
        return ms_error_set(err, "the executable at 0x%llx is not where it was linked",
                            (unsigned long long)base);
    for (int i = 0; i < eh.e_phnum; i++) {
        uint64_t at = ph[i].p_vaddr + out->bias;
        if (ph[i].p_type == PT_GNU_EH_FRAME && inside(out, at, ph[i].p_memsz)) {
            out->eh_frame_hdr = at;
            out->eh_frame_hdr_size = ph[i].p_memsz;
        } else if (ph[i].p_type == PT_DYNAMIC && inside(out, at, ph[i].p_memsz)) {
            out->dynamic = at;
            out->dynamic_size = ph[i].p_memsz;
        }
    }
    return 0;
}

int elf_remote_eh_table(const struct elf_remote_reader *r, const struct elf_remote_info *info,
                        struct elf_remote_eh *out, ms_error *err)
{
    memset(out, 0, sizeof *out);
    if (!info->eh_frame_hdr || info->eh_frame_hdr_size < 12)
        return ms_error_set(err, "the object at 0x%llx has no .eh_frame_hdr",
                            (unsigned long long)info->base);
    uint8_t h[12];
    if (rd(r, info->eh_frame_hdr, h, sizeof h) < 0)
        return ms_error_set(err, "the .eh_frame_hdr at 0x%llx cannot be read",
                            (unsigned long long)info->eh_frame_hdr);
    if (h[0] != 1 || h[1] != (DW_EH_PE_pcrel | DW_EH_PE_sdata4) || h[2] != DW_EH_PE_udata4 ||
        h[3] != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
        return ms_error_set(err, "the .eh_frame_hdr at 0x%llx has no searchable table",
                            (unsigned long long)info->eh_frame_hdr);
    int32_t rel;
    uint32_t count;
    memcpy(&rel, h + 4, sizeof rel);
    memcpy(&count, h + 8, sizeof count);
    out->hdr = info->eh_frame_hdr;
    out->eh_frame = info->eh_frame_hdr + 4 + (uint64_t)(int64_t)rel;
    out->table = info->eh_frame_hdr + 12;
    out->fde_count = count;
    if (count == 0 || count > MAX_FDES || !inside(info, out->table, (uint64_t)count * 8) ||
        (uint64_t)count * 8 > info->eh_frame_hdr_size - 12 || !inside(info, out->eh_frame, 4))
        return ms_error_set(err, "the .eh_frame_hdr at 0x%llx has a malformed table",
                            (unsigned long long)info->eh_frame_hdr);
    return 0;
}

/* A DT_* address: glibc's loader rewrites them to runtime addresses in place, other loaders
 * may not; either way it must land inside the object. 0 when it does not. */
static uint64_t dyn_addr(const struct elf_remote_info *info, uint64_t v, uint64_t len)
{
    if (inside(info, v, len))
        return v;
    if (inside(info, v + info->bias, len))
        return v + info->bias;
    return 0;
}

/* Number of dynamic symbols from DT_GNU_HASH: one past the highest index any chain
 * reaches. 0 on failure. */
static size_t gnu_hash_count(const struct elf_remote_reader *r, const struct elf_remote_info *info,
                             uint64_t at)
{
    uint32_t h[4];
    if (!inside(info, at, sizeof h) || rd(r, at, h, sizeof h) < 0)
        return 0;
    uint32_t nbuckets = h[0], symoffset = h[1], bloom = h[2];
    if (nbuckets == 0 || nbuckets > MAX_GNU_BUCKETS || bloom > MAX_GNU_BUCKETS)
        return 0;
    uint64_t buckets = at + sizeof h + (uint64_t)bloom * 8;
    uint64_t chains = buckets + (uint64_t)nbuckets * 4;
    if (!inside(info, buckets, (uint64_t)nbuckets * 4))
        return 0;
    uint32_t *b = malloc((size_t)nbuckets * 4);
    if (!b || rd(r, buckets, b, (size_t)nbuckets * 4) < 0) {
        free(b);
        return 0;
    }
    uint32_t top = 0;
    for (uint32_t i = 0; i < nbuckets; i++)
        if (b[i] > top)
            top = b[i];
    free(b);
    if (top < symoffset)
        return symoffset;
    for (uint32_t steps = 0; steps < MAX_CHAIN_STEPS; steps++, top++) {
        uint32_t c;
        uint64_t ca = chains + (uint64_t)(top - symoffset) * 4;
        if (!inside(info, ca, 4) || rd(r, ca, &c, 4) < 0)
            return 0;
        if (c & 1)
            return (size_t)top + 1;
    }
    return 0;
}

int elf_remote_dynsym(const struct elf_remote_reader *r, const struct elf_remote_info *info,
                      struct elf_remote_dynsym *out, ms_error *err)
{
    memset(out, 0, sizeof *out);
    unsigned long long base = info->base;
    if (!info->dynamic)
        return ms_error_set(err, "the object at 0x%llx has no dynamic section", base);
    size_t n = info->dynamic_size / sizeof(Elf64_Dyn);
    if (n > MAX_DYN)
        n = MAX_DYN;
    Elf64_Dyn *dyn = malloc((n ? n : 1) * sizeof *dyn);
    if (!dyn)
        return ms_error_set(err, "out of memory");
    if (rd(r, info->dynamic, dyn, n * sizeof *dyn) < 0) {
        free(dyn);
        return ms_error_set(err, "the dynamic section of the object at 0x%llx cannot be read",
                            base);
    }
    uint64_t symtab = 0, strtab = 0, strsz = 0, syment = 0, hash = 0, gnu_hash = 0, versym = 0;
    for (size_t i = 0; i < n && dyn[i].d_tag != DT_NULL; i++) {
        uint64_t v = dyn[i].d_un.d_val;
        switch (dyn[i].d_tag) {
        case DT_SYMTAB:
            symtab = v;
            break;
        case DT_STRTAB:
            strtab = v;
            break;
        case DT_STRSZ:
            strsz = v;
            break;
        case DT_SYMENT:
            syment = v;
            break;
        case DT_HASH:
            hash = v;
            break;
        case DT_GNU_HASH:
            gnu_hash = v;
            break;
        case DT_VERSYM:
            versym = v;
            break;
        default:
            break;
        }
    }
    free(dyn);
    if (!symtab || !strtab || syment != sizeof(Elf64_Sym) || strsz == 0 || strsz > MAX_STRSZ)
        return ms_error_set(err, "the object at 0x%llx has no usable dynamic symbol table", base);
    size_t count = 0;
    if (gnu_hash && (gnu_hash = dyn_addr(info, gnu_hash, 16)))
        count = gnu_hash_count(r, info, gnu_hash);
    if (!count && hash && (hash = dyn_addr(info, hash, 8))) {
        uint32_t hh[2];
        if (rd(r, hash, hh, sizeof hh) == 0)
            count = hh[1];
    }
    if (count == 0 || count > MAX_SYMS)
        return ms_error_set(err, "the object at 0x%llx has no countable dynamic symbol table",
                            base);
    symtab = dyn_addr(info, symtab, (uint64_t)count * sizeof(Elf64_Sym));
    strtab = dyn_addr(info, strtab, strsz);
    if (versym)
        versym = dyn_addr(info, versym, (uint64_t)count * 2);
    if (!symtab || !strtab)
        return ms_error_set(err, "the dynamic symbol table of the object at 0x%llx lies outside it",
                            base);
    out->syms = malloc(count * sizeof(Elf64_Sym));
    out->strtab = malloc(strsz);
    out->versym = versym ? malloc(count * 2) : NULL;
    if (!out->syms || !out->strtab || (versym && !out->versym)) {
        elf_remote_dynsym_free(out);
        return ms_error_set(err, "out of memory");
    }
    if (rd(r, symtab, out->syms, count * sizeof(Elf64_Sym)) < 0 ||
        rd(r, strtab, out->strtab, strsz) < 0 ||
        (versym && rd(r, versym, out->versym, count * 2) < 0)) {
        elf_remote_dynsym_free(out);
        return ms_error_set(err, "the dynamic symbol table of the object at 0x%llx cannot be read",
                            base);
    }
    out->count = count;
    out->strsz = strsz;
    return 0;
}

void elf_remote_dynsym_free(struct elf_remote_dynsym *d)
{
    free(d->syms);
    free(d->versym);
    free(d->strtab);
    memset(d, 0, sizeof *d);
}

int elf_remote_open_image(pid_t pid, const struct proc_maps *maps, const struct proc_map *map,
                          struct elf_image **out, int *from_memory, ms_error *err)
{
    *out = NULL;
    if (from_memory)
        *from_memory = 0;
    ms_error file_err = {""};
    int fd = proc_maps_open(pid, map, &file_err);
    if (fd >= 0)
        return elf_image_open_fd(fd, map->path, out, err);
    uint64_t base = proc_maps_file_base(maps, map);
    if (!base)
        return ms_error_set(err, "%s, and its ELF header is not mapped", file_err.msg);
    const pid_t p = pid;
    struct elf_remote_reader r = elf_remote_process_reader(&p);
    struct elf_remote_info info;
    struct elf_remote_dynsym d;
    ms_error mem_err = {""};
    if (elf_remote_headers(&r, base, &info, &mem_err) < 0 ||
        elf_remote_dynsym(&r, &info, &d, &mem_err) < 0)
        return ms_error_set(err, "%s, and reading it from the process's memory failed: %s",
                            file_err.msg, mem_err.msg);
    char label[512];
    snprintf(label, sizeof label, "%s (read from the memory of process %d)", map->path, (int)pid);
    struct elf_dynsym_source src = {
        .syms = d.syms,
        .count = d.count,
        .versym = d.versym,
        .strtab = d.strtab,
        .strsz = d.strsz,
        .type = info.type,
        .entry = info.entry,
        .first_load_vaddr = info.first_load_vaddr,
    };
    int rc = elf_image_from_dynsym(label, &src, out, err);
    elf_remote_dynsym_free(&d);
    if (rc == 0 && from_memory)
        *from_memory = 1;
    return rc;
}
