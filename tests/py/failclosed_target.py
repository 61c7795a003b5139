"""failclosed_target.py - a target for memsnap's fail-closed tests: its libc (or the whole
root it sees) is one memsnap cannot read by path, and it keeps libc's malloc busy.

THREADS worker threads (argv[1], default 4; the odd ones call libc's malloc and free through
ctypes without the GIL) and the main thread allocate and free objects of
a few KiB to a few hundred KiB, which pymalloc hands to libc's malloc/free, in a loop with no
sleep, so at any instant some thread is likely inside malloc: a hijack of such a thread for
dlopen corrupts the heap, which is what the tests must never see. No thread blocks in a
system call for long (the main thread polls stdin between rounds of work), so memsnap has
no idle thread to pick and must judge busy ones. Commands on stdin:

  check   prints "check ok <allocations done>" after verifying the workers' data
  quit    stops the workers, joins them and exits 0

It prints "ready <pid>" once every worker has started; nothing else, ever.
"""
import os
import select
try:
    import ctypes
except ImportError:  # a build without libffi: Python allocations only
    ctypes = None
import sys
import threading

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
stop = threading.Event()
counts = [0] * THREADS
bad = []


def work(k, keep, i):
    sizes = (600, 3000, 20000, 70000, 300000)
    n = sizes[i % len(sizes)] + k
    b = bytearray(n)
    b[-1] = (i + k) & 0xFF
    keep.append(b)
    if len(keep) > 16:
        old = keep.pop(0)
        if len(old) < 600:
            bad.append(k)
    d = {j: str(j) for j in range(20)}
    if len(d) != 20:
        bad.append(k)


def raw_worker(k):
    # libc's malloc and free called through ctypes, which releases the GIL around each call:
    # these threads are inside malloc (or waiting for an arena's lock) much of the time, as
    # the threads of a C extension are.
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    sizes = (24, 700, 5000, 40000, 200000)
    held = []
    i = 0
    while not stop.is_set():
        p = libc.malloc(sizes[i % len(sizes)] + k)
        if not p:
            bad.append(k)
        held.append(p)
        if len(held) > 8:
            libc.free(held.pop(0))
        i += 1
        counts[k] = i
    for p in held:
        libc.free(p)


def worker(k):
    if k % 2 == 1 and ctypes:
        raw_worker(k)
        return
    keep = []
    i = 0
    while not stop.is_set():
        work(k, keep, i)
        i += 1
        counts[k] = i


threads = [threading.Thread(target=worker, args=(k,), daemon=False) for k in range(THREADS)]
for t in threads:
    t.start()
while not all(counts):
    pass
sys.stdout.write("ready %d\n" % os.getpid())
sys.stdout.flush()
keep, i, pending = [], 0, b""
while True:
    for _ in range(50):
        work(THREADS, keep, i)
        i += 1
    if not select.select([0], [], [], 0)[0]:
        continue
    chunk = os.read(0, 4096)
    if not chunk:
        break
    pending += chunk
    if b"\n" not in pending:
        continue
    lines = pending.split(b"\n")
    pending = lines.pop()
    cmds = [c.strip() for c in lines]
    for cmd in cmds:
        if cmd == b"check":
            sys.stdout.write("check %s %d\n" % ("bad" if bad else "ok", sum(counts)))
            sys.stdout.flush()
    if b"quit" in cmds:
        break
stop.set()
for t in threads:
    t.join()
sys.exit(1 if bad else 0)
