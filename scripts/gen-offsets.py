#!/usr/bin/env python3
"""gen-offsets.py - generates sampler/python/py_offsets_table.c from CPython's own headers.

memsnap reads CPython's private structs out of another process, so it needs, per minor
version, the byte offset of every field it touches (struct py_offsets in sampler/python/py_offsets.h).
Typing those numbers in by hand is how profilers end up reading garbage; instead this script
writes a small C probe per version that includes that version's headers (internal ones too,
with Py_BUILD_CORE), prints offsetof()/sizeof() of every field, compiles it with cc, runs it,
and emits one table row per version. The result is checked in so memsnap builds anywhere.

For 3.13 and 3.14 it also emits a debug table: for each of our fields that the interpreter's
own _Py_DebugOffsets (at the start of _PyRuntime) also states, where that uint64 sits, so the
reader can take those fields from the live process (they move between patch releases). The probe cross-checks those pairs
against the header's _Py_DebugOffsets initializer, so a wrong pairing fails generation. It
also checks that the str `state` bit fields sit where sampler/python/pystring.c's masks expect.

Usage:
  gen-offsets.py [-o FILE]   regenerate (default: sampler/python/py_offsets_table.c)
  gen-offsets.py --check     regenerate into memory and diff against the checked-in file for
                             every version whose headers exist; rows of versions whose headers
                             are absent are kept and reported as not checked. Exit 1 on any
                             difference. Also compares Debian's /usr/include/python3.11 (when
                             it has internal/) with the 3.11 row.

Runs with any python3 >= 3.8, stdlib only; needs a C compiler ($CC, default cc).
"""

import argparse
import difflib
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "sampler", "python", "py_offsets_table.c")
MINORS = range(8, 15)
DEBIAN_INCLUDE = "/usr/include/python3.11"

# Per-version models, exactly as documented by the enums in sampler/python/py_offsets.h.
FRAME_MODEL = {8: "PY_FRAME_OBJECT", 9: "PY_FRAME_OBJECT", 10: "PY_FRAME_OBJECT",
               11: "PY_FRAME_CFRAME", 12: "PY_FRAME_CFRAME", 13: "PY_FRAME_CURRENT",
               14: "PY_FRAME_CURRENT"}
LASTI_MODEL = {8: "PY_LASTI_BYTES", 9: "PY_LASTI_BYTES", 10: "PY_LASTI_WORDS",
               11: "PY_LASTI_PREV_INSTR", 12: "PY_LASTI_PREV_INSTR", 13: "PY_LASTI_INSTR_PTR",
               14: "PY_LASTI_INSTR_PTR"}
LINES_MODEL = {8: "PY_LINES_LNOTAB", 9: "PY_LINES_LNOTAB", 10: "PY_LINES_310",
               11: "PY_LINES_LOCATIONS", 12: "PY_LINES_LOCATIONS", 13: "PY_LINES_LOCATIONS",
               14: "PY_LINES_LOCATIONS"}

