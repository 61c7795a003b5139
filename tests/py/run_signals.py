# run_signals.py - a program for `memsnap run` signal tests: announces itself, then waits to
# be interrupted. Prints whether the SIGINT it got surfaced as KeyboardInterrupt (then lets it
# propagate, so Python ends the process by SIGINT as it would in a terminal) and whether
# memsnap left it traced.
import os
import time


def tracer_pid():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


try:
    print("ready tracer=%d pid=%d" % (tracer_pid(), os.getpid()), flush=True)
    for _ in range(600):
        time.sleep(0.05)
except KeyboardInterrupt:
    print("KeyboardInterrupt caught", flush=True)
    raise
print("not interrupted", flush=True)
