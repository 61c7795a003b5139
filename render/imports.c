/*
 * imports.c - import machinery collapsing (see imports.h for the model).
 *
 * The learning table maps a hash of a raw path prefix (root .. some machinery frame) to the
 * import frames whose module body was reached below that prefix, up to IMPORTS_MAX_NAMES of
 * them. A run that reaches no module body looks its prefixes up from the deepest to the
 * shallowest and takes the first hit: the deepest shared frame is the most specific one.
 * 64-bit prefix hashes make a false match astronomically unlikely, and a false match would
 * only mislabel a frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imports.h"
#include "user_imports.h"

#define IMPORTS_MAX_NAMES 4

struct learned {
    uint64_t key; /* prefix hash; 0 = empty slot */
    uint32_t frames[IMPORTS_MAX_NAMES];
    uint8_t n;
    uint8_t overflow; /* more distinct modules than fit */
};

/* A name given to machinery runs that reached no module body, per importing frame and kind
 * of loader (unresolved_name): computing it may read a source line, so it is done once. */
struct named {
    uint64_t key; /* (importer + 1) << 8 | kind; 0 = empty */
    uint32_t frame;
};

struct imports {
    struct learned *slots;
    size_t n_slots; /* power of two */
    size_t used;
    struct named *names;
    size_t n_names, names_used; /* n_names: power of two or 0 */
};

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

int imports_is_machinery(const char *name, const char *filename)
{
    if (!strcmp(filename, "<frozen importlib._bootstrap>") ||
        !strcmp(filename, "<frozen importlib._bootstrap_external>") ||
        !strcmp(filename, "<frozen zipimport>"))
        return 1;
    /* Interpreters run with -X frozen_modules=off, or before 3.11 when built without the
     * frozen copies, execute the same code from the source files. */
    if (ends_with(filename, "/importlib/_bootstrap.py") ||
        ends_with(filename, "/importlib/_bootstrap_external.py") ||
        ends_with(filename, "/zipimport.py"))
        return 1;
    return ends_with(filename, "/importlib/__init__.py") && !strcmp(name, "import_module");
}

/* The part of `path` after the last "/lib/pythonX.Y/", or NULL. */
static const char *after_stdlib_root(const char *path)
{
    const char *found = NULL;
    for (const char *p = strstr(path, "/lib/python"); p; p = strstr(p + 1, "/lib/python")) {
        const char *q = p + strlen("/lib/python");
        while ((*q >= '0' && *q <= '9') || *q == '.')
            q++;
        if (*q == '/')
            found = q + 1;
    }
    if (found && !strncmp(found, "lib-dynload/", strlen("lib-dynload/")))
        found += strlen("lib-dynload/");
    return found;
}

static const char *after_last(const char *path, const char *marker)
{
    const char *found = NULL;
    for (const char *p = strstr(path, marker); p; p = strstr(p + 1, marker))
        found = p + strlen(marker);
    return found;
}

const char *imports_relative_path(const char *filename, const char *script_dir)
{
    const char *rel = after_last(filename, "/site-packages/");
    const char *dist = after_last(filename, "/dist-packages/");
    if (dist && (!rel || dist > rel))
        rel = dist;
    if (!rel)
        rel = after_stdlib_root(filename);
    size_t dlen = script_dir ? strlen(script_dir) : 0;
    if (!rel && dlen && !strncmp(filename, script_dir, dlen) && filename[dlen] == '/')
        rel = filename + dlen + 1;
    return rel && *rel ? rel : filename;
}

void imports_module_name(const char *filename, const char *script_dir, char *out, size_t len)
{
    size_t flen = strlen(filename);
    if (!strncmp(filename, "<frozen ", 8) && flen > 9 && filename[flen - 1] == '>') {
        snprintf(out, len, "%.*s", (int)(flen - 9), filename + 8);
        return;
    }
    const char *rel = after_last(filename, "/site-packages/");
    const char *dist = after_last(filename, "/dist-packages/");
    if (dist && (!rel || dist > rel))
        rel = dist;
    if (!rel)
        rel = after_stdlib_root(filename);
    size_t dlen = script_dir ? strlen(script_dir) : 0;
    if (!rel && dlen && !strncmp(filename, script_dir, dlen) && filename[dlen] == '/')
        rel = filename + dlen + 1;
    if (!rel) {
        const char *slash = strrchr(filename, '/');
        rel = slash ? slash + 1 : filename;
    }
    /* Drop the extension: everything from the first dot of the last component, which also
     * removes extension-module tags like ".cpython-311-x86_64-linux-gnu.so". */
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    const char *dot = strchr(base, '.');
    size_t n = dot ? (size_t)(dot - rel) : strlen(rel);
    if (n >= 9 && !strncmp(rel + n - 9, "/__init__", 9))
        n -= 9;
    else if (n == 8 && !strncmp(rel, "__init__", 8))
        n = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++)
        out[o++] = rel[i] == '/' ? '.' : rel[i];
    if (o == 0 && len >= 2)
        out[o++] = '?';
    out[o] = '\0';
}

