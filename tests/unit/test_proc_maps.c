/*
 * test_proc_maps.c - /proc/PID/maps parsing on crafted lines (spaces, " (deleted)", memfd,
 * anonymous, garbage) and on real processes: this test itself and Debian's python3.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc_maps.h"
#include "testproc.h"

static void test_line_file(void **state)
{
    (void)state;
    const char *l = "7f0a12345000-7f0a12367000 r-xp 00028000 fe:00 262234                     "
                    "/usr/lib/x86_64-linux-gnu/libc.so.6";
    struct proc_map m;
    char path[256];
    assert_int_equal(proc_maps_parse_line(l, strlen(l), &m, path, sizeof path), 0);
    assert_true(m.start == 0x7f0a12345000ull);
    assert_true(m.end == 0x7f0a12367000ull);
    assert_true(m.offset == 0x28000);
    assert_int_equal(m.perms, PROC_MAP_READ | PROC_MAP_EXEC);
    assert_int_equal(m.dev_major, 0xfe);
    assert_int_equal(m.dev_minor, 0);
    assert_true(m.inode == 262234);
    assert_int_equal(m.deleted, 0);
    assert_string_equal(m.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
}

static void test_line_spaces_deleted_memfd_anon(void **state)
{
    (void)state;
    struct proc_map m;
    char path[256];
    const char *sp = "1000-2000 rw-s 00000000 00:05 77 /tmp/my dir/lib python.so (deleted)";
    assert_int_equal(proc_maps_parse_line(sp, strlen(sp), &m, path, sizeof path), 0);
    assert_string_equal(m.path, "/tmp/my dir/lib python.so");
    assert_int_equal(m.deleted, 1);
    assert_int_equal(m.perms, PROC_MAP_READ | PROC_MAP_WRITE | PROC_MAP_SHARED);

    const char *mf = "7f00-8f00 r-xp 00001000 00:01 1234 /memfd:memsnap_hook (deleted)";
    assert_int_equal(proc_maps_parse_line(mf, strlen(mf), &m, path, sizeof path), 0);
    assert_string_equal(m.path, "/memfd:memsnap_hook");
    assert_int_equal(m.deleted, 1);

    const char *an = "7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ";
    assert_int_equal(proc_maps_parse_line(an, strlen(an), &m, path, sizeof path), 0);
    assert_string_equal(m.path, "");
    const char *an2 = "7ffd1000-7ffd2000 ---p 00000000 00:00 0";
    assert_int_equal(proc_maps_parse_line(an2, strlen(an2), &m, path, sizeof path), 0);
    assert_string_equal(m.path, "");
    assert_int_equal(m.perms, 0);

    const char *st = "7ffd1000-7ffd2000 rw-p 00000000 00:00 0                  [stack]";
    assert_int_equal(proc_maps_parse_line(st, strlen(st), &m, path, sizeof path), 0);
    assert_string_equal(m.path, "[stack]");

    /* Truncation keeps a NUL-terminated prefix. */
    char small[8];
    assert_int_equal(proc_maps_parse_line(sp, strlen(sp), &m, small, sizeof small), 0);
    assert_string_equal(m.path, "/tmp/my");
}

