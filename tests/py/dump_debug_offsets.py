"""dump_debug_offsets.py - prints this interpreter's own _Py_DebugOffsets (3.13+) as hex.

Used by tests/unit/test_py_offsets.c to check the generated 3.13 row against the layout a
live interpreter declares about itself, read the way memsnap reads it (start of _PyRuntime).
Usage: python3 dump_debug_offsets.py NBYTES   prints "debug <hex>" (or "none" before 3.13).
"""
import ctypes
import sys

if sys.version_info < (3, 13):
    print("none")
    sys.exit(0)
nbytes = int(sys.argv[1])
runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
print("debug " + ctypes.string_at(runtime, nbytes).hex())