# Every int32_t field of struct py_offsets, in declaration order, with the C expression that
# gives it for a range of minor versions (inclusive). Versions outside every range get -1.
FIELDS = [
    ("runtime_size", [(8, 14, "sizeof(_PyRuntimeState)")]),
    ("runtime_interpreters_head", [(8, 14, "offsetof(_PyRuntimeState, interpreters.head)")]),
    ("runtime_interpreters_main", [(8, 14, "offsetof(_PyRuntimeState, interpreters.main)")]),
    ("runtime_main_thread", [(8, 14, "offsetof(_PyRuntimeState, main_thread)")]),
    ("runtime_gilstate_tstate_current",
     [(8, 11, "offsetof(_PyRuntimeState, gilstate.tstate_current)")]),
    ("runtime_gil_locked", [(8, 11, "offsetof(_PyRuntimeState, ceval.gil.locked)")]),
    ("runtime_gil_last_holder", [(8, 11, "offsetof(_PyRuntimeState, ceval.gil.last_holder)")]),
    ("runtime_debug_offsets", [(13, 14, "offsetof(_PyRuntimeState, debug_offsets)")]),
    ("interp_size", [(8, 14, "sizeof(PyInterpreterState)")]),
    ("interp_next", [(8, 14, "offsetof(PyInterpreterState, next)")]),
    ("interp_id", [(8, 14, "offsetof(PyInterpreterState, id)")]),
    ("interp_tstate_head", [(8, 10, "offsetof(PyInterpreterState, tstate_head)")]),
    ("interp_threads_head", [(11, 14, "offsetof(PyInterpreterState, threads.head)")]),
    ("interp_threads_main", [(13, 14, "offsetof(PyInterpreterState, threads.main)")]),
    ("interp_gil_ptr", [(12, 14, "offsetof(PyInterpreterState, ceval.gil)")]),
    ("gil_locked", [(8, 14, "offsetof(struct _gil_runtime_state, locked)")]),
    ("gil_last_holder", [(8, 14, "offsetof(struct _gil_runtime_state, last_holder)")]),
    ("tstate_size", [(8, 14, "sizeof(PyThreadState)")]),
    ("tstate_prev", [(8, 14, "offsetof(PyThreadState, prev)")]),
    ("tstate_next", [(8, 14, "offsetof(PyThreadState, next)")]),
    ("tstate_interp", [(8, 14, "offsetof(PyThreadState, interp)")]),
    ("tstate_frame", [(8, 10, "offsetof(PyThreadState, frame)")]),
    ("tstate_cframe", [(11, 12, "offsetof(PyThreadState, cframe)")]),
    ("tstate_current_frame", [(13, 14, "offsetof(PyThreadState, current_frame)")]),
    ("tstate_thread_id", [(8, 14, "offsetof(PyThreadState, thread_id)")]),
    ("tstate_native_thread_id", [(11, 14, "offsetof(PyThreadState, native_thread_id)")]),
    ("tstate_state", [(13, 14, "offsetof(PyThreadState, state)")]),
    ("cframe_current_frame", [(11, 12, "offsetof(_PyCFrame, current_frame)")]),
    ("cframe_previous", [(11, 12, "offsetof(_PyCFrame, previous)")]),
    ("frame_back", [(8, 10, "offsetof(PyFrameObject, f_back)")]),
    ("frame_code", [(8, 10, "offsetof(PyFrameObject, f_code)")]),
    ("frame_lasti", [(8, 10, "offsetof(PyFrameObject, f_lasti)")]),
    ("frame_lineno", [(8, 10, "offsetof(PyFrameObject, f_lineno)")]),
    ("iframe_size", [(11, 14, "sizeof(_PyInterpreterFrame)")]),
    ("iframe_code", [(11, 12, "offsetof(_PyInterpreterFrame, f_code)"),
                     (13, 14, "offsetof(_PyInterpreterFrame, f_executable)")]),
    ("iframe_previous", [(11, 14, "offsetof(_PyInterpreterFrame, previous)")]),
    ("iframe_instr", [(11, 12, "offsetof(_PyInterpreterFrame, prev_instr)"),
                      (13, 14, "offsetof(_PyInterpreterFrame, instr_ptr)")]),
    ("iframe_owner", [(11, 14, "offsetof(_PyInterpreterFrame, owner)")]),
    ("owner_cstack", [(12, 14, "FRAME_OWNED_BY_CSTACK")]),
    # Owners from this value up have no Python code of their own (checked in the probe).
    ("owner_skip_from", [(12, 13, "FRAME_OWNED_BY_CSTACK"),
                         (14, 14, "FRAME_OWNED_BY_INTERPRETER")]),
    ("code_tag_mask", [(14, 14, "Py_TAG_BITS")]),
    ("code_size", [(8, 14, "sizeof(PyCodeObject)")]),
    ("code_firstlineno", [(8, 14, "offsetof(PyCodeObject, co_firstlineno)")]),
    ("code_filename", [(8, 14, "offsetof(PyCodeObject, co_filename)")]),
    ("code_name", [(8, 14, "offsetof(PyCodeObject, co_name)")]),
    ("code_qualname", [(11, 14, "offsetof(PyCodeObject, co_qualname)")]),
    ("code_lnotab", [(8, 9, "offsetof(PyCodeObject, co_lnotab)")]),
    ("code_linetable", [(10, 14, "offsetof(PyCodeObject, co_linetable)")]),
    ("code_code", [(8, 10, "offsetof(PyCodeObject, co_code)")]),
    ("code_code_adaptive", [(11, 14, "offsetof(PyCodeObject, co_code_adaptive)")]),
    ("object_type", [(8, 14, "offsetof(PyObject, ob_type)")]),
    ("varobject_size", [(8, 14, "offsetof(PyVarObject, ob_size)")]),
    ("bytes_sval", [(8, 14, "offsetof(PyBytesObject, ob_sval)")]),
    ("unicode_length", [(8, 14, "offsetof(PyASCIIObject, length)")]),
    ("unicode_state", [(8, 14, "offsetof(PyASCIIObject, state)")]),
    ("unicode_ascii_size", [(8, 14, "sizeof(PyASCIIObject)")]),
    ("unicode_compact_size", [(8, 14, "sizeof(PyCompactUnicodeObject)")]),
    ("unicode_data_ptr", [(8, 14, "offsetof(PyUnicodeObject, data)")]),
]

