/*
 * elf_symbols.c - ELF symbol and section lookups with libelf; see elf_symbols.h.
 *
 * On first use every defined symbol of .dynsym and .symtab is copied into one array and
 * sorted twice (by name, by address), so both kinds of lookups are binary searches. Names
 * point into the file's string tables, which libelf keeps mapped while the image is open.
 *
 * An image can also be built from a dynamic symbol table read out of a process's memory
 * (elf_remote.c does, when the mapped file cannot be proven to be the one on disk): then it
 * has no libelf handle and no sections, and its names point into a copy of the string table.
 */
#include "elf_symbols.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sym_entry {
    const char *name;
    uint64_t value, size;
    int type;
    int dynamic;
    int order;          /* position in the file: dynsym first; a tie-breaker for stable sorts */
    int hidden_version; /* a non-default version (dlopen@GLIBC_2.2.5 next to dlopen@@...) */
};

struct elf_image {
    int fd;
    Elf *elf;
    char *label;
    GElf_Ehdr ehdr;
    int indexed; /* 0 not yet, 1 done, -1 failed */
    struct sym_entry *syms;
    size_t nsyms;
    struct sym_entry **by_addr; /* function/object symbols with an address, sorted by value */
    size_t naddr;
    char *strtab;              /* from memory: the copied string table (NUL-terminated) */
    uint64_t first_load_vaddr; /* from memory: the first PT_LOAD's p_vaddr */
};

static const char *elf_err(void)
{
    const char *m = elf_errmsg(-1);
    return m ? m : "unknown libelf error";
}

int elf_image_open_fd(int fd, const char *label, struct elf_image **out, ms_error *err)
{
    *out = NULL;
    if (elf_version(EV_CURRENT) == EV_NONE) {
        close(fd);
        return ms_error_set(err, "libelf is too old for this ELF version");
    }
    struct elf_image *img = calloc(1, sizeof *img);
    if (!img) {
        close(fd);
        return ms_error_set(err, "out of memory opening %s", label);
    }
    img->fd = fd;
    img->label = strdup(label ? label : "(elf)");
    img->elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!img->label || !img->elf) {
        ms_error_set(err, "%s: cannot read as ELF: %s", label, elf_err());
        elf_image_close(img);
        return -1;
    }
    if (elf_kind(img->elf) != ELF_K_ELF || !gelf_getehdr(img->elf, &img->ehdr)) {
        ms_error_set(err, "%s is not an ELF file", label);
        elf_image_close(img);
        return -1;
    }
    if (gelf_getclass(img->elf) != ELFCLASS64 || img->ehdr.e_machine != EM_X86_64) {
        ms_error_set(err, "%s is not an x86_64 ELF file", label);
        elf_image_close(img);
        return -1;
    }
    *out = img;
    return 0;
}

int elf_image_open(const char *path, struct elf_image **out, ms_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *out = NULL;
        return ms_error_errno(err, errno, "opening %s", path);
    }
    return elf_image_open_fd(fd, path, out, err);
}

void elf_image_close(struct elf_image *img)
{
    if (!img)
        return;
    if (img->elf)
        elf_end(img->elf);
    if (img->fd >= 0)
        close(img->fd);
    free(img->syms);
    free(img->by_addr);
    free(img->strtab);
    free(img->label);
    free(img);
}

const char *elf_image_label(const struct elf_image *img)
{
    return img->label;
}

int elf_image_type(const struct elf_image *img)
{
    return img->ehdr.e_type;
}

uint64_t elf_image_entry(const struct elf_image *img)
{
    return img->ehdr.e_entry;
}

uint64_t elf_load_bias(uint64_t map_start, uint64_t first_vaddr)
{
    return map_start - (first_vaddr & ~(uint64_t)0xfff);
}

/* Finds the section of the given type (first one), or NULL. */
static Elf_Scn *section_of_type(Elf *elf, GElf_Word type, GElf_Shdr *shdr)
{
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn))) {
        if (gelf_getshdr(scn, shdr) && shdr->sh_type == type)
            return scn;
    }
    return NULL;
}

