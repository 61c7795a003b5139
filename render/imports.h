/*
 * imports.h - collapsing CPython's import machinery into one "import <module>" frame.
 *
 * An import statement runs a dozen frames of importlib (<frozen importlib._bootstrap>,
 * <frozen importlib._bootstrap_external>, zipimport, importlib.import_module) before the
 * imported module's body runs as a "<module>" frame. For a person asking "what does this
 * import cost?", those frames are noise. A maximal run of machinery frames followed by a
 * "<module>" frame is replaced by a single frame "import numpy.random" (the name derived from
 * the module's filename), which keeps the module body's callees as children. The body frame
 * of a module of the program's own files (not the standard library, not an installed
 * package) stays below its "import x" frame: its line is the statement that runs, which
 * "imports in your code" (user_imports.h) reports.
 *
 * Runs that end without reaching a module body (the allocations of reading and unmarshalling
 * the .pyc, creating an extension module) are named after the module whose body another
 * stack reached through the longest identical machinery prefix (imports_learn first, over
 * every stack). When several modules share that prefix (`from pkg import a, b` runs the same
 * lines for both), the frame is named "import a, b". When none does (a module compiled into
 * the interpreter or a C extension has no Python body at all), the importing frame's source
 * line names it when readable ("from _struct import *" in struct.py:13: "import _struct",
 * relative imports resolved against the importer's package); otherwise the frame says what
 * the machinery was doing and where from: "import (built-in module, from struct.py:13)",
 * "(extension module, ...)", "(dynamic import, ...)" for a line that is no import statement
 * (__import__, importlib.import_module), "(reading compiled code, ...)", "(searching sys.path,
 * ...)". No site is left "unknown".
 *
 * Paths are arrays of frame indexes of a flame_tree, root first.
 */
#ifndef MEMSNAP_IMPORTS_H
#define MEMSNAP_IMPORTS_H

#include <stddef.h>
#include <stdint.h>

#include "flametree.h"

/* Whether a frame with this function name and filename belongs to the import system. */
int imports_is_machinery(const char *name, const char *filename);

/* The dotted module name of a module's source file: "<frozen os>" -> "os",
 * ".../site-packages/numpy/random/__init__.py" -> "numpy.random", ".../lib/python3.11/json/
 * decoder.py" -> "json.decoder"; a file under script_dir (the directory of the program's
 * first frame, may be NULL) is named relative to it; otherwise the file's base name.
 * Always writes a NUL-terminated name into out (len >= 2). */
void imports_module_name(const char *filename, const char *script_dir, char *out, size_t len);

/* The part of `filename` below its import root: after the last site-packages/ or
 * dist-packages/, the standard library's directory, or script_dir (may be NULL); else the
 * whole name. Points into filename. Two checkouts of one program compare equal this way. */
const char *imports_relative_path(const char *filename, const char *script_dir);

struct imports;

/* NULL on ENOMEM. */
struct imports *imports_new(void);
void imports_free(struct imports *im);

/* Pass 1: records which module each machinery prefix of `path` leads to. 0 or -1 (ENOMEM). */
int imports_learn(struct imports *im, struct flame_tree *t, const uint32_t *path, size_t n);

/* Pass 2: rewrites `path` in place, collapsing its machinery runs; *n shrinks accordingly.
 * 0 or -1 (ENOMEM, path unchanged in meaning but possibly partly collapsed). */
int imports_collapse(struct imports *im, struct flame_tree *t, uint32_t *path, size_t *n);

#endif