# 3.13+: (group.field inside _Py_DebugOffsets, our field). Each pair is verified by the probe:
# the expression the header's _Py_DebugOffsets initializer uses for that entry must equal ours.
# At run time memsnap takes these fields from the live process (layouts move between patch
# releases), so every field the debug table states must be paired here.
DEBUG_PAIRS_313 = [
    ("runtime_state.size", "runtime_size"),
    ("runtime_state.interpreters_head", "runtime_interpreters_head"),
    ("interpreter_state.size", "interp_size"),
    ("interpreter_state.id", "interp_id"),
    ("interpreter_state.next", "interp_next"),
    ("interpreter_state.threads_head", "interp_threads_head"),
    ("interpreter_state.ceval_gil", "interp_gil_ptr"),
    ("thread_state.size", "tstate_size"),
    ("thread_state.prev", "tstate_prev"),
    ("thread_state.next", "tstate_next"),
    ("thread_state.interp", "tstate_interp"),
    ("thread_state.current_frame", "tstate_current_frame"),
    ("thread_state.thread_id", "tstate_thread_id"),
    ("thread_state.native_thread_id", "tstate_native_thread_id"),
    ("interpreter_frame.size", "iframe_size"),
    ("interpreter_frame.previous", "iframe_previous"),
    ("interpreter_frame.executable", "iframe_code"),
    ("interpreter_frame.instr_ptr", "iframe_instr"),
    ("interpreter_frame.owner", "iframe_owner"),
    ("code_object.size", "code_size"),
    ("code_object.filename", "code_filename"),
    ("code_object.name", "code_name"),
    ("code_object.qualname", "code_qualname"),
    ("code_object.linetable", "code_linetable"),
    ("code_object.firstlineno", "code_firstlineno"),
    ("code_object.co_code_adaptive", "code_code_adaptive"),
    ("pyobject.ob_type", "object_type"),
    ("bytes_object.ob_size", "varobject_size"),
    ("bytes_object.ob_sval", "bytes_sval"),
    ("unicode_object.state", "unicode_state"),
    ("unicode_object.length", "unicode_length"),
    ("unicode_object.asciiobject_size", "unicode_ascii_size"),
]
DEBUG_PAIRS = {13: DEBUG_PAIRS_313,
               14: DEBUG_PAIRS_313 + [("interpreter_state.threads_main", "interp_threads_main")]}
DEBUG_MINORS = sorted(DEBUG_PAIRS)

# Bit fields of PyASCIIObject.state set to all ones, and the first byte of the state word
# that sampler/python/pystring.c expects for each (its STATE_* masks; x86_64 is little-endian).
STR_STATE_BITS = [("interned", 3), ("kind", 7), ("compact", 1), ("ascii", 1)]
STR_STATE_MASKS = {"interned": 0x03, "kind": 0x1c, "compact": 0x20, "ascii": 0x40}

