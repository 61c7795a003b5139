/*
 * pyruntime.c - locating _PyRuntime, the version and the type objects of a live CPython; see
 * pyruntime.h.
 *
 * Order of evidence for the version: the Py_Version symbol (3.11+, exact PY_VERSION_HEX), then
 * the sys.version text that 3.8-3.10 keep in a static buffer in .bss (found from the section
 * headers, because the tail of .bss is an anonymous mapping that maps files cannot name), then
 * the file name (libpython3.X.so, python3.X). The first that answers wins; the later ones are
 * only fallbacks because a renamed binary makes the file name lie.
 */
#include "pyruntime.h"

#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf_remote.h"
#include "elf_symbols.h"
#include "proc_maps.h"
#include "remote.h"

/* Largest .bss we scan for the version text; CPython's is a few hundred KiB. */
#define BSS_SCAN_MAX (16u << 20)

static void read_comm(pid_t pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    out[0] = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (fgets(out, (int)n, f))
        out[strcspn(out, "\n")] = 0;
    fclose(f);
    for (char *p = out; *p; p++) /* it is the target's choice: keep messages printable */
        if (!isprint((unsigned char)*p))
            *p = '?';
}

int pyruntime_parse_version(const char *s, size_t len, int *major, int *minor, int *micro)
{
    int v[3] = {0, 0, 0};
    size_t i = 0;
    for (int k = 0; k < 3; k++) {
        if (i >= len || !isdigit((unsigned char)s[i]))
            return -1;
        int digits = 0;
        while (i < len && isdigit((unsigned char)s[i])) {
            if (++digits > 3)
                return -1;
            v[k] = v[k] * 10 + (s[i++] - '0');
        }
        if (k < 2) {
            if (i >= len || s[i] != '.')
                return -1;
            i++;
        }
    }
    /* "3.10.13 (main" or "3.13.0rc1+ (heads" */
    while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '+'))
        i++;
    if (i + 1 >= len || s[i] != ' ' || s[i + 1] != '(')
        return -1;
    *major = v[0];
    *minor = v[1];
    *micro = v[2];
    return 0;
}

/* Scans the interpreter's .bss in the target for the sys.version text. */
static int version_from_bss(const struct pyruntime *rt, struct elf_image *img, int *ma, int *mi,
                            int *mc)
{
    struct elf_section bss;
    if (elf_image_find_section(img, ".bss", &bss, NULL) || bss.size == 0 || bss.size > BSS_SCAN_MAX)
        return -1;
    char *buf = malloc(bss.size);
    if (!buf)
        return -1;
    int rc = -1;
    if (remote_read(rt->pid, bss.addr + rt->load_bias, buf, bss.size, NULL) == 0) {
        for (size_t i = 0; i + 8 < bss.size && rc; i++) {
            if (buf[i] != '3' || buf[i + 1] != '.' || (i > 0 && buf[i - 1] != 0))
                continue;
            rc = pyruntime_parse_version(buf + i, bss.size - i, ma, mi, mc);
        }
    }
    free(buf);
    return rc;
}

/* "libpython3.10.so.1.0" or "python3.10": the last "3.<digits>" in the file name. */
static int version_from_name(const char *path, int *ma, int *mi)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *p = strstr(b, "python");
    if (!p)
        return -1;
    p += 6;
    if (p[0] != '3' || p[1] != '.' || !isdigit((unsigned char)p[2]))
        return -1;
    *ma = 3;
    *mi = atoi(p + 2);
    return *mi < 100 ? 0 : -1;
}

/* "libpython3.13t.so.1.0" or "python3.14t": the free-threaded builds' file names. */
static int version_is_free_threaded_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *p = strstr(b, "python3.");
    if (!p)
        return 0;
    p += 8;
    while (isdigit((unsigned char)*p))
        p++;
    return *p == 't';
}

/* The minor version of a CPython 2 mapped in the process ("python2.7", "libpython2.7.so.1.0"),
 * or -1. Python 2 has neither _PyRuntime nor Py_Version: without this it would be called "not
 * a CPython process". */
static int python2_minor(const struct proc_maps *pm)
{
    for (size_t i = 0; i < pm->count; i++) {
        const char *b = strrchr(pm->maps[i].path, '/');
        b = b ? b + 1 : pm->maps[i].path;
        if (!strncmp(b, "lib", 3))
            b += 3;
        if (!strncmp(b, "python2.", 8) && isdigit((unsigned char)b[8]))
            return atoi(b + 8);
    }
    return -1;
}

static int not_python(const struct pyruntime *rt, const struct proc_maps *pm, ms_error *err)
{
    int py2 = pm ? python2_minor(pm) : -1;
    if (py2 >= 0)
        return ms_error_set(err,
                            "process %d (%s) runs CPython 2.%d, which is not supported; memsnap "
                            "supports CPython %s",
                            (int)rt->pid, rt->comm, py2, py_offsets_supported());
    return ms_error_set(err,
                        "process %d (%s) is not a CPython process: no libpython or _PyRuntime "
                        "found",
                        (int)rt->pid, rt->comm);
}

