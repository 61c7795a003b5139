/*
 * test_elf_symbols.c - symbol, section and load-address lookups on the real files memsnap
 * reads: Debian's static non-PIE python3, every pyenv libpython, and libc (dlopen).
 * Expected sizes come from each interpreter itself (sizeof via ctypes where it can tell),
 * and from the ELF facts the design relies on, never from a hard-coded table.
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
#include <unistd.h>

#include <cmocka.h>

#include "elf_symbols.h"
#include "proc_maps.h"
#include "testproc.h"

/* The file that holds the interpreter: the exe for Debian's static build, else libpython. */
static int interpreter_file(const struct test_python *py, char *out, size_t n)
{
    if (py->debian) {
        char link[PATH_MAX];
        ssize_t k = readlink(py->path, link, sizeof link - 1);
        if (k > 0) {
            link[k] = 0;
            if (link[0] == '/')
                snprintf(out, n, "%s", link);
            else
                snprintf(out, n, "/usr/bin/%s", link);
        } else {
            snprintf(out, n, "%s", py->path);
        }
        return 0;
    }
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s", py->path);
    for (int up = 0; up < 2; up++) {
        char *s = strrchr(prefix, '/');
        if (!s)
            return -1;
        *s = 0;
    }
    snprintf(out, n, "%s/lib/libpython%d.%d.so.1.0", prefix, py->major, py->minor);
    return access(out, R_OK);
}

static void test_python_symbols(void **state)
{
    (void)state;
    struct test_python py[8];
    int n = test_pythons(py, 8);
    for (int i = 0; i < n; i++) {
        char file[PATH_MAX];
        assert_int_equal(interpreter_file(&py[i], file, sizeof file), 0);
        struct elf_image *img;
        ms_error e;
        if (elf_image_open(file, &img, &e) != 0)
            fail_msg("%s: %s", py[i].label, e.msg);
        struct elf_symbol rt, ct;
        assert_int_equal(elf_image_find_symbol(img, "_PyRuntime", &rt, &e), 0);
        assert_int_equal(rt.type, STT_OBJECT);
        assert_true(rt.size > 600 && rt.size < 1024 * 1024);
        assert_int_equal(elf_image_find_symbol(img, "PyCode_Type", &ct, &e), 0);
        assert_int_equal(ct.type, STT_OBJECT);
        /* PyTypeObject is 400 bytes on 3.8-3.11 and grew by one field on 3.12. */
        assert_true(ct.size == 400 || ct.size == 408 || ct.size == 416);
        struct elf_symbol ver;
        if (py[i].minor >= 11) {
            assert_int_equal(elf_image_find_symbol(img, "Py_Version", &ver, &e), 0);
            assert_int_equal(ver.size, sizeof(unsigned long)); /* PY_VERSION_HEX */
        } else {
            assert_int_equal(elf_image_find_symbol(img, "Py_Version", &ver, &e), -1);
            assert_non_null(strstr(e.msg, "Py_Version"));
        }
        /* _PyRuntime lives in .PyRuntime from 3.10, in .bss (or .data) before. */
        struct elf_section sec;
        if (py[i].minor >= 10) {
            assert_int_equal(elf_image_find_section(img, ".PyRuntime", &sec, &e), 0);
            assert_true(rt.value >= sec.addr && rt.value + rt.size <= sec.addr + sec.size);
        } else {
            assert_int_equal(elf_image_find_section(img, ".PyRuntime", &sec, &e), -1);
        }
        assert_int_equal(elf_image_find_section(img, ".bss", &sec, &e), 0);
        assert_int_equal(sec.type, SHT_NOBITS);
        /* Reverse lookups land on the same symbols, also from inside them. */
        struct elf_symbol at;
        assert_int_equal(elf_image_symbol_at(img, rt.value + rt.size / 2, &at, &e), 0);
        assert_string_equal(at.name, "_PyRuntime");
        assert_int_equal(elf_image_symbol_at(img, ct.value, &at, &e), 0);
        assert_string_equal(at.name, "PyCode_Type");
        struct elf_symbol fn;
        assert_int_equal(elf_image_find_symbol(img, "PyEval_EvalCode", &fn, &e), 0);
        assert_int_equal(fn.type, STT_FUNC);
        assert_int_equal(elf_image_symbol_at(img, fn.value + 1, &at, &e), 0);
        assert_true(at.value == fn.value);

        uint64_t vaddr, off;
        assert_int_equal(elf_image_first_load(img, &vaddr, &off, &e), 0);
        assert_true(off == 0);
        if (py[i].debian) {
            assert_int_equal(elf_image_type(img), ET_EXEC); /* non-PIE: bias 0 */
            assert_true(vaddr == 0x400000);
            assert_true(elf_load_bias(0x400000, vaddr) == 0);
        } else {
            assert_int_equal(elf_image_type(img), ET_DYN);
            assert_true(vaddr == 0);
        }
        assert_int_equal(elf_image_find_symbol(img, "no_such_symbol_memsnap", &fn, &e), -1);
        assert_non_null(strstr(e.msg, "no_such_symbol_memsnap"));
        elf_image_close(img);
    }
}

