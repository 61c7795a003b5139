/*
 * user_imports.c - the import statements of the program's own files, by cost (see
 * user_imports.h). One pass over the nodes (a parent is numbered before its children):
 * each node belongs to the innermost user statement above it, its self value goes to that
 * statement and, by installed package, to the statement's package sums.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imports.h"
#include "strset.h"
#include "user_imports.h"

#define NONE UINT32_MAX
/* Reading a statement's line stops after this many bytes of its file. */
#define USER_IMPORTS_MAX_READ (8u << 20)

static int is_user_file(const char *file)
{
    return file[0] == '/' && imports_relative_path(file, NULL) == file;
}

/* The installed top-level package a file belongs to ("numpy" for .../site-packages/numpy/
 * core/x.py, "six" for .../dist-packages/six.py), or NULL. */
static const char *package_of(const char *file, size_t *len)
{
    const char *rel = imports_relative_path(file, NULL);
    if (rel == file || (!strstr(file, "/site-packages/") && !strstr(file, "/dist-packages/")))
        return NULL;
    size_t n = strcspn(rel, "/");
    if (!rel[n]) { /* a single-file module: drop the extension */
        const char *dot = strchr(rel, '.');
        if (dot)
            n = (size_t)(dot - rel);
    }
    *len = n;
    return n ? rel : NULL;
}

struct stmt {
    uint32_t frame; /* the user frame holding the statement */
    int64_t bytes;
    int64_t widest; /* the widest "import x" child's total, and its frame */
    uint32_t widest_frame;
    uint32_t package;
    int64_t package_bytes;
};

struct pkg_slot {
    uint64_t key; /* stmt << 32 | package id */
    int64_t bytes;
    int used;
};

struct finder {
    struct stmt *stmts;
    size_t n, cap;
    struct pkg_slot *slots;
    size_t n_slots, used;
    struct strset packages;
};

static int pkg_add(struct finder *f, uint32_t stmt, uint32_t pkg, int64_t v)
{
    if ((f->used + 1) * 2 > f->n_slots) {
        size_t n = f->n_slots ? f->n_slots * 2 : 256;
        struct pkg_slot *s = calloc(n, sizeof *s);
        if (!s)
            return -1;
        for (size_t i = 0; i < f->n_slots; i++)
            if (f->slots[i].used) {
                size_t j = (f->slots[i].key * 0x9e3779b97f4a7c15ull >> 20) & (n - 1);
                while (s[j].used)
                    j = (j + 1) & (n - 1);
                s[j] = f->slots[i];
            }
        free(f->slots);
        f->slots = s;
        f->n_slots = n;
    }
    uint64_t key = (uint64_t)stmt << 32 | pkg;
    size_t j = (key * 0x9e3779b97f4a7c15ull >> 20) & (f->n_slots - 1);
    while (f->slots[j].used && f->slots[j].key != key)
        j = (j + 1) & (f->n_slots - 1);
    if (!f->slots[j].used) {
        f->slots[j] = (struct pkg_slot){key, 0, 1};
        f->used++;
    }
    f->slots[j].bytes = flametree_add(f->slots[j].bytes, v);
    return 0;
}

static int by_bytes(const void *a, const void *b)
{
    const struct stmt *x = a, *y = b;
    return x->bytes < y->bytes   ? 1
           : x->bytes > y->bytes ? -1
                                 : (x->frame > y->frame) - (x->frame < y->frame);
}