# Internal headers that hold the structs above, in include order; absent ones are skipped.
INTERNAL_HEADERS = ["pycore_pystate.h", "pycore_runtime.h", "pycore_interp.h", "pycore_gil.h",
                    "pycore_frame.h", "pycore_code.h", "pycore_stackref.h",
                    "pycore_interpframe_structs.h", "pycore_debug_offsets.h"]


def fail(msg):
    sys.stderr.write("gen-offsets: %s\n" % msg)
    sys.exit(1)


def pyenv_include_dirs():
    """{minor: include dir} for every pyenv 3.8-3.14 whose headers include internal/."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    try:
        out = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, universal_newlines=True, check=True)
        root = out.stdout.strip() or root
    except (OSError, subprocess.CalledProcessError):
        pass
    found = {}
    for minor in MINORS:
        pattern = os.path.join(root, "versions", "3.%d.*" % minor, "include", "python3.%d" % minor)
        # Several patch releases may be installed: take the newest, compared numerically.
        dirs = [d for d in glob.glob(pattern) if os.path.isdir(os.path.join(d, "internal"))]
        def patch_of(d):
            name = os.path.basename(os.path.dirname(os.path.dirname(d)))
            tail = name.split(".")[2] if name.count(".") >= 2 else "0"
            return int(tail) if tail.isdigit() else -1
        if dirs:
            found[minor] = max(dirs, key=patch_of)
    return found


def debug_initializer_exprs(include_dir):
    """{"group.field": C expression} parsed from the _Py_DebugOffsets initializer (3.13:
    pycore_runtime_init.h; 3.14: _Py_DebugOffsets_INIT in pycore_debug_offsets.h)."""
    text, start, path = "", -1, None
    for name, marker in (("pycore_debug_offsets.h", "#define _Py_DebugOffsets_INIT("),
                         ("pycore_runtime_init.h", ".debug_offsets = {")):
        path = os.path.join(include_dir, "internal", name)
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            start = text.find(marker)
            if start >= 0:
                break
    if start < 0:
        fail("%s: no _Py_DebugOffsets initializer" % include_dir)
    exprs = {}
    group = None
    for raw in text[start:].splitlines()[1:]:
        line = raw.rstrip("\\ \t")
        m = re.match(r"\s*\.(\w+) = \{\s*$", line)
        if m:
            group = m.group(1)
            continue
        if re.match(r"\s*\},?\s*$", line):
            if group is None:
                break
            group = None
            continue
        m = re.match(r"\s*\.(\w+) = (.*?),?\s*$", line)
        if m and group:
            exprs[group + "." + m.group(1)] = m.group(2)
    return exprs


def probe_source(minor, include_dir):
    lines = ["/* generated probe for CPython 3.%d */" % minor,
             "#define Py_BUILD_CORE 1",
             "#include <Python.h>"]
    if minor <= 10:
        lines.append("#include <frameobject.h>")
    for h in INTERNAL_HEADERS:
        if os.path.exists(os.path.join(include_dir, "internal", h)):
            lines.append("#include <internal/%s>" % h)
    lines += ["#include <stddef.h>", "#include <stdio.h>", "#include <string.h>", "",
              "int main(void)", "{",
              '    printf("version %s\\n", PY_VERSION);',
              '    printf("major %d\\n", PY_MAJOR_VERSION);',
              '    printf("minor %d\\n", PY_MINOR_VERSION);']
    for name, ranges in FIELDS:
        for lo, hi, expr in ranges:
            if lo <= minor <= hi:
                lines.append('    printf("field %s %%ld\\n", (long)(%s));' % (name, expr))
    # The str state bit fields: pystring.c decodes them with fixed masks, checked here.
    lines.append("    PyASCIIObject s;")
    for bit, value in STR_STATE_BITS:
        lines += ["    memset(&s, 0, sizeof s);",
                  "    s.state.%s = %d;" % (bit, value),
                  '    printf("strbit %s %%u\\n", (unsigned)((unsigned char *)&s.state)[0]);'
                  % bit]
    if minor >= 14:
        # Every owner value from owner_skip_from up is a frame without Python code.
        lines += ['    printf("owner_order %d\\n", (int)(FRAME_OWNED_BY_CSTACK > '
                  'FRAME_OWNED_BY_INTERPRETER && FRAME_OWNED_BY_INTERPRETER > '
                  'FRAME_OWNED_BY_FRAME_OBJECT && FRAME_OWNED_BY_FRAME_OBJECT > '
                  'FRAME_OWNED_BY_GENERATOR));',
                  '    printf("tuple_ob_item %zu\\n", offsetof(PyTupleObject, ob_item));']
    if minor in DEBUG_PAIRS:
        lines += ['    printf("debug_size %zu\\n", sizeof(_Py_DebugOffsets));',
                  '    printf("debug_cookie_pos %zu\\n", offsetof(_Py_DebugOffsets, cookie));',
                  '    printf("debug_cookie_size %zu\\n",'
                  ' sizeof(((_Py_DebugOffsets *)0)->cookie));',
                  '    printf("debug_cookie %s\\n", _Py_Debug_Cookie);',
                  '    printf("debug_version_pos %zu\\n", offsetof(_Py_DebugOffsets, version));',
                  '    printf("debug_free_threaded_pos %zu\\n",'
                  ' offsetof(_Py_DebugOffsets, free_threaded));']
        exprs = debug_initializer_exprs(include_dir)
        ours = {name: ranges for name, ranges in FIELDS}
        for dname, field in DEBUG_PAIRS[minor]:
            if dname not in exprs:
                fail("3.%d: _Py_DebugOffsets initializer has no %s" % (minor, dname))
            our_expr = [e for lo, hi, e in ours[field] if lo <= minor <= hi][0]
            lines.append('    printf("debug %s %%zu %s %%d\\n", offsetof(_Py_DebugOffsets, %s),'
                         ' (int)((%s) == (%s)));' % (dname, field, dname, exprs[dname], our_expr))
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


def run_probe(minor, include_dir, extra_includes=()):
    """Compiles and runs the probe; returns (version, {field: value}, debug info dict)."""
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory(prefix="memsnap-offsets-") as tmp:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(probe_source(minor, include_dir))
        cmd = [cc, "-std=gnu11", "-w", "-I" + include_dir]
        cmd += ["-I" + d for d in extra_includes]
        cmd += [src, "-o", exe]
        built = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
        if built.returncode != 0:
            fail("3.%d: probe against %s does not compile:\n%s"
                 % (minor, include_dir, built.stdout[-4000:]))
        ran = subprocess.run([exe], stdout=subprocess.PIPE, universal_newlines=True)
        if ran.returncode != 0:
            fail("3.%d: probe exited with %d" % (minor, ran.returncode))
    values, debug, info = {}, [], {}
    for line in ran.stdout.splitlines():
        parts = line.split()
        if parts[0] == "field":
            values[parts[1]] = int(parts[2])
        elif parts[0] == "debug":
            dname, pos, field, same = parts[1], int(parts[2]), parts[3], parts[4]
            if same != "1":
                fail("3.%d: _Py_DebugOffsets.%s disagrees with %s" % (minor, dname, field))
            debug.append((dname, pos, field))
        elif parts[0] == "strbit":
            if int(parts[2]) != STR_STATE_MASKS[parts[1]]:
                fail("3.%d: str state bit %s is byte mask 0x%02x, sampler/python/pystring.c assumes "
                     "0x%02x" % (minor, parts[1], int(parts[2]), STR_STATE_MASKS[parts[1]]))
        else:
            info[parts[0]] = parts[1]
    if info.get("owner_order", "1") != "1":
        fail("3.%d: frame owner values are not ordered as owner_skip_from assumes" % minor)
    if info.get("major") != "3" or info.get("minor") != str(minor):
        fail("%s: headers are for %s.%s, expected 3.%d"
             % (include_dir, info.get("major"), info.get("minor"), minor))
    return info["version"], values, debug, info


def format_row(minor, version, values):
    out = ["    {", "        /* CPython 3.%d */" % minor,
           "        .major = 3,", "        .minor = %d," % minor,
           '        .generated_from = "%s",' % version,
           "        .frame_model = %s," % FRAME_MODEL[minor],
           "        .lasti_model = %s," % LASTI_MODEL[minor],
           "        .linetable_model = %s," % LINES_MODEL[minor]]
    for name, _ in FIELDS:
        out.append("        .%s = %d," % (name, values.get(name, -1)))
    out.append("    },")
    return "\n".join(out) + "\n"


def format_debug(minor, version, debug, info):
    out = ["/* CPython 3.%d (from %s): where _Py_DebugOffsets states our fields. */"
           % (minor, version),
           "static const struct py_debug_layout debug_layout_3%d = {" % minor,
           "    .size = %s," % info["debug_size"],
           '    .cookie = "%s",' % info["debug_cookie"],
           "    .cookie_pos = %s," % info["debug_cookie_pos"],
           "    .cookie_size = %s," % info["debug_cookie_size"],
           "    .version_pos = %s," % info["debug_version_pos"],
           "    .free_threaded_pos = %s," % info["debug_free_threaded_pos"],
           "};", "",
           "static const struct py_debug_check debug_checks_3%d[] = {" % minor]
    for dname, pos, field in debug:
        out.append('    {"%s", %d, offsetof(struct py_offsets, %s)},' % (dname, pos, field))
    out += ["};", "", ""]
    return "\n".join(out)


def format_debug_tables(minors):
    out = [DEBUG_FOOTER_MARK, "const struct py_debug_table py_debug_tables[] = {"]
    for m in minors:
        out.append("    {%d, &debug_layout_3%d, debug_checks_3%d," % (m, m, m))
        out.append("     (int)(sizeof debug_checks_3%d / sizeof debug_checks_3%d[0])}," % (m, m))
    out += ["};", "",
            "const int py_debug_tables_count = (int)(sizeof(py_debug_tables) / "
            "sizeof(py_debug_tables[0]));", ""]
    return "\n".join(out)


DEBUG_FOOTER_MARK = "/* Every _Py_DebugOffsets description above, by minor version. */"


BANNER = """/*
 * py_offsets_table.c - GENERATED by scripts/gen-offsets.py; do not edit by hand.
 *
 * One row of struct py_offsets per CPython minor version, each compiled from that version's
 * own headers (offsetof/sizeof, internal headers with Py_BUILD_CORE), so memsnap can read
 * interpreter state out of a process without any Python headers at build time. Regenerate
 * with `python3 scripts/gen-offsets.py`; `--check` (run by make test) diffs it against the
 * installed headers. -1 means the version has no such field.
 */
