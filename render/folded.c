/*
 * folded.c - folded stack output (see folded.h), walking the tree depth first.
 */
#include <stdlib.h>
#include <string.h>

#include "folded.h"
#include "svg.h"

void folded_label(const struct flame_tree *t, uint32_t node, char *buf, size_t len)
{
    const struct flame_frame *f = &t->frames[t->nodes[node].frame];
    const char *name = t->strings.strs[f->name], *file = t->strings.strs[f->file];
    if (f->kind != FLAME_PLAIN || !file[0])
        snprintf(buf, len, "%s", name);
    else if (f->line > 0)
        snprintf(buf, len, "%s (%s:%lld)", name, file, (long long)f->line);
    else
        snprintf(buf, len, "%s (%s)", name, file);
    for (char *c = buf; *c; c++)
        if (*c == ';' || *c == '\n' || *c == '\r')
            *c = '_';
}

struct walk {
    FILE *out;
    const struct flame_tree *t;
    char *path; /* the current stack, "a;b;c" */
    size_t len, cap;
    char label[1200]; /* shared, not on the stack: recursion can be thousands deep */
};

static int walk_node(struct walk *w, uint32_t id, uint32_t *kids)
{
    const struct flame_node *n = &w->t->nodes[id];
    size_t saved = w->len;
    if (id != 0) {
        folded_label(w->t, id, w->label, sizeof w->label);
        size_t l = strlen(w->label);
        if (w->len + l + 2 > w->cap) {
            size_t cap = (w->cap + l + 2) * 2;
            char *p = realloc(w->path, cap);
            if (!p)
                return -1;
            w->path = p;
            w->cap = cap;
        }
        if (w->len)
            w->path[w->len++] = ';';
        memcpy(w->path + w->len, w->label, l + 1);
        w->len += l;
        if (n->self > 0 || (w->t->has_base && n->base_self > 0)) {
            if (w->t->has_base)
                fprintf(w->out, "%s %lld %lld\n", w->path, (long long)n->base_self,
                        (long long)n->self);
            else
                fprintf(w->out, "%s %lld\n", w->path, (long long)n->self);
        }
    }
    svg_child_order(w->t, id, kids);
    for (uint32_t i = 0; i < n->n_children; i++)
        if (walk_node(w, kids[i], kids + n->n_children) < 0)
            return -1;
    w->len = saved;
    if (w->path)
        w->path[saved] = '\0';
    return 0;
}

int folded_write(FILE *out, const struct flame_tree *t, ms_error *err)
{
    /* Children orders of all nodes on one path fit in n_nodes entries. */
    struct walk w = {.out = out, .t = t};
    uint32_t *kids = malloc((t->n_nodes + 1) * sizeof *kids);
    if (!kids)
        return ms_error_set(err, "out of memory writing folded stacks");
    int rc = walk_node(&w, 0, kids);
    free(kids);
    free(w.path);
    if (rc < 0)
        return ms_error_set(err, "out of memory writing folded stacks");
    fflush(out);
    if (ferror(out))
        return ms_error_set(err, "writing folded stacks failed (disk full or closed pipe?)");
    return 0;
}