struct imports *imports_new(void)
{
    struct imports *im = calloc(1, sizeof *im);
    if (!im)
        return NULL;
    im->n_slots = 1024;
    im->slots = calloc(im->n_slots, sizeof *im->slots);
    if (!im->slots) {
        free(im);
        return NULL;
    }
    return im;
}

void imports_free(struct imports *im)
{
    if (!im)
        return;
    free(im->slots);
    free(im->names);
    free(im);
}

static uint64_t prefix_step(uint64_t h, uint32_t frame)
{
    h ^= (uint64_t)frame + 0x9e3779b97f4a7c15ull;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    return h ? h : 1; /* 0 marks an empty slot */
}

static struct learned *learned_find(const struct imports *im, uint64_t key)
{
    size_t mask = im->n_slots - 1;
    for (size_t i = key & mask;; i = (i + 1) & mask) {
        if (im->slots[i].key == key)
            return &im->slots[i];
        if (!im->slots[i].key)
            return NULL;
    }
}

static int learned_grow(struct imports *im)
{
    size_t n_slots = im->n_slots * 2;
    struct learned *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < im->n_slots; i++) {
        if (!im->slots[i].key)
            continue;
        size_t j = im->slots[i].key & (n_slots - 1);
        while (slots[j].key)
            j = (j + 1) & (n_slots - 1);
        slots[j] = im->slots[i];
    }
    free(im->slots);
    im->slots = slots;
    im->n_slots = n_slots;
    return 0;
}

static int learned_add(struct imports *im, uint64_t key, uint32_t frame)
{
    struct learned *l = learned_find(im, key);
    if (!l) {
        if ((im->used + 1) * 2 > im->n_slots && learned_grow(im) < 0)
            return -1;
        size_t mask = im->n_slots - 1, i = key & mask;
        while (im->slots[i].key)
            i = (i + 1) & mask;
        l = &im->slots[i];
        l->key = key;
        im->used++;
    }
    for (uint8_t i = 0; i < l->n; i++)
        if (l->frames[i] == frame)
            return 0;
    if (l->n < IMPORTS_MAX_NAMES)
        l->frames[l->n++] = frame;
    else
        l->overflow = 1;
    return 0;
}

/* The directory of the path's first frame, when that is an absolute file path. */
static void script_dir_of(const struct flame_tree *t, const uint32_t *path, size_t n, char *out,
                          size_t len)
{
    out[0] = '\0';
    if (!n)
        return;
    const char *file = t->strings.strs[t->frames[path[0]].file];
    const char *slash = strrchr(file, '/');
    if (file[0] == '/' && slash && (size_t)(slash - file) < len)
        snprintf(out, len, "%.*s", (int)(slash - file), file);
}

/* The "import x" frame for a module body frame. */
static uint32_t import_frame(struct flame_tree *t, uint32_t module_frame, const char *script_dir)
{
    const char *file = t->strings.strs[t->frames[module_frame].file];
    char name[512] = "import ";
    imports_module_name(file, script_dir, name + 7, sizeof name - 7);
    return flametree_frame(t, name, file, 0, FLAME_IMPORT);
}

int imports_learn(struct imports *im, struct flame_tree *t, const uint32_t *path, size_t n)
{
    char script_dir[512];
    script_dir_of(t, path, n, script_dir, sizeof script_dir);
    uint64_t h = 1;
    size_t i = 0;
    while (i < n) {
        if (!t->frames[path[i]].machinery) {
            h = prefix_step(h, path[i++]);
            continue;
        }
        size_t j = i;
        uint64_t run_start = h;
        while (j < n && t->frames[path[j]].machinery)
            j++;
        if (j < n && t->frames[path[j]].module) {
            uint32_t frame = import_frame(t, path[j], script_dir);
            if (frame == UINT32_MAX)
                return -1;
            uint64_t k = run_start;
            for (size_t m = i; m < j; m++) {
                k = prefix_step(k, path[m]);
                if (learned_add(im, k, frame) < 0)
                    return -1;
            }
        }
        for (; i < j; i++)
            h = prefix_step(h, path[i]);
    }
    return 0;
}