/* Appends the defined symbols of one table. */
static int collect_table(struct elf_image *img, GElf_Word type, size_t *cap)
{
    GElf_Shdr shdr;
    Elf_Scn *scn = section_of_type(img->elf, type, &shdr);
    if (!scn || shdr.sh_entsize == 0)
        return 0;
    Elf_Data *data = elf_getdata(scn, NULL);
    if (!data)
        return 0;
    size_t count = shdr.sh_size / shdr.sh_entsize;
    Elf_Data *versym = NULL;
    size_t nversym = 0;
    if (type == SHT_DYNSYM) {
        GElf_Shdr vsh;
        Elf_Scn *vs = section_of_type(img->elf, SHT_GNU_versym, &vsh);
        if (vs && (versym = elf_getdata(vs, NULL)))
            nversym = versym->d_size / sizeof(GElf_Versym);
    }
    for (size_t i = 1; i < count; i++) {
        GElf_Sym sym;
        if (!gelf_getsym(data, (int)i, &sym))
            break;
        if (sym.st_shndx == SHN_UNDEF || sym.st_name == 0)
            continue;
        int stt = GELF_ST_TYPE(sym.st_info);
        if (stt == STT_SECTION || stt == STT_FILE)
            continue;
        const char *name = elf_strptr(img->elf, shdr.sh_link, sym.st_name);
        if (!name || !name[0])
            continue;
        if (img->nsyms == *cap) {
            size_t ncap = *cap ? *cap * 2 : 1024;
            struct sym_entry *n = realloc(img->syms, ncap * sizeof *n);
            if (!n)
                return -1;
            img->syms = n;
            *cap = ncap;
        }
        struct sym_entry *e = &img->syms[img->nsyms];
        e->name = name;
        e->value = sym.st_value;
        e->size = sym.st_size;
        e->type = stt;
        e->dynamic = type == SHT_DYNSYM;
        e->order = (int)img->nsyms;
        e->hidden_version = 0;
        if (versym && i < nversym) {
            GElf_Versym v;
            if (gelf_getversym(versym, (int)i, &v))
                e->hidden_version = (v & 0x8000) != 0;
        }
        img->nsyms++;
    }
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const struct sym_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->order - y->order;
}

static int cmp_addr(const void *a, const void *b)
{
    const struct sym_entry *x = *(struct sym_entry *const *)a, *y = *(struct sym_entry *const *)b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    /* Larger symbols first at one address, so a sized symbol wins over a size-0 alias. */
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return x->order - y->order;
}

static int index_symbols(struct elf_image *img, ms_error *err)
{
    if (img->indexed == 1)
        return 0;
    if (img->indexed == -1)
        return ms_error_set(err, "%s: its symbol tables could not be read", img->label);
    size_t cap = 0;
    if (img->elf && (collect_table(img, SHT_DYNSYM, &cap) || collect_table(img, SHT_SYMTAB, &cap)))
        goto oom;
    if (img->nsyms)
        qsort(img->syms, img->nsyms, sizeof *img->syms, cmp_name);
    img->by_addr = malloc((img->nsyms ? img->nsyms : 1) * sizeof *img->by_addr);
    if (!img->by_addr)
        goto oom;
    for (size_t i = 0; i < img->nsyms; i++) {
        struct sym_entry *e = &img->syms[i];
        if ((e->type == STT_FUNC || e->type == STT_OBJECT || e->type == STT_GNU_IFUNC ||
             e->type == STT_NOTYPE) &&
            e->value)
            img->by_addr[img->naddr++] = e;
    }
    if (img->naddr)
        qsort(img->by_addr, img->naddr, sizeof *img->by_addr, cmp_addr);
    img->indexed = 1;
    return 0;
oom:
    img->indexed = -1;
    return ms_error_set(err, "out of memory indexing the symbols of %s", img->label);
}

static void fill_symbol(const struct sym_entry *e, struct elf_symbol *out)
{
    out->name = e->name;
    out->value = e->value;
    out->size = e->size;
    out->type = e->type;
    out->dynamic = e->dynamic;
}

int elf_image_find_symbol(struct elf_image *img, const char *name, struct elf_symbol *out,
                          ms_error *err)
{
    if (index_symbols(img, err))
        return -1;
    size_t lo = 0, hi = img->nsyms;
    while (lo < hi) { /* first entry with this name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(img->syms[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const struct sym_entry *best = NULL;
    for (size_t i = lo; i < img->nsyms && !strcmp(img->syms[i].name, name); i++) {
        const struct sym_entry *e = &img->syms[i];
        /* Entries keep file order within one name: .dynsym before .symtab. */
        if (!best || (best->hidden_version && !e->hidden_version))
            best = e;
    }
    if (!best)
        return ms_error_set(err, "symbol %s not found in %s", name, img->label);
    fill_symbol(best, out);
    return 0;
}

