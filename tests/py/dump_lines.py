"""dump_lines.py - what this CPython says the line of every instruction is.

For tests/unit/test_linetable.c: compiles big, varied stdlib modules, walks every nested code
object and prints, per code object, its raw line table and the line CPython itself reports
for each 2-byte code unit, so the C decoders can be required to agree on all of them.

Output, per code object:
  C <co_firstlineno> <code bytes> <line table as hex, or "-" when empty>
  A <line per code unit from PyCode_Addr2Line(), the C API behind f_lineno/tracebacks>
  K <line per code unit from co_lines() (3.10+), "x" where no range covers it>
Lines are -1 where CPython says "no line" (None). Ends with "T <code objects> <code units>".
"""
import ctypes
import os
import sys
import sysconfig
import types

MODULES = ["os", "json.decoder", "argparse", "asyncio.base_events", "typing", "dataclasses",
           "email._header_value_parser", "inspect"]

addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int


def code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_objects(const)


def line_table(code):
    if sys.version_info >= (3, 10):
        return code.co_linetable
    return code.co_lnotab


def main():
    out = sys.stdout
    ncode = nunits = 0
    for name in MODULES:
        # From the source file: on 3.11+ some of these modules are frozen into the binary.
        path = os.path.join(sysconfig.get_path("stdlib"), *name.split(".")) + ".py"
        with open(path, "rb") as f:
            source = f.read()
        top = compile(source, path, "exec", dont_inherit=True)
        for code in code_objects(top):
            nbytes = len(code.co_code)
            table = line_table(code)
            out.write("C %d %d %s\n" % (code.co_firstlineno, nbytes, table.hex() or "-"))
            lines = [addr2line(code, off) for off in range(0, nbytes, 2)]
            out.write("A " + " ".join(map(str, lines)) + "\n")
            if sys.version_info >= (3, 10):
                per_unit = ["x"] * (nbytes // 2)
                for start, end, line in code.co_lines():
                    for off in range(start, min(end, nbytes), 2):
                        per_unit[off // 2] = str(-1 if line is None else line)
                out.write("K " + " ".join(per_unit) + "\n")
            ncode += 1
            nunits += nbytes // 2
    out.write("T %d %d\n" % (ncode, nunits))


main()
