"""failclosed_target.py - a target for memsnap's fail-closed tests: its libc (or the whole
root it sees) is one memsnap cannot read by path, and it keeps libc's malloc busy.

THREADS worker threads (argv[1], default 4) allocate and free objects of a few KiB to a few
hundred KiB, which pymalloc hands to libc's malloc/free, in a loop with no sleep, so at any
instant some thread is likely inside malloc: a hijack of such a thread for dlopen corrupts the
heap, which is what the tests must never see. The main thread waits on stdin:

  check   prints "check ok <allocations done>" after verifying the workers' data
  quit    stops the workers, joins them and exits 0

It prints "ready <pid>" once every worker has started; nothing else, ever.
"""
import os
import sys
import threading

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
stop = threading.Event()
counts = [0] * THREADS
bad = []


def worker(k):
    sizes = (600, 3000, 20000, 70000, 300000)
    keep = []
    i = 0
    while not stop.is_set():
        n = sizes[i % len(sizes)] + k
        b = bytearray(n)
        b[-1] = (i + k) & 0xFF
        keep.append(b)
        if len(keep) > 16:
            old = keep.pop(0)
            if len(old) < 600 or old[-1] != (old[-1] & 0xFF):
                bad.append(k)
        d = {j: str(j) for j in range(20)}
        if len(d) != 20:
            bad.append(k)
        i += 1
        counts[k] = i


threads = [threading.Thread(target=worker, args=(k,), daemon=False) for k in range(THREADS)]
for t in threads:
    t.start()
while not all(counts):
    pass
sys.stdout.write("ready %d\n" % os.getpid())
sys.stdout.flush()
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "check":
        sys.stdout.write("check %s %d\n" % ("bad" if bad else "ok", sum(counts)))
        sys.stdout.flush()
    elif cmd == "quit":
        break
stop.set()
for t in threads:
    t.join()
sys.exit(1 if bad else 0)