enum run_kind {
    RUN_UNKNOWN,
    RUN_EXTENSION, /* ExtensionFileLoader: a C extension module (.so) being created or run */
    RUN_BUILTIN,   /* BuiltinImporter: a module compiled into the interpreter */
    RUN_FROZEN,    /* FrozenImporter */
    RUN_CODE,      /* reading and unmarshalling a module's compiled code (.pyc) */
    RUN_FIND,      /* looking for the module on sys.path */
};

static const char *const run_kind_text[] = {
    "module",        "extension module",      "built-in module",
    "frozen module", "reading compiled code", "searching sys.path",
};

static enum run_kind run_kind_of(const struct flame_tree *t, const uint32_t *run, size_t len)
{
    enum run_kind kind = RUN_UNKNOWN;
    for (size_t m = 0; m < len; m++) {
        const char *name = t->strings.strs[t->frames[run[m]].name];
        if (!strncmp(name, "ExtensionFileLoader.", 20) || !strcmp(name, "create_module"))
            return RUN_EXTENSION;
        if (!strncmp(name, "BuiltinImporter.", 16))
            return RUN_BUILTIN;
        if (!strncmp(name, "FrozenImporter.", 15))
            return RUN_FROZEN;
        if (strstr(name, "get_code") || strstr(name, "_compile_bytecode") ||
            strstr(name, "get_data") || strstr(name, "source_to_code"))
            kind = RUN_CODE;
        else if (kind == RUN_UNKNOWN && strstr(name, "find_spec"))
            kind = RUN_FIND;
    }
    return kind;
}

/* The modules an import statement names: "import a.b as c, d" -> "a.b, d", "from x.y import
 * z" -> "x.y". 0 when `src` is such a statement. */
static int statement_modules(const char *src, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    if (!strncmp(src, "from ", 5)) {
        const char *p = src + 5;
        size_t n = strcspn(p, " ");
        if (!n || strncmp(p + n, " import", 7))
            return -1;
        snprintf(out, len, "%.*s", (int)n, p);
        return 0;
    }
    if (strncmp(src, "import ", 7))
        return -1;
    for (const char *p = src + 7; *p;) {
        while (*p == ' ' || *p == '(')
            p++;
        size_t n = strcspn(p, " ,;)");
        if (!n)
            break;
        o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%.*s", o ? ", " : "", (int)n, p);
        if (o >= len)
            break;
        p += n;
        p += strcspn(p, ",;"); /* past "as name" */
        if (*p != ',')
            break;
        p++;
    }
    return o ? 0 : -1;
}

/* The frame for a run of kind `kind` that reached no module body, imported from frame
 * `importer` (UINT32_MAX: none): "import x" when the importer's line reads "import x" (a
 * module compiled into the interpreter or a C extension has no Python body to name it by),
 * else "import (built-in module, from struct.py:13)" and the like. */
static uint32_t unresolved_name(struct imports *im, struct flame_tree *t, uint32_t importer,
                                enum run_kind kind)
{
    uint64_t key = ((uint64_t)importer + 1) << 8 | (uint64_t)kind;
    if ((im->names_used + 1) * 2 > im->n_names) {
        size_t n = im->n_names ? im->n_names * 2 : 64;
        struct named *names = calloc(n, sizeof *names);
        if (!names)
            return UINT32_MAX;
        for (size_t i = 0; i < im->n_names; i++)
            if (im->names[i].key) {
                size_t j = (im->names[i].key * 0x9e3779b97f4a7c15ull >> 24) & (n - 1);
                while (names[j].key)
                    j = (j + 1) & (n - 1);
                names[j] = im->names[i];
            }
        free(im->names);
        im->names = names;
        im->n_names = n;
    }
    size_t j = (key * 0x9e3779b97f4a7c15ull >> 24) & (im->n_names - 1);
    while (im->names[j].key && im->names[j].key != key)
        j = (j + 1) & (im->n_names - 1);
    if (im->names[j].key)
        return im->names[j].frame;

