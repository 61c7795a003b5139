/*
 * user_imports.h - "imports in your code, by cost": the import statements that live in the
 * program's own files (not the standard library, not installed packages), with the memory
 * of the metric that what they pulled in holds.
 *
 * In the collapsed tree (imports.h) an import statement is a Python frame of the user's code
 * (its file and line: the statement) with "import x" children. A statement's cost is every
 * byte below those children, except what another statement of the user's code below them
 * pulled in: that statement has its own row. So `settings.py: from app import utils` and
 * `utils.py: from numpy.random import Generator` are two rows, numpy's cost in the second;
 * rows sort by cost. For each row the biggest installed (site-packages, dist-packages)
 * top-level package below it is named with its part of the cost ("numpy: 6.8 MiB of it").
 *
 * The statement's source text is read from its file when that is a readable regular ".py"
 * file outside /proc, /sys and /dev (at most 8 MiB of it) and the line is an import
 * statement ("import ..." / "from ... import ..."); nothing else of a file named by a
 * profile is ever shown.
 */
#ifndef MEMSNAP_USER_IMPORTS_H
#define MEMSNAP_USER_IMPORTS_H

#include <stddef.h>
#include <stdint.h>

#include "flametree.h"

struct user_import {
    char file[512]; /* relative to the program's directory when under it */
    int64_t line;
    char source[200];  /* the statement's text, "" when unreadable */
    char module[200];  /* the module it pulled in (the widest), e.g. "numpy" */
    int64_t bytes;     /* its cost in the tree's metric */
    char package[128]; /* the biggest installed package below it, "" when none */
    int64_t package_bytes;
};

/* Finds the statements, sorted by cost, at most `max` of them, into a malloc'd array
 * (*out, *n; NULL and 0 when none). -1 on ENOMEM. */
int user_imports_find(const struct flame_tree *t, size_t max, struct user_import **out, size_t *n);

/* Reads line `line` of `path` when it is a readable regular file and that line starts an
 * import statement; joins a parenthesised continuation, squeezes blanks. 0 when found, 1
 * when the line was read but is no import statement, -1 when it cannot be read. */
int user_imports_source(const char *path, int64_t line, char *out, size_t len);

#endif
