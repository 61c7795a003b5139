/*
 * test_elf_remote.c - the identity check of proc_maps_open (a file is used only when its
 * device and inode are the mapped ones) and the ELF facts read from a process's memory
 * (elf_remote.h), pointed at this very process: its loaded libc's dynamic symbols and
 * .eh_frame_hdr must agree with libc's file, and a replaced or deleted file must never be
 * taken for the mapped one.
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "elf_remote.h"
#include "elf_symbols.h"
#include "proc_maps.h"

static const char *const names[] = {
    "dlopen",       "dlsym", "dlerror",          "malloc",         "free",   "calloc",
    "memfd_create", "close", "__errno_location", "pthread_create", "printf", "fork"};

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* A mapped file replaced (renamed over) or deleted after it was mapped: the path names
 * another file or none, and proc_maps_open must say so rather than open it. */
static void test_identity(void **state)
{
    (void)state;
    char dir[] = "/tmp/memsnap-idXXXXXX", path[128], other[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/lib.so", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    char page[4096];
    memset(page, 'A', sizeof page);
    page[sizeof page - 1] = 0;
    write_file(path, page);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    void *mem = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    assert_true(mem != MAP_FAILED);
    struct stat mapped;
    assert_int_equal(fstat(fd, &mapped), 0);
    close(fd);

    struct proc_maps pm;
    ms_error e;
    assert_int_equal(proc_maps_read(getpid(), &pm, &e), 0);
    const struct proc_map *m = proc_maps_find_addr(&pm, (uint64_t)(uintptr_t)mem);
    assert_non_null(m);
    assert_true(m->inode == (uint64_t)mapped.st_ino);
    /* A copy of the mapping at addresses nobody maps: map_files cannot help, so only the
     * path is left to try. */
    struct proc_map fake = *m;
    fake.start = 0x1000;
    fake.end = 0x2000;
    fd = proc_maps_open(getpid(), &fake, &e); /* the path still names the mapped file */
    assert_true(fd >= 0);
    assert_int_equal(proc_maps_same_file(fd, m), 1);
    close(fd);

    write_file(other, "a different file of the same name\n");
    assert_int_equal(rename(other, path), 0);
    fd = proc_maps_open(getpid(), &fake, &e);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(e.msg, "is not the file it mapped"));
    /* Through map_files (root, or CAP_CHECKPOINT_RESTORE) the mapped file itself opens. */
    fd = proc_maps_open(getpid(), m, &e);
    if (fd >= 0) {
        char c;
        assert_int_equal(pread(fd, &c, 1, 0), 1);
        assert_int_equal(c, 'A');
        close(fd);
    } else {
        assert_non_null(strstr(e.msg, "is not the file it mapped"));
    }
    unlink(path);
    fd = proc_maps_open(getpid(), &fake, &e);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(e.msg, "cannot be opened"));

    /* Another file is never "the same" as a mapping, whatever its path. */
    const struct proc_map *libc = proc_maps_find_libc(&pm);
    assert_non_null(libc);
    fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(proc_maps_same_file(fd, libc), 0);
    close(fd);
    proc_maps_free(&pm);
    munmap(mem, 4096);
    rmdir(dir);
}

/* libc's dynamic symbols and unwind table read from this process's memory agree with its
 * file, symbol by symbol; and the funnel reads memory when the file is not proven. */