    char name[512], src[200], mods[200];
    const char *file = importer != UINT32_MAX ? t->strings.strs[t->frames[importer].file] : "";
    int64_t line = importer != UINT32_MAX ? t->frames[importer].line : 0;
    int got = file[0] == '/' && line > 0 ? user_imports_source(file, line, src, sizeof src) : -1;
    int have = got == 0 && kind != RUN_FIND && statement_modules(src, mods, sizeof mods) == 0;
    if (have && mods[0] == '.') {
        /* A relative import: the importer's package (the module itself for an __init__.py),
         * one level up per extra dot, then the rest of the name. */
        char pkg[256];
        imports_module_name(file, NULL, pkg, sizeof pkg);
        size_t dots = strspn(mods, "."), up = dots - 1 + !ends_with(file, "/__init__.py");
        for (size_t d = 0; d < up && have; d++) {
            char *dot = strrchr(pkg, '.');
            if (dot)
                *dot = '\0';
            else
                have = 0;
        }
        if (have) {
            char joined[200];
            snprintf(joined, sizeof joined, "%s%s%s", pkg, mods[dots] ? "." : "", mods + dots);
            snprintf(mods, sizeof mods, "%s", joined);
        }
    }
    if (have)
        snprintf(name, sizeof name, "import %s", mods);
    else if (file[0] && line > 0)
        snprintf(name, sizeof name, "import (%s, from %s:%lld)",
                 got == 1 && kind == RUN_UNKNOWN ? "dynamic import" : run_kind_text[kind],
                 strrchr(file, '/') ? strrchr(file, '/') + 1 : file, (long long)line);
    else
        snprintf(name, sizeof name, "import (%s)", run_kind_text[kind]);
    uint32_t frame = flametree_frame(t, name, "", 0, FLAME_IMPORT);
    if (frame != UINT32_MAX) {
        im->names[j] = (struct named){key, frame};
        im->names_used++;
    }
    return frame;
}

/* Names a run that reached no module body, from what imports_learn saw under its prefixes,
 * else from its importer and loader (unresolved_name). */
static uint32_t resolve_run(struct imports *im, struct flame_tree *t, const uint32_t *run,
                            size_t len, uint64_t start, uint32_t importer)
{
    uint64_t keys[64];
    size_t n_keys = 0;
    uint64_t k = start;
    for (size_t m = 0; m < len; m++) {
        k = prefix_step(k, run[m]);
        if (n_keys < sizeof keys / sizeof keys[0])
            keys[n_keys++] = k;
        else
            keys[n_keys - 1] = k; /* very long runs: keep the deepest prefix last */
    }
    for (size_t m = n_keys; m-- > 0;) {
        const struct learned *l = learned_find(im, keys[m]);
        if (!l)
            continue;
        if (l->n == 1 && !l->overflow)
            return l->frames[0];
        /* Several modules behind identical stacks: name them all, in a stable order. */
        uint32_t sorted[IMPORTS_MAX_NAMES];
        memcpy(sorted, l->frames, l->n * sizeof sorted[0]);
        for (size_t a = 1; a < l->n; a++)
            for (size_t b = a; b > 0 && sorted[b - 1] > sorted[b]; b--) {
                uint32_t tmp = sorted[b];
                sorted[b] = sorted[b - 1];
                sorted[b - 1] = tmp;
            }
        char name[512] = "import ";
        size_t o = strlen(name);
        for (size_t a = 0; a < l->n; a++) {
            const char *mod = t->strings.strs[t->frames[sorted[a]].name] + 7;
            o += snprintf(name + o, o < sizeof name ? sizeof name - o : 0, "%s%s", a ? ", " : "",
                          mod);
            if (o >= sizeof name)
                break;
        }
        if (l->overflow && o < sizeof name)
            snprintf(name + o, sizeof name - o, ", ...");
        return flametree_frame(t, name, "", 0, FLAME_IMPORT);
    }
    return unresolved_name(im, t, importer, run_kind_of(t, run, len));
}

int imports_collapse(struct imports *im, struct flame_tree *t, uint32_t *path, size_t *n)
{
    char script_dir[512];
    script_dir_of(t, path, *n, script_dir, sizeof script_dir);
    uint64_t h = 1; /* hash of the raw prefix, as imports_learn saw it */
    size_t in = 0, out = 0, len = *n;
    while (in < len) {
        if (!t->frames[path[in]].machinery) {
            h = prefix_step(h, path[in]);
            path[out++] = path[in++];
            continue;
        }
        size_t j = in;
        while (j < len && t->frames[path[j]].machinery)
            j++;
        uint32_t frame;
        size_t next = j;
        if (j < len && t->frames[path[j]].module) {
            frame = import_frame(t, path[j], script_dir);
            /* The program's own module bodies stay, below their "import x": their line is
             * the import statement (or other code) the module is running. */
            const char *file = t->strings.strs[t->frames[path[j]].file];
            next = file[0] == '/' && imports_relative_path(file, NULL) == file ? j : j + 1;
        } else {
            frame = resolve_run(im, t, path + in, j - in, h, in ? path[in - 1] : UINT32_MAX);
        }
        if (frame == UINT32_MAX)
            return -1;
        for (; in < next; in++)
            h = prefix_step(h, path[in]);
        path[out++] = frame;
    }
    *n = out;
    return 0;
}