static int free_threaded(const struct pyruntime *rt, ms_error *err)
{
    return ms_error_set(err,
                        "process %d runs a free-threaded CPython build (%d.%dt), which memsnap "
                        "does not support; use a regular (GIL) build",
                        (int)rt->pid, rt->major, rt->minor);
}

/* 3.13+: _Py_DebugOffsets must carry the cookie and our version; the fields it states replace
 * the table's (they move between patch releases). */
static int apply_debug_offsets(struct pyruntime *rt, ms_error *err)
{
    const struct py_debug_table *dt = py_debug_find(rt->major, rt->minor);
    if (rt->layout.runtime_debug_offsets < 0 || !dt)
        return 0;
    const struct py_debug_layout *lay = dt->layout;
    if (lay->size <= 0 || lay->size > 65536)
        return ms_error_set(err, "memsnap's _Py_DebugOffsets description is corrupt");
    uint8_t *buf = malloc((size_t)lay->size);
    if (!buf)
        return ms_error_set(err, "out of memory reading _Py_DebugOffsets");
    int rc = -1;
    if (remote_read(rt->pid, rt->runtime_addr + (uint64_t)rt->layout.runtime_debug_offsets, buf,
                    (size_t)lay->size, err)) {
        ms_error_prefix(err, "reading _Py_DebugOffsets");
        goto out;
    }
    if (memcmp(buf + lay->cookie_pos, lay->cookie, (size_t)lay->cookie_size)) {
        ms_error_set(err,
                     "process %d: _PyRuntime does not start with the \"xdebugpy\" cookie; "
                     "the interpreter was not found where expected",
                     (int)rt->pid);
        goto out;
    }
    uint64_t version, ft;
    memcpy(&version, buf + lay->version_pos, 8);
    memcpy(&ft, buf + lay->free_threaded_pos, 8);
    if ((int)((version >> 24) & 0xff) != rt->major || (int)((version >> 16) & 0xff) != rt->minor) {
        ms_error_set(err, "process %d: _Py_DebugOffsets says version 0x%" PRIx64 ", not %d.%d",
                     (int)rt->pid, version, rt->major, rt->minor);
        goto out;
    }
    if (ft) {
        free_threaded(rt, err);
        goto out;
    }
    if (py_offsets_apply_debug(&rt->layout, dt, buf, err)) {
        ms_error_prefix(err, "process %d (CPython %d.%d.%d)", (int)rt->pid, rt->major, rt->minor,
                        rt->micro);
        goto out;
    }
    rt->layout_from_process = 1;
    rc = 0;
out:
    free(buf);
    return rc;
}

static uint64_t symbol_addr(struct elf_image *img, const char *name, uint64_t bias, uint64_t *size)
{
    struct elf_symbol s;
    if (elf_image_find_symbol(img, name, &s, NULL))
        return 0;
    if (size)
        *size = s.size;
    return s.value + bias;
}

int pyruntime_facts(pid_t pid, struct pyruntime *rt, ms_error *err)
{
    memset(rt, 0, sizeof *rt);
    rt->pid = pid;
    struct proc_maps pm;
    if (proc_maps_read(pid, &pm, err))
        return -1;
    read_comm(pid, rt->comm, sizeof rt->comm);

    struct elf_image *img = NULL;
    int rc = -1;
    const struct proc_map *m = proc_maps_find_libpython(&pm);
    rt->shared = m != NULL;
    if (!m)
        m = proc_maps_find_exe(&pm, pid);
    if (!m) {
        not_python(rt, &pm, err);
        goto out;
    }
    snprintf(rt->path, sizeof rt->path, "%s", m->path);
    /* The interpreter's symbols from the object that is mapped: its file when proven to be
     * that file, else its dynamic symbol table in the target's memory (a libpython deleted by
     * an upgrade, a chroot's path). _PyRuntime and the type objects are exported. */
    if (elf_remote_open_image(pid, &pm, m, &img, NULL, err)) {
        if (!rt->shared && !strstr(err->msg, "not the file") && !strstr(err->msg, "memory"))
            not_python(rt, &pm, err); /* a script interpreter or some other non-ELF exe */
        else
            ms_error_prefix(err, "process %d", (int)pid);
        goto out;
    }
    uint64_t vaddr;
    uint64_t base = proc_maps_file_base(&pm, m);
    if (elf_image_first_load(img, &vaddr, NULL, err))
        goto out;
    rt->load_bias = elf_image_type(img) == ET_EXEC ? 0 : elf_load_bias(base, vaddr);

    rt->runtime_addr = symbol_addr(img, "_PyRuntime", rt->load_bias, &rt->runtime_size);
    if (!rt->runtime_addr) {
        struct elf_section sec;
        if (elf_image_find_section(img, ".PyRuntime", &sec, NULL) == 0 && sec.addr) {
            rt->runtime_addr = sec.addr + rt->load_bias;
            rt->runtime_size = 0;
        }
    }

    /* The version, before any check that depends on it, so a 3.7 gets the right message. */
    uint64_t vsym = symbol_addr(img, "Py_Version", rt->load_bias, NULL);
    uint64_t hex = 0;
    if (vsym && remote_read(pid, vsym, &hex, sizeof hex, NULL) == 0 && (hex >> 24) == 3) {
        rt->version_hex = (uint32_t)hex;
        rt->major = 3;
        rt->minor = (int)((hex >> 16) & 0xff);
        rt->micro = (int)((hex >> 8) & 0xff);
        snprintf(rt->version_source, sizeof rt->version_source, "Py_Version");
    } else if (version_from_bss(rt, img, &rt->major, &rt->minor, &rt->micro) == 0) {
        snprintf(rt->version_source, sizeof rt->version_source, "sys.version");
    } else if (version_from_name(m->path, &rt->major, &rt->minor) == 0) {
        snprintf(rt->version_source, sizeof rt->version_source, "file name");
    } else if (!rt->runtime_addr) {
        not_python(rt, &pm, err);
        goto out;
    } else {
        ms_error_set(err, "process %d (%s): cannot tell which CPython version %s is", (int)pid,
                     rt->comm, rt->path);
        goto out;
    }
    if (!rt->version_hex)
        rt->version_hex = (uint32_t)(rt->major << 24 | rt->minor << 16 | rt->micro << 8);
    if (strstr(rt->path, "python3.") && version_is_free_threaded_name(rt->path)) {
        free_threaded(rt, err);
        goto out;
    }
    rt->pycode_type = symbol_addr(img, "PyCode_Type", rt->load_bias, NULL);
    rt->unicode_type = symbol_addr(img, "PyUnicode_Type", rt->load_bias, NULL);
    rt->bytes_type = symbol_addr(img, "PyBytes_Type", rt->load_bias, NULL);
    rc = 0;
out:
    elf_image_close(img);
    proc_maps_free(&pm);
    return rc;
}

