"""Target for scripts/bench.d/inject.sh: measures, from inside, how long it was paused.

A ticker thread wakes every millisecond and keeps the longest gap between wake-ups since the
last report. The main thread reads commands on stdin: "gap" prints and resets that gap (in
ms), "quit" exits. An injector that stops every thread (gdb) shows up as one long gap; one
that stops a single thread for a moment (memsnap) barely registers.
"""

import sys
import threading
import time

longest = 0.0
lock = threading.Lock()


def tick():
    global longest
    last = time.monotonic()
    while True:
        time.sleep(0.001)
        now = time.monotonic()
        with lock:
            longest = max(longest, now - last)
        last = now


threading.Thread(target=tick, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "gap":
        with lock:
            print(f"gap {longest * 1000:.2f}", flush=True)
            longest = 0.0
    elif cmd == "quit":
        break