int user_imports_source(const char *path, int64_t line, char *out, size_t len)
{
    out[0] = '\0';
    /* A profile is untrusted: only Python source files (never /proc or /sys, whose "regular"
     * files can block or never end), only regular files, and a bounded number of bytes. */
    size_t plen = strlen(path);
    struct stat st;
    if (line <= 0 || line > 100000 || plen < 4 || strcmp(path + plen - 3, ".py") ||
        !strncmp(path, "/proc/", 6) || !strncmp(path, "/sys/", 5) || !strncmp(path, "/dev/", 5) ||
        stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[512];
    int64_t at = 0;
    size_t budget = USER_IMPORTS_MAX_READ;
    int found = 0, depth = 0, reached = 0;
    size_t o = 0;
    while (budget > sizeof buf && fgets(buf, sizeof buf, f)) {
        size_t bl = strlen(buf);
        budget -= sizeof buf;
        int whole = bl && buf[bl - 1] == '\n';
        if (++at < line) {
            /* A line longer than the buffer continues in the next read: not a new line. */
            while (!whole && budget > sizeof buf && fgets(buf, sizeof buf, f)) {
                budget -= sizeof buf;
                bl = strlen(buf);
                whole = bl && buf[bl - 1] == '\n';
            }
            continue;
        }
        reached = 1;
        const char *s = buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!found) {
            if (strncmp(s, "import ", 7) && strncmp(s, "from ", 5))
                break;
            found = 1;
        }
        /* Copy with blanks squeezed, up to a comment; count parentheses to continue. */
        for (; *s && *s != '\n' && *s != '#'; s++) {
            if (*s == '(')
                depth++;
            else if (*s == ')')
                depth--;
            if (isspace((unsigned char)*s) && (o == 0 || out[o - 1] == ' ' || out[o - 1] == '('))
                continue;
            if (*s == ')' && o && out[o - 1] == ' ')
                o--;
            if (o + 1 < len && (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f)
                out[o++] = isspace((unsigned char)*s) ? ' ' : *s;
        }
        if (o && out[o - 1] == ',' && depth > 0 && o + 1 < len)
            out[o++] = ' ';
        int backslash = o && out[o - 1] == '\\';
        if (backslash)
            o--;
        if ((depth <= 0 && !backslash) || at >= line + 20)
            break;
    }
    fclose(f);
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    if (!found)
        out[0] = '\0';
    return found ? 0 : reached ? 1 : -1;
}

int user_imports_find(const struct flame_tree *t, size_t max, struct user_import **out,
                      size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    struct finder f = {0};
    uint32_t *owner = malloc((t->n_nodes ? t->n_nodes : 1) * sizeof *owner);
    uint32_t *stmt_of = malloc((t->n_frames ? t->n_frames : 1) * sizeof *stmt_of);
    uint32_t *pkg_of = malloc((t->n_frames ? t->n_frames : 1) * sizeof *pkg_of);
    uint32_t *pkg_node = malloc((t->n_nodes ? t->n_nodes : 1) * sizeof *pkg_node);
    int rc = -1;
    if (!owner || !stmt_of || !pkg_of || !pkg_node)
        goto out;
    memset(stmt_of, 0xff, t->n_frames * sizeof *stmt_of);
    /* The installed package of every frame, once. */
    for (size_t i = 0; i < t->n_frames; i++) {
        size_t len;
        const char *pk = package_of(t->strings.strs[t->frames[i].file], &len);
        pkg_of[i] = pk ? strset_intern(&f.packages, pk, len) : NONE;
    }
    owner[0] = NONE;
    pkg_node[0] = NONE;
    for (uint32_t i = 1; i < t->n_nodes; i++) {
        const struct flame_node *nd = &t->nodes[i];
        const struct flame_frame *fr = &t->frames[nd->frame];
        const struct flame_frame *pf = &t->frames[t->nodes[nd->parent].frame];
        owner[i] = owner[nd->parent];
        /* Bytes belong to the innermost installed package on the stack, so that the standard
         * library code numpy runs counts to numpy; a new statement starts afresh. */
        pkg_node[i] = pkg_of[nd->frame] != NONE ? pkg_of[nd->frame] : pkg_node[nd->parent];
        if (fr->kind == FLAME_IMPORT && pf->kind == FLAME_PLAIN && pf->line > 0 &&
            is_user_file(t->strings.strs[pf->file])) {
            uint32_t pframe = t->nodes[nd->parent].frame;
            if (stmt_of[pframe] == NONE) {
                if (f.n == f.cap) {
                    size_t cap = f.cap ? f.cap * 2 : 64;
                    struct stmt *s = realloc(f.stmts, cap * sizeof *s);
                    if (!s)
                        goto out;
                    f.stmts = s;
                    f.cap = cap;
                }
                f.stmts[f.n] =
                    (struct stmt){.frame = pframe, .widest_frame = NONE, .package = NONE};
                stmt_of[pframe] = (uint32_t)f.n++;
            }
            struct stmt *s = &f.stmts[stmt_of[pframe]];
            owner[i] = stmt_of[pframe];
            if (pkg_of[nd->frame] == NONE)
                pkg_node[i] = NONE;
            if (nd->total > s->widest) {
                s->widest = nd->total;
                s->widest_frame = nd->frame;
            }
        }
        if (owner[i] == NONE || nd->self == 0)
            continue;
        f.stmts[owner[i]].bytes = flametree_add(f.stmts[owner[i]].bytes, nd->self);
        if (pkg_node[i] != NONE && pkg_add(&f, owner[i], pkg_node[i], nd->self) < 0)
            goto out;
    }
    for (size_t j = 0; j < f.n_slots; j++) {
        if (!f.slots[j].used)
            continue;
        struct stmt *s = &f.stmts[f.slots[j].key >> 32];
        if (f.slots[j].bytes > s->package_bytes) {
            s->package_bytes = f.slots[j].bytes;
            s->package = (uint32_t)f.slots[j].key;
        }
    }
    if (f.n)
        qsort(f.stmts, f.n, sizeof *f.stmts, by_bytes);
    /* The program's directory: that of the widest user frame under the root. */
    char dir[512] = "";
    int64_t widest = -1;
    const struct flame_node *root = &t->nodes[0];
    for (uint32_t c = root->first_child; c < root->first_child + root->n_children; c++) {
        const char *file = flametree_file(t, c);
        const char *slash = strrchr(file, '/');
        if (is_user_file(file) && slash && t->nodes[c].total > widest &&
            (size_t)(slash - file) < sizeof dir) {
            widest = t->nodes[c].total;
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
        }
    }
    size_t n = 0;
    for (size_t k = 0; k < f.n && n < max; k++)
        n += f.stmts[k].bytes > 0;
    if (n) {
        struct user_import *rows = calloc(n, sizeof *rows);
        if (!rows)
            goto out;
        for (size_t k = 0; k < n; k++) {
            const struct stmt *s = &f.stmts[k];
            const struct flame_frame *fr = &t->frames[s->frame];
            const char *file = t->strings.strs[fr->file];
            user_imports_source(file, fr->line, rows[k].source, sizeof rows[k].source);
            snprintf(rows[k].file, sizeof rows[k].file, "%s",
                     imports_relative_path(file, dir[0] ? dir : NULL));
            rows[k].line = fr->line;
            rows[k].bytes = s->bytes;
            const char *mod =
                s->widest_frame != NONE ? t->strings.strs[t->frames[s->widest_frame].name] : "";
            snprintf(rows[k].module, sizeof rows[k].module, "%s",
                     !strncmp(mod, "import ", 7) ? mod + 7 : mod);
            if (s->package != NONE) {
                snprintf(rows[k].package, sizeof rows[k].package, "%s",
                         f.packages.strs[s->package]);
                rows[k].package_bytes = s->package_bytes;
            }
        }
        *out = rows;
        *n_out = n;
    }
    rc = 0;
out:
    free(owner);
    free(stmt_of);
    free(pkg_of);
    free(pkg_node);
    free(f.stmts);
    free(f.slots);
    strset_free(&f.packages);
    return rc;
}
