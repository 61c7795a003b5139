# dump_spinner.py - one thread running Python flat out (named "spinner" in the kernel) while
# the main thread waits on stdin: `memsnap dump` must call the first running and the second
# idle (tests/integration/test_dump.c). Prints "ready" once the spinner runs; exits on any
# line or end of stdin.
import sys
import threading

started = threading.Event()


def spin():
    with open("/proc/self/task/%d/comm" % threading.get_native_id(), "w") as f:
        f.write("spinner")
    started.set()
    n = 0
    while True:
        n += 1


threading.Thread(target=spin, daemon=True).start()
started.wait()
print("ready", flush=True)
sys.stdin.readline()