int pyruntime_finish(struct pyruntime *rt, ms_error *err)
{
    pid_t pid = rt->pid;
    const struct py_offsets *row = py_offsets_find(rt->major, rt->minor);
    rt->off = NULL;
    if (!row) {
        return ms_error_set(err,
                            "process %d runs CPython %d.%d, which is not supported; memsnap "
                            "supports %s",
                            (int)pid, rt->major, rt->minor, py_offsets_supported());
    }
    if (!rt->runtime_addr)
        return not_python(rt, NULL, err);
    rt->layout = *row;
    rt->layout_from_process = 0;
    if (apply_debug_offsets(rt, err))
        return -1;
    if (py_offsets_validate(&rt->layout, err))
        return ms_error_prefix(err,
                               "process %d: the layout of this CPython %d.%d.%d build is not "
                               "consistent",
                               (int)pid, rt->major, rt->minor, rt->micro);
    if (rt->runtime_size && rt->layout.runtime_size > 0 &&
        rt->runtime_size != (uint64_t)rt->layout.runtime_size)
        return ms_error_set(err,
                            "process %d: this CPython %d.%d.%d build's _PyRuntime is %" PRIu64
                            " bytes, memsnap expects %d; the build is not supported",
                            (int)pid, rt->major, rt->minor, rt->micro, rt->runtime_size,
                            rt->layout.runtime_size);
    /* One read proves the address is mapped and we are allowed to read it. */
    uint8_t probe[8];
    if (remote_read(pid, rt->runtime_addr, probe, sizeof probe, err))
        return ms_error_prefix(err, "reading _PyRuntime");
    rt->off = &rt->layout;
    return 0;
}

int pyruntime_locate(pid_t pid, struct pyruntime *rt, ms_error *err)
{
    if (pyruntime_facts(pid, rt, err))
        return -1;
    return pyruntime_finish(rt, err);
}

int pyruntime_main_interp(const struct pyruntime *rt, uint64_t *interp, ms_error *err)
{
    const struct py_offsets *o = rt->off;
    uint64_t head = 0, mainp = 0;
    struct remote_iov iov[2] = {
        {rt->runtime_addr + (uint64_t)o->runtime_interpreters_head, &head, 8},
        {rt->runtime_addr + (uint64_t)o->runtime_interpreters_main, &mainp, 8},
    };
    if (remote_readv(rt->pid, iov, 2, err))
        return ms_error_prefix(err, "reading the interpreter list");
    uint64_t cand = mainp ? mainp : head;
    if (!cand)
        return ms_error_set(err,
                            "process %d has no Python interpreter yet (starting up or "
                            "shutting down)",
                            (int)rt->pid);
    int32_t threads = o->interp_threads_head >= 0 ? o->interp_threads_head : o->interp_tstate_head;
    uint64_t first = 0;
    if (remote_read(rt->pid, cand + (uint64_t)threads, &first, 8, err))
        return ms_error_prefix(err, "reading the main interpreter");
    if (first) {
        uint64_t back = 0;
        if (remote_read(rt->pid, first + (uint64_t)o->tstate_interp, &back, 8, err))
            return ms_error_prefix(err, "reading the first thread state");
        if (back != cand)
            return ms_error_set(err,
                                "process %d: the interpreter state at 0x%" PRIx64
                                " is inconsistent (its first thread belongs to 0x%" PRIx64 ")",
                                (int)rt->pid, cand, back);
    }
    *interp = cand;
    return 0;
}
