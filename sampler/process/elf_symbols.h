/*
 * elf_symbols.h - symbols, sections and load addresses of an ELF file (via libelf).
 *
 * memsnap finds _PyRuntime, Py_Version and PyCode_Type in the python executable or libpython,
 * dlopen in libc (for injection), and names native frames by address. An elf_image is opened
 * once (from a path, or from an fd obtained with proc_maps_open so it is the target's file)
 * and queried many times; symbol tables are indexed lazily on first use.
 *
 * Addresses returned are the file's link-time virtual addresses. The runtime address is
 * value + bias, where bias = (start of the file's offset-0 mapping) - page-aligned p_vaddr of
 * the first PT_LOAD; elf_load_bias() computes it. Non-PIE executables have bias 0.
 *
 * The file is untrusted: malformed tables make lookups fail, never crash.
 */
#ifndef MEMSNAP_ELF_SYMBOLS_H
#define MEMSNAP_ELF_SYMBOLS_H

#include <stdint.h>

#include "error.h"

struct elf_image;

struct elf_symbol {
    const char *name; /* owned by the image; valid until elf_image_close */
    uint64_t value;   /* link-time address */
    uint64_t size;    /* st_size; 0 when the symbol carries none */
    int type;         /* STT_FUNC, STT_OBJECT, ... */
    int dynamic;      /* 1 if found in .dynsym, 0 if in .symtab */
};

struct elf_section {
    uint64_t addr;   /* sh_addr */
    uint64_t offset; /* sh_offset */
    uint64_t size;   /* sh_size */
    uint32_t type;   /* SHT_PROGBITS, SHT_NOBITS, ... */
};

/* Opens an ELF from fd. Takes ownership of fd (closed by elf_image_close, or on failure).
 * label names the file in error messages (copied). */
int elf_image_open_fd(int fd, const char *label, struct elf_image **out, ms_error *err);

/* A dynamic symbol table as it is loaded in a process (elf_remote.h reads one). */
struct elf_dynsym_source {
    const void *syms; /* count Elf64_Sym entries (entry 0 is the null symbol) */
    size_t count;
    const uint16_t *versym; /* count DT_VERSYM entries, or NULL */
    const char *strtab;     /* strsz bytes */
    size_t strsz;
    int type;       /* e_type */
    uint64_t entry; /* e_entry */
    uint64_t first_load_vaddr;
};

/* Builds an image from a dynamic symbol table (copied: src may be freed afterwards). Symbol
 * lookups, elf_image_first_load, _type and _entry work; sections are unknown (no section
 * headers are loaded). label names it in messages. Returns 0, or -1 with err. */
int elf_image_from_dynsym(const char *label, const struct elf_dynsym_source *src,
                          struct elf_image **out, ms_error *err);

/* Opens an ELF by path. */
int elf_image_open(const char *path, struct elf_image **out, ms_error *err);

/* Closes the image; NULL is allowed. */
void elf_image_close(struct elf_image *img);

/* Looks a defined symbol up by name, .dynsym first, then .symtab. Where several versions of
 * a symbol exist (dlopen@GLIBC_2.2.5 and dlopen@@GLIBC_2.34), the default version wins.
 * Returns 0, or -1 with err ("symbol X not found in FILE"). */
int elf_image_find_symbol(struct elf_image *img, const char *name, struct elf_symbol *out,
                          ms_error *err);

/* The defined function or object symbol containing addr (value <= addr < value + size;
 * a size-0 symbol matches only its exact address), searched in .dynsym and .symtab.
 * Returns 0, or -1 with err when none contains it. */
int elf_image_symbol_at(struct elf_image *img, uint64_t addr, struct elf_symbol *out,
                        ms_error *err);

/* Finds a section by name (".PyRuntime", ".bss", ".data"). Returns 0, or -1 with err. */
int elf_image_find_section(struct elf_image *img, const char *name, struct elf_section *out,
                           ms_error *err);

/* p_vaddr and p_offset of the first PT_LOAD program header. Returns 0, or -1 with err. */
int elf_image_first_load(struct elf_image *img, uint64_t *vaddr, uint64_t *offset, ms_error *err);

/* e_type (ET_EXEC, ET_DYN) and e_entry. */
int elf_image_type(const struct elf_image *img);
uint64_t elf_image_entry(const struct elf_image *img);

/* The label given at open (a path). */
const char *elf_image_label(const struct elf_image *img);

/* Load bias of an image whose offset-0 mapping starts at map_start, given the first
 * PT_LOAD's p_vaddr: map_start - (first_vaddr rounded down to a page). */
uint64_t elf_load_bias(uint64_t map_start, uint64_t first_vaddr);

#endif
