"""tracemalloc_target.py MODE - a Python process that changes its allocator while memsnap
records it, for the replaced-allocator test (every version 3.8-3.13; docs/hook-safety.md).

  before   tracemalloc runs from the start (memsnap's wrappers go on top of it); the command
           "change" calls tracemalloc.stop(), which puts back the allocators tracemalloc saved
           when it started, so memsnap's wrappers leave the chain
  during   tracemalloc is off; "change" calls tracemalloc.start() (its hooks go on top of
           memsnap's), allocates, and tracemalloc.stop()

A worker thread allocates all the time. It prints "ready <pid>" when running, then reads
commands on stdin:
  change  as above, then prints "changed"
  check   prints "alive <rounds> tracing=<0|1> default=<0|1>": default=1 when the object and
          memory domains hold the very allocators they held before anything started
  quit    prints "bye", exits 0
"""
import ctypes
import os
import sys
import threading
import tracemalloc

MODE = sys.argv[1] if len(sys.argv) > 1 else "before"


class Allocator(ctypes.Structure):  # PyMemAllocatorEx
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p),
                ("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                ("free", ctypes.c_void_p)]


def allocators():
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.restype = None
    out = []
    for domain in (1, 2):  # PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ
        a = Allocator()
        get(domain, ctypes.byref(a))
        out.append((a.ctx, a.malloc, a.calloc, a.realloc, a.free))
    return out


stop = threading.Event()
rounds = [0]


def work():
    keep = []
    while not stop.is_set():
        keep.append([str(i) + "y" for i in range(40)])
        if len(keep) > 50:
            del keep[:25]
        rounds[0] += 1
        if rounds[0] % 200 == 0:
            stop.wait(0.001)


def main():
    original = allocators()
    if MODE == "before":
        tracemalloc.start()
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "change":
            if MODE == "before":
                tracemalloc.stop()
            else:
                tracemalloc.start()
                junk = [str(i) for i in range(10000)]
                del junk
                tracemalloc.stop()
            sys.stdout.write("changed\n")
        elif cmd == "check":
            sys.stdout.write("alive %d tracing=%d default=%d\n" % (
                rounds[0], tracemalloc.is_tracing(), allocators() == original))
        elif cmd == "quit":
            break
        sys.stdout.flush()
    stop.set()
    worker.join()
    sys.stdout.write("bye\n")
    sys.stdout.flush()


main()