static void test_self_libc(void **state)
{
    (void)state;
    struct proc_maps pm;
    ms_error e;
    assert_int_equal(proc_maps_read(getpid(), &pm, &e), 0);
    const struct proc_map *libc = proc_maps_find_libc(&pm);
    assert_non_null(libc);
    uint64_t base = proc_maps_file_base(&pm, libc);
    assert_true(base != 0);

    pid_t self = getpid();
    struct elf_remote_reader r = elf_remote_process_reader(&self);
    struct elf_remote_info info;
    assert_int_equal(elf_remote_headers(&r, base, &info, &e), 0);
    assert_int_equal(info.type, ET_DYN);
    assert_true(info.eh_frame_hdr != 0 && info.dynamic != 0);

    struct elf_image *file = NULL;
    assert_int_equal(elf_image_open(libc->path, &file, &e), 0);
    uint64_t vaddr;
    assert_int_equal(elf_image_first_load(file, &vaddr, NULL, &e), 0);
    uint64_t bias = elf_load_bias(base, vaddr);
    assert_true(info.bias == bias);
    assert_true(info.entry == elf_image_entry(file));

    /* .eh_frame_hdr: the same place and the same number of FDEs as the file says. */
    struct elf_remote_eh eh;
    assert_int_equal(elf_remote_eh_table(&r, &info, &eh, &e), 0);
    struct elf_section sec;
    assert_int_equal(elf_image_find_section(file, ".eh_frame_hdr", &sec, &e), 0);
    assert_true(eh.hdr == sec.addr + bias);
    int fd = open(libc->path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    uint32_t count;
    assert_int_equal(pread(fd, &count, 4, (off_t)sec.offset + 8), 4);
    assert_true(eh.fde_count == count);
    struct elf_section ehf;
    assert_int_equal(elf_image_find_section(file, ".eh_frame", &ehf, &e), 0);
    assert_true(eh.eh_frame == ehf.addr + bias);
    /* The first table entry as loaded equals the file's bytes. */
    int32_t mem_pair[2], file_pair[2];
    assert_int_equal(r.read(r.ctx, eh.table, mem_pair, sizeof mem_pair), 0);
    assert_int_equal(pread(fd, file_pair, sizeof file_pair, (off_t)sec.offset + 12), 8);
    assert_memory_equal(mem_pair, file_pair, sizeof mem_pair);
    close(fd);

    /* The dynamic symbol table: every name looked up resolves to the same address. */
    struct elf_remote_dynsym d;
    assert_int_equal(elf_remote_dynsym(&r, &info, &d, &e), 0);
    assert_true(d.count > 1000);
    struct elf_dynsym_source src = {d.syms,  d.count,   d.versym,   d.strtab,
                                    d.strsz, info.type, info.entry, info.first_load_vaddr};
    struct elf_image *mem = NULL;
    assert_int_equal(elf_image_from_dynsym("libc (memory)", &src, &mem, &e), 0);
    elf_remote_dynsym_free(&d);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct elf_symbol a, b;
        assert_int_equal(elf_image_find_symbol(file, names[i], &a, &e), 0);
        assert_int_equal(elf_image_find_symbol(mem, names[i], &b, &e), 0);
        assert_true(a.value == b.value);
        assert_true(a.size == b.size);
        struct elf_symbol at;
        assert_int_equal(elf_image_symbol_at(mem, b.value + (b.size ? b.size - 1 : 0), &at, &e), 0);
        assert_true(at.value == b.value);
    }
    /* dlopen from memory plus the bias is the dlopen this process calls. */
    struct elf_symbol s;
    assert_int_equal(elf_image_find_symbol(mem, "dlopen", &s, &e), 0);
    void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    assert_true((uint64_t)(uintptr_t)dlsym(h, "dlopen") == s.value + bias);
    dlclose(h);
    assert_int_equal(elf_image_find_section(mem, ".bss", &sec, &e), -1);
    assert_int_equal(elf_image_first_load(mem, &vaddr, NULL, &e), 0);
    assert_true(elf_load_bias(base, vaddr) == bias);
    elf_image_close(mem);

    /* The funnel: libc's file is proven here, so it is read; with its inode made wrong in
     * a copy of the maps (as if the file had been replaced), memory is read instead. */
    struct elf_image *img = NULL;
    int from_memory = -1;
    assert_int_equal(elf_remote_open_image(getpid(), &pm, libc, &img, &from_memory, &e), 0);
    assert_int_equal(from_memory, 0);
    elf_image_close(img);
    struct proc_maps fake = pm;
    fake.maps = malloc(pm.count * sizeof *fake.maps);
    assert_non_null(fake.maps);
    memcpy(fake.maps, pm.maps, pm.count * sizeof *fake.maps);
    for (size_t i = 0; i < fake.count; i++)
        if (fake.maps[i].inode == libc->inode && !strcmp(fake.maps[i].path, libc->path))
            fake.maps[i].inode ^= 0x5a5a5a;
    const struct proc_map *flibc = proc_maps_find_libc(&fake);
    assert_non_null(flibc);
    assert_int_equal(elf_remote_open_image(getpid(), &fake, flibc, &img, &from_memory, &e), 0);
    assert_int_equal(from_memory, 1);
    assert_non_null(strstr(elf_image_label(img), "memory"));
    struct elf_symbol a, b;
    assert_int_equal(elf_image_find_symbol(img, "dlopen", &a, &e), 0);
    assert_int_equal(elf_image_find_symbol(file, "dlopen", &b, &e), 0);
    assert_true(a.value == b.value);
    elf_image_close(img);
    free(fake.maps);
    elf_image_close(file);
    proc_maps_free(&pm);
}

/* Memory that is not an ELF object is refused with a sentence, never trusted. */
static void test_not_elf(void **state)
{
    (void)state;
    static char junk[8192] __attribute__((aligned(4096)));
    memset(junk, 0x7f, sizeof junk);
    pid_t self = getpid();
    struct elf_remote_reader r = elf_remote_process_reader(&self);
    struct elf_remote_info info;
    ms_error e;
    assert_int_equal(elf_remote_headers(&r, (uint64_t)(uintptr_t)junk, &info, &e), -1);
    assert_non_null(strstr(e.msg, "no x86_64 ELF header"));
    assert_int_equal(elf_remote_headers(&r, 8, &info, &e), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_self_libc),
        cmocka_unit_test(test_not_elf),
    };
    return cmocka_run_group_tests_name("elf_remote", tests, NULL, NULL);
}