#include <stddef.h>

#include "py_offsets.h"

const struct py_offsets py_offsets_table[] = {
"""

COUNT = """};

const int py_offsets_count = (int)(sizeof(py_offsets_table) / sizeof(py_offsets_table[0]));

"""

ROW_RE = re.compile(r"    \{\n        /\* CPython 3\.(\d+) \*/\n.*?\n    \},\n", re.S)
DEBUG_RE = re.compile(r"/\* CPython 3\.(\d+) \(from [^\n]*\n.*?\nstatic const struct py_debug_check "
                      r".*?\n\};\n\n", re.S)


def existing_parts(path):
    """Rows {minor: text} and debug blocks {minor: text} of the checked-in table, to keep
    those whose headers are absent here."""
    if not os.path.exists(path):
        return {}, {}
    with open(path) as f:
        text = f.read()
    rows = {int(m.group(1)): m.group(0) for m in ROW_RE.finditer(text)}
    debug = {int(m.group(1)): m.group(0) for m in DEBUG_RE.finditer(text)}
    return rows, debug


def parse_headers_option(values):
    """--headers 3.14=DIR[:EXTRA]... -> {14: (DIR, [EXTRA...])}: headers of a build tree that
    is not installed (DIR = the tree's Include, EXTRA = where its pyconfig.h is)."""
    out = {}
    for v in values or []:
        m = re.match(r"3\.(\d+)=(.+)$", v)
        if not m:
            fail("--headers wants 3.MINOR=DIR[:EXTRA], not %r" % v)
        parts = m.group(2).split(":")
        out[int(m.group(1))] = (parts[0], parts[1:])
    return out


def generate(path_for_kept_rows, extra_dirs=None):
    """Returns (text, checked minors, kept minors)."""
    dirs = {m: (d, []) for m, d in pyenv_include_dirs().items()}
    dirs.update(extra_dirs or {})
    old_rows, old_debug = existing_parts(path_for_kept_rows)
    rows, checked, kept, debug_blocks = {}, [], [], {}
    for minor in MINORS:
        if minor in dirs:
            version, values, debug, info = run_probe(minor, dirs[minor][0], dirs[minor][1])
            rows[minor] = format_row(minor, version, values)
            checked.append(minor)
            if minor in DEBUG_PAIRS:
                debug_blocks[minor] = format_debug(minor, version, debug, info)
        elif minor in old_rows:
            rows[minor] = old_rows[minor]
            kept.append(minor)
            if minor in old_debug:
                debug_blocks[minor] = old_debug[minor]
    for minor in DEBUG_MINORS:
        if minor in rows and minor not in debug_blocks:
            fail("no 3.%d headers and no checked-in 3.%d debug table to keep" % (minor, minor))
    dm = sorted(debug_blocks)
    text = (BANNER + "".join(rows[m] for m in sorted(rows)) + COUNT +
            "".join(debug_blocks[m] for m in dm) + format_debug_tables(dm))
    return text, checked, kept


def debian_check(table_text):
    """Compares Debian's 3.11 headers with the 3.11 row; returns a list of differences."""
    if not os.path.isdir(os.path.join(DEBIAN_INCLUDE, "internal")):
        print("not checked: Debian 3.11 headers absent (%s/internal)" % DEBIAN_INCLUDE)
        return []
    version, values, _, _ = run_probe(11, DEBIAN_INCLUDE, ["/usr/include"])
    m = [r for r in ROW_RE.finditer(table_text) if r.group(1) == "11"]
    if not m:
        return ["no 3.11 row to compare Debian's %s headers with" % version]
    theirs = dict(re.findall(r"\.(\w+) = (-?\d+),", format_row(11, version, values)))
    ours = dict(re.findall(r"\.(\w+) = (-?\d+),", m[0].group(0)))
    diffs = ["Debian %s: %s = %s, table has %s" % (version, k, theirs[k], ours.get(k))
             for k in theirs if theirs[k] != ours.get(k)]
    if not diffs:
        print("ok: Debian %s headers give the same 3.11 row" % version)
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default=TABLE)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--headers", action="append", metavar="3.MINOR=DIR[:EXTRA]",
                    help="use a build tree's headers for that version (DIR = its Include, "
                         "EXTRA = the directory holding its pyconfig.h)")
    args = ap.parse_args()
    if args.check:
        text, checked, kept = generate(TABLE, parse_headers_option(args.headers))
        with open(TABLE) as f:
            current = f.read()
        for minor in checked:
            print("checked: 3.%d" % minor)
        for minor in kept:
            print("not checked: 3.%d headers absent" % minor)
        problems = debian_check(current)
        if text != current:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(True), text.splitlines(True),
                "checked-in " + os.path.relpath(TABLE, ROOT), "regenerated"))
            problems.append("%s differs from the headers" % os.path.relpath(TABLE, ROOT))
        for p in problems:
            print("FAIL: " + p)
        sys.exit(1 if problems else 0)
    text, checked, kept = generate(args.output, parse_headers_option(args.headers))
    with open(args.output, "w") as f:
        f.write(text)
    for minor in kept:
        print("kept 3.%d row: headers absent" % minor)
    print("wrote %s (3.%s)" % (args.output, ", 3.".join(str(m) for m in checked + kept)))


if __name__ == "__main__":
    main()
