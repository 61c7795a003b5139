"""dump_strings.py - real str objects of this CPython, header bytes and characters on demand.

For tests/unit/test_pystring.c: for each test string, prints the first NBYTES bytes of the
object (read with ctypes.string_at(id(s), n), as memsnap reads them remotely) and the UTF-8
memsnap should produce; then reads "<address> <nbytes>" from stdin (the C side's
pystr_parse() answer) and prints those bytes, so the parse is checked against real memory.

Usage: dump_strings.py NBYTES
Protocol per string:  -> "S <index> <id> <header hex> <expected utf-8 hex or ->"
                      <- "<data address> <byte count>"   (or "skip")
                      -> "D <hex or ->"
Ends with "E <count>".
"""
import ctypes
import sys


class SubStr(str):
    """Instances of str subclasses are not compact: their characters live elsewhere."""


def café():
    pass


STRINGS = [
    "", "a", "hello world", "café", "\xff\xe9", "Привет", "日本", "🐍", "a🐍b",
    "é日🐍", "\ud800", "x\udcff y", "\U0010ffff", "nul\x00inside", "ab" * 5000,
    "é" * 3000, "日" * 2000, café.__code__.co_name, café.__code__.co_filename,
    SubStr("plain"), SubStr("Привет"), SubStr("🐍🐍"), SubStr(""),
]


def expected_utf8(s):
    # What memsnap must print: UTF-8, with lone surrogates replaced by U+FFFD.
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s).encode("utf-8")


def main():
    nbytes = int(sys.argv[1])
    for i, s in enumerate(STRINGS):
        header = ctypes.string_at(id(s), nbytes)
        want = expected_utf8(s).hex() or "-"
        print("S %d %d %s %s" % (i, id(s), header.hex(), want), flush=True)
        reply = sys.stdin.readline().split()
        if not reply or reply[0] == "skip":
            print("D -", flush=True)
            continue
        addr, count = int(reply[0]), int(reply[1])
        data = ctypes.string_at(addr, count) if count else b""
        print("D %s" % (data.hex() or "-"), flush=True)
    print("E %d" % len(STRINGS), flush=True)


main()