int elf_image_symbol_at(struct elf_image *img, uint64_t addr, struct elf_symbol *out, ms_error *err)
{
    if (index_symbols(img, err))
        return -1;
    /* Last symbol starting at or below addr; then scan back over the few that could still
     * cover it (nested or overlapping symbols are rare; cap the scan). */
    size_t lo = 0, hi = img->naddr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (img->by_addr[mid]->value <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < 64 && lo > 0; k++) {
        const struct sym_entry *e = img->by_addr[--lo];
        if (addr - e->value < e->size || (e->size == 0 && e->value == addr)) {
            /* Prefer the first (largest) symbol at this address. */
            while (lo > 0 && img->by_addr[lo - 1]->value == e->value &&
                   addr - e->value < img->by_addr[lo - 1]->size)
                e = img->by_addr[--lo];
            fill_symbol(e, out);
            return 0;
        }
    }
    return ms_error_set(err, "no symbol of %s contains address 0x%llx", img->label,
                        (unsigned long long)addr);
}

int elf_image_find_section(struct elf_image *img, const char *name, struct elf_section *out,
                           ms_error *err)
{
    size_t shstrndx;
    if (!img->elf)
        return ms_error_set(err, "section %s is unknown: %s has no section headers", name,
                            img->label);
    if (elf_getshdrstrndx(img->elf, &shstrndx) != 0)
        return ms_error_set(err, "%s has no section name table", img->label);
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(img->elf, scn))) {
        GElf_Shdr shdr;
        if (!gelf_getshdr(scn, &shdr))
            continue;
        const char *n = elf_strptr(img->elf, shstrndx, shdr.sh_name);
        if (n && !strcmp(n, name)) {
            out->addr = shdr.sh_addr;
            out->offset = shdr.sh_offset;
            out->size = shdr.sh_size;
            out->type = shdr.sh_type;
            return 0;
        }
    }
    return ms_error_set(err, "section %s not found in %s", name, img->label);
}

int elf_image_first_load(struct elf_image *img, uint64_t *vaddr, uint64_t *offset, ms_error *err)
{
    size_t n;
    if (!img->elf) {
        *vaddr = img->first_load_vaddr;
        if (offset)
            *offset = 0;
        return 0;
    }
    if (elf_getphdrnum(img->elf, &n) != 0)
        return ms_error_set(err, "%s has no program headers", img->label);
    for (size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(img->elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
            *vaddr = ph.p_vaddr;
            if (offset)
                *offset = ph.p_offset;
            return 0;
        }
    }
    return ms_error_set(err, "%s has no PT_LOAD segment", img->label);
}

int elf_image_from_dynsym(const char *label, const struct elf_dynsym_source *src,
                          struct elf_image **out, ms_error *err)
{
    *out = NULL;
    struct elf_image *img = calloc(1, sizeof *img);
    if (!img)
        return ms_error_set(err, "out of memory reading %s", label);
    img->fd = -1;
    img->label = strdup(label ? label : "(elf)");
    img->strtab = malloc(src->strsz + 1);
    img->syms = malloc((src->count ? src->count : 1) * sizeof *img->syms);
    if (!img->label || !img->strtab || !img->syms) {
        elf_image_close(img);
        return ms_error_set(err, "out of memory reading %s", label);
    }
    memcpy(img->strtab, src->strtab, src->strsz);
    img->strtab[src->strsz] = 0; /* a name running off the end stops here */
    img->ehdr.e_type = (GElf_Half)src->type;
    img->ehdr.e_entry = src->entry;
    img->first_load_vaddr = src->first_load_vaddr;
    const Elf64_Sym *syms = src->syms;
    for (size_t i = 1; i < src->count; i++) {
        const Elf64_Sym *sym = &syms[i];
        int stt = ELF64_ST_TYPE(sym->st_info);
        if (sym->st_shndx == SHN_UNDEF || sym->st_name == 0 || sym->st_name >= src->strsz ||
            stt == STT_SECTION || stt == STT_FILE)
            continue;
        const char *name = img->strtab + sym->st_name;
        if (!name[0])
            continue;
        struct sym_entry *e = &img->syms[img->nsyms];
        e->name = name;
        e->value = sym->st_value;
        e->size = sym->st_size;
        e->type = stt;
        e->dynamic = 1;
        e->order = (int)img->nsyms;
        e->hidden_version = src->versym && (src->versym[i] & 0x8000) != 0;
        img->nsyms++;
    }
    *out = img;
    return 0;
}
