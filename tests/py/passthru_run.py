"""passthru_run.py - runs a script with pass-through allocator wrappers installed first.

    python3 passthru_run.py LIBRARY SCRIPT [ARGS...]

LIBRARY is tests/bench/passthru.c built as a shared library: its passthru_install() wraps the
functions memsnap's sampled mode wraps, with wrappers that only call through. The script then
runs as __main__ with sys.argv = [SCRIPT, ARGS...]. The benchmark (scripts/bench.d/run.sh)
uses it to measure what wrapping CPython's allocator costs by itself, the floor under any
sampling profiler that works this way.
"""
import ctypes
import runpy
import sys

lib = ctypes.PyDLL(sys.argv[1])  # PyDLL: the call keeps the GIL, as PyMem_SetAllocator needs
if lib.passthru_install() != 0:
    sys.exit("passthru_run.py: CPython's allocator functions were not found, or its "
             "allocators are not the default pymalloc ones (PYTHONMALLOC set?)")
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
