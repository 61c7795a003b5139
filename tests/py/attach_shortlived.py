"""attach_shortlived.py - a target whose allocating code objects live a few milliseconds.

Every 10 ms it compiles a fresh function `ephemeral` from one of two sources, in turn, calls
it to allocate a bytearray that it keeps (the newest 100 of them), then drops the function: its
code object, and the module code object compile() made, are freed at once, long before memsnap
drains the ring. The two sources differ only in where the allocation is and how big it is:
64 KiB at <ephemeral>:2, 128 KiB at <ephemeral>:3 (a blank line before it), so their code
objects are the same size and the newer one often takes the dead one's address, with the same
name, file and first line. test_attach.c checks memsnap names each kept block's frame by its
own function: ephemeral at <ephemeral>:2 for the 64 KiB blocks, :3 for the 128 KiB ones.
"""
import sys
import time

SOURCES = (
    "def ephemeral():\n    return bytearray(65536)\n",
    "def ephemeral():\n\n    return bytearray(131072)\n",
)
kept = []

print("ready", flush=True)
turn = 0
while True:
    ns = {}
    exec(compile(SOURCES[turn], "<ephemeral>", "exec"), ns)
    turn = 1 - turn
    kept.append(ns["ephemeral"]())
    ns.clear()  # breaks the function <-> globals cycle: the code object dies now
    if len(kept) > 100:
        del kept[0]
    time.sleep(0.01)
