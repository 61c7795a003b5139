#!/usr/bin/python3
# run_shebang.py - an executable script with a `#!` line: the kernel, not memsnap, finds the
# interpreter, and `memsnap run` must still profile it.
import sys

blocks = [bytes(1000) for _ in range(2000)]
print("shebang ok %d" % len(blocks))
sys.exit(5)