/* libc's dlopen: two versions exist in glibc >= 2.34; the default one must win, and the
 * address plus our own load bias must equal the dlopen this process calls. */
static void test_libc_dlopen(void **state)
{
    (void)state;
    struct proc_maps pm;
    ms_error e;
    assert_int_equal(proc_maps_read(getpid(), &pm, &e), 0);
    const struct proc_map *libc = proc_maps_find_libc(&pm);
    assert_non_null(libc);
    int fd = proc_maps_open(getpid(), libc, &e);
    assert_true(fd >= 0);
    struct elf_image *img;
    assert_int_equal(elf_image_open_fd(fd, libc->path, &img, &e), 0);
    struct elf_symbol s;
    assert_int_equal(elf_image_find_symbol(img, "dlopen", &s, &e), 0);
    assert_int_equal(s.type, STT_FUNC);
    assert_true(s.size > 0);
    assert_int_equal(s.dynamic, 1);
    uint64_t vaddr;
    assert_int_equal(elf_image_first_load(img, &vaddr, NULL, &e), 0);
    uint64_t bias = elf_load_bias(proc_maps_file_base(&pm, libc), vaddr);
    void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(h);
    void *real = dlsym(h, "dlopen");
    dlclose(h);
    assert_true((uint64_t)(uintptr_t)real == s.value + bias);
    struct elf_symbol at;
    assert_int_equal(elf_image_symbol_at(img, s.value + s.size - 1, &at, &e), 0);
    assert_true(at.value == s.value);
    assert_true(elf_image_entry(img) != 0);
    elf_image_close(img);
    proc_maps_free(&pm);
}

static void test_bad_files(void **state)
{
    (void)state;
    struct elf_image *img;
    ms_error e;
    assert_int_equal(elf_image_open("/nonexistent/memsnap", &img, &e), -1);
    assert_null(img);
    assert_non_null(strstr(e.msg, "/nonexistent/memsnap"));
    char tmp[] = "/tmp/memsnap-elf-XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    /* An ELF magic with a truncated header, then plain text. */
    assert_int_equal(write(fd, "\177ELF\002\001\001", 7), 7);
    close(fd);
    assert_int_equal(elf_image_open(tmp, &img, &e), -1);
    fd = open(tmp, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "not an elf at all\n", 18), 18);
    close(fd);
    assert_int_equal(elf_image_open(tmp, &img, &e), -1);
    assert_non_null(strstr(e.msg, "not an ELF"));
    unlink(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_symbols),
        cmocka_unit_test(test_libc_dlopen),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests_name("elf_symbols", tests, NULL, NULL);
}
