# dump_target.py - a Python process parked in known call chains, for `memsnap dump` tests.
#
# The main thread parks in outer() -> middle() -> park() (blocked reading stdin); a worker
# with non-ASCII function names (Latin-1, UCS-2 and UCS-4 kinds of str) parks in
# größe_ändern() -> 日本() -> 𠀀() -> Event.wait() and names itself "parked-worker"; a second
# worker parks in a class method that drives a generator that recurses RECURSION deep:
# Walker.start() -> sum() (C) -> Walker.steps() (a generator frame) -> descend() x
# (RECURSION + 1) -> Event.wait(). A short-lived reporter thread waits until all three are
# parked, prints what the interpreter itself sees (sys._current_frames) in memsnap's text
# format between EXPECT-BEGIN and EXPECT-END (with the kernel's name for each thread, and all
# idle), then exits. Commands on stdin
# (read by the parked main thread): "ping" -> "pong" (proves the process still runs), "quit".
# Works on CPython 3.8-3.14.
import sys
import threading
import time

parked = threading.Event()
parked2 = threading.Event()
release = threading.Event()
RECURSION = 40


def frame_name(f):
    code = f.f_code
    return getattr(code, "co_qualname", code.co_name)


def 𠀀():
    # A kernel thread name, as programs set with prctl/pthread_setname_np: dump shows it.
    try:
        with open("/proc/self/task/%d/comm" % threading.get_native_id(), "w") as f:
            f.write("parked-worker")
    except OSError:
        pass
    parked.set()
    release.wait()


def 日本():
    𠀀()


def größe_ändern():
    日本()


def descend(n):
    if n == 0:
        parked2.set()
        release.wait()
        return 0
    return descend(n - 1) + 1


class Walker:
    @classmethod
    def start(cls):
        return sum(cls.steps())

    @classmethod
    def steps(cls):
        yield descend(RECURSION)


def park():
    return sys.stdin.readline()


def middle():
    return park()


def outer():
    return middle()


def report(main_ident, worker, walker):
    # Wait until the main thread is blocked inside park() and the worker inside wait().
    for _ in range(2000):
        frames = sys._current_frames()
        m = frames.get(main_ident)
        if (parked.is_set() and parked2.is_set() and m is not None
                and m.f_code.co_name == "park"):
            break
        time.sleep(0.005)
    time.sleep(0.05)
    frames = sys._current_frames()
    out = ["EXPECT-BEGIN"]
    for t, ident in ((threading.main_thread(), main_ident), (worker, worker.ident),
                     (walker, walker.ident)):
        # What dump says about the thread: the kernel's name for it (printable ASCII, '?' for
        # the rest) and "idle": every thread is blocked, reading stdin or in Event.wait().
        with open("/proc/self/task/%d/comm" % t.native_id, "rb") as f:
            comm = f.read().rstrip(b"\n")
        name = "".join(chr(c) if 0x20 <= c < 0x7F and c not in b'"\\' else "?" for c in comm)
        main = " (main)" if ident == main_ident else ""
        out.append('Thread %d "%s"%s: idle' % (t.native_id, name, main))
        f = frames[ident]
        while f is not None:
            out.append("    %s (%s:%d)" % (frame_name(f), f.f_code.co_filename, f.f_lineno))
            f = f.f_back
    out.append("EXPECT-END")
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def main():
    worker = threading.Thread(target=größe_ändern, daemon=True)
    worker.start()
    walker = threading.Thread(target=Walker.start, daemon=True)
    walker.start()
    threading.Thread(target=report, args=(threading.get_ident(), worker, walker),
                     daemon=True).start()
    while True:
        line = outer()
        if not line or line.strip() == "quit":
            break
        if line.strip() == "ping":
            sys.stdout.write("pong\n")
            sys.stdout.flush()
    release.set()


main()