static void test_line_garbage(void **state)
{
    (void)state;
    struct proc_map m;
    char path[64];
    const char *bad[] = {
        "",
        "hello",
        "1000-2000",
        "1000-2000 rwxq 00000000 00:00 0",
        "2000-1000 r--p 00000000 00:00 0",
        "1000-2000 r--p zz 00:00 0",
        "1000-2000 r--p 0 00:00",
        "11112222333344445-2000 r--p 0 00:00 0",
        "1000-2000 r--p 0 00:00 12x /a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(proc_maps_parse_line(bad[i], strlen(bad[i]), &m, path, sizeof path), -1);
}

static void test_parse_and_find(void **state)
{
    (void)state;
    const char text[] =
        "00400000-0041f000 r--p 00000000 fe:00 10 /usr/bin/python3.11\n"
        "0041f000-006d2000 r-xp 0001f000 fe:00 10 /usr/bin/python3.11\n"
        "garbage line\n"
        "01000000-01100000 rw-p 00000000 00:00 0 [heap]\n"
        "7f0000000000-7f0000001000 r--p 00001000 fe:00 20 /opt/py/lib/libpython3.12.so.1.0\n"
        "7f0000001000-7f0000002000 r--p 00000000 fe:00 20 /opt/py/lib/libpython3.12.so.1.0\n"
        "7f0000003000-7f0000004000 r--p 00000000 fe:00 30 /lib/x86_64-linux-gnu/libc.so.6\n"
        "7f0000005000-7f0000006000 r--p 00000000 fe:00 40 "
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        "\n7f0000007000-7f0000008000 r--p 00000000 fe:00 50 /lib/libcrypt.so.1"; /* no final \n */
    struct proc_maps pm;
    assert_int_equal(proc_maps_parse(text, sizeof text - 1, &pm, NULL), 0);
    assert_int_equal(pm.count, 8);
    assert_null(proc_maps_find_addr(&pm, 0x3fffff));
    assert_ptr_equal(proc_maps_find_addr(&pm, 0x400000), &pm.maps[0]);
    assert_ptr_equal(proc_maps_find_addr(&pm, 0x6d1fff), &pm.maps[1]);
    assert_ptr_equal(proc_maps_find_addr(&pm, 0x01000010), &pm.maps[2]);
    assert_null(proc_maps_find_addr(&pm, 0x7f0000002000ull));
    const struct proc_map *lp = proc_maps_find_libpython(&pm);
    assert_non_null(lp);
    assert_true(lp->start == 0x7f0000001000ull); /* lowest offset, not first line */
    assert_true(proc_maps_file_base(&pm, &pm.maps[3]) == 0x7f0000001000ull);
    const struct proc_map *lc = proc_maps_find_libc(&pm);
    assert_non_null(lc);
    assert_string_equal(lc->path, "/lib/x86_64-linux-gnu/libc.so.6");
    const struct proc_map *ld = proc_maps_find_ld(&pm);
    assert_non_null(ld);
    assert_true(ld->start == 0x7f0000005000ull);
    assert_non_null(proc_maps_find_path(&pm, "/usr/bin/python3.11"));
    assert_null(proc_maps_find_path(&pm, "/usr/bin/python3"));
    proc_maps_free(&pm);
    assert_int_equal(pm.count, 0);

    assert_int_equal(proc_maps_parse("", 0, &pm, NULL), 0);
    assert_int_equal(pm.count, 0);
    proc_maps_free(&pm);
}

static void test_is_libpython(void **state)
{
    (void)state;
    assert_true(proc_maps_is_libpython("/x/libpython3.8.so.1.0"));
    assert_true(proc_maps_is_libpython("libpython3.13.so"));
    assert_true(proc_maps_is_libpython("/a b/libpython3.7m.so.1.0"));
    assert_true(proc_maps_is_libpython("/x/libpython3.13d.so.1.0"));
    /* free-threaded builds are found (and then refused by pyruntime.c with a sentence) */
    assert_true(proc_maps_is_libpython("/x/libpython3.14t.so.1.0"));
    assert_true(proc_maps_is_libpython("/x/libpython3.13td.so"));
    assert_false(proc_maps_is_libpython("/x/libpython3.so"));
    assert_false(proc_maps_is_libpython("/x/libpython3.12.a"));
    assert_false(proc_maps_is_libpython("/x/libpython3.12x.so"));
    assert_false(proc_maps_is_libpython("/libpython3.12.so/libc.so.6"));
    assert_false(proc_maps_is_libpython("/x/libpython2.7.so.1.0"));
}

static int self_marker;

static void test_read_self(void **state)
{
    (void)state;
    struct proc_maps pm;
    ms_error e;
    assert_int_equal(proc_maps_read(getpid(), &pm, &e), 0);
    assert_true(pm.count > 5);
    const struct proc_map *m = proc_maps_find_addr(&pm, (uint64_t)(uintptr_t)&self_marker);
    assert_non_null(m);
    assert_true(m->perms & PROC_MAP_WRITE);
    const struct proc_map *exe = proc_maps_find_exe(&pm, getpid());
    assert_non_null(exe);
    assert_true(exe->offset == 0);
    assert_non_null(proc_maps_find_libc(&pm));
    assert_non_null(proc_maps_find_ld(&pm));
    assert_null(proc_maps_find_libpython(&pm));
    /* The file behind our exe mapping is this very file (same ELF magic). */
    int fd = proc_maps_open(getpid(), exe, &e);
    assert_true(fd >= 0);
    char magic[4];
    assert_int_equal(read(fd, magic, 4), 4);
    assert_memory_equal(magic, "\177ELF", 4);
    close(fd);
    fd = proc_maps_open_exe(getpid(), &e);
    assert_true(fd >= 0);
    close(fd);
    proc_maps_free(&pm);
}

static void test_read_errors(void **state)
{
    (void)state;
    struct proc_maps pm;
    ms_error e;
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(proc_maps_read(child, &pm, &e), -1);
    assert_non_null(strstr(e.msg, "no process with pid"));
    assert_int_equal(proc_maps_open_exe(child, &e), -1);
}

/* Debian's static python has no libpython: its interpreter is the exe mapping. A pyenv
 * build maps libpython. Both are checked on real processes when installed. */
static void check_python(const char *py, int expect_libpython)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t child = fork();
    if (child == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl(py, py, "-c", "import sys,time; print('go', flush=True); time.sleep(30)",
              (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char c = 0;
    ssize_t k;
    do /* until the child's newline: it is running its Python code by then */
        k = read(pfd[0], &c, 1);
    while ((k == 1 && c != '\n') || (k < 0 && errno == EINTR));
    if (k != 1)
        fail_msg("%s: no ready line (%s)", py, strerror(errno));
    close(pfd[0]);
    struct proc_maps pm;
    ms_error e;
    assert_int_equal(proc_maps_read(child, &pm, &e), 0);
    const struct proc_map *exe = proc_maps_find_exe(&pm, child);
    assert_non_null(exe);
    const struct proc_map *lp = proc_maps_find_libpython(&pm);
    if (expect_libpython) {
        assert_non_null(lp);
        assert_true(lp->offset == 0);
        int fd = proc_maps_open(child, lp, &e);
        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_null(lp);
    }
    proc_maps_free(&pm);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

static void test_real_pythons(void **state)
{
    (void)state;
    struct test_python py[8];
    int n = test_pythons(py, 8);
    for (int i = 0; i < n; i++)
        check_python(py[i].path, !py[i].debian);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_file),    cmocka_unit_test(test_line_spaces_deleted_memfd_anon),
        cmocka_unit_test(test_line_garbage), cmocka_unit_test(test_parse_and_find),
        cmocka_unit_test(test_is_libpython), cmocka_unit_test(test_read_self),
        cmocka_unit_test(test_read_errors),  cmocka_unit_test(test_real_pythons),
    };
    return cmocka_run_group_tests_name("proc_maps", tests, NULL, NULL);
}
