"""attach_shortlived.py - a target whose allocating code objects live a few milliseconds.

Every 10 ms it compiles a fresh function `ephemeral` from source, calls it to allocate a
64 KiB bytearray that it keeps (the newest 100 of them), then drops the function: its code
object, and the module code object compile() made, are freed at once, long before memsnap
drains the ring. test_attach.c checks memsnap still names the kept memory's frame
(ephemeral, <ephemeral>:2) in inuse_space.
"""
import sys
import time

SOURCE = "def ephemeral():\n    return bytearray(65536)\n"
kept = []

print("ready", flush=True)
while True:
    ns = {}
    exec(compile(SOURCE, "<ephemeral>", "exec"), ns)
    kept.append(ns["ephemeral"]())
    ns.clear()  # breaks the function <-> globals cycle: the code object dies now
    if len(kept) > 100:
        del kept[0]
    time.sleep(0.01)
