"""inject_target.py - a live process for the injector's integration test (test_inject.c).

Its threads park in the blocking calls an injection must interrupt and resume transparently,
and each checks afterwards that it saw exactly what it would have seen without memsnap:

  sleep    time.sleep(SLEEP_S), measuring its own duration (must stay within +-10 ms)
  accept   socket.accept() on a listening socket, then a connection arrives
  select   select.select() on a socket, then data arrives
  read     os.read() on a pipe, then data arrives
  event    threading.Event().wait(), then it is set
  compute  a pure-Python loop that must keep making progress
  main     blocked in a read of stdin (the thread inject_library tends to pick)

With "hammer" as argument, extra threads allocate blocks above the tcache limit through
Python (bytes/bytearray) and through libc malloc/free called with ctypes, so that an unsafe
choice of thread would deadlock the injected dlopen.

Protocol: prints "ready <pid> sleep=<tid> accept=<tid> ... port=<port>", then waits for "go" on
stdin, triggers every event, and prints one "ok <name> ..." or "bad <name> ..." per thread and
finally "done". Any exception (EINTR, OSError 512, ...) becomes a "bad" line.
"""
import ctypes
import ctypes.util
import os
import select
import socket
import sys
import threading
import time

SLEEP_S = float(os.environ.get("INJECT_TARGET_SLEEP", "4.0"))
# How late the sleep may end. 10 ms when only the injector can delay it; the malloc-hammer
# run lets the hammering threads' GIL hold delay the wake-up, so the test widens it there.
SLACK_S = float(os.environ.get("INJECT_TARGET_SLACK", "0.010"))
results = {}
tids = {}
stop = threading.Event()


def record(name, fn):
    def run():
        tids[name] = threading.get_native_id()
        try:
            results[name] = fn()
        except BaseException as e:  # anything at all is a failure of the injector
            results[name] = "bad %s %r" % (name, e)

    return threading.Thread(target=run, name=name, daemon=True)


def do_sleep():
    t0 = time.monotonic()
    time.sleep(SLEEP_S)
    d = time.monotonic() - t0
    verdict = "ok" if -0.001 <= d - SLEEP_S <= SLACK_S else "bad"
    return "%s sleep %.4f" % (verdict, d)


srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]


def do_accept():
    conn, _ = srv.accept()
    data = conn.recv(16)
    conn.close()
    return ("ok accept %r" if data == b"ping" else "bad accept %r") % data


sel_a, sel_b = socket.socketpair()


def do_select():
    r, _, _ = select.select([sel_a], [], [], 30)
    if r != [sel_a]:
        return "bad select returned %r" % (r,)
    data = sel_a.recv(16)
    return ("ok select %r" if data == b"sel" else "bad select %r") % data


pipe_r, pipe_w = os.pipe()


def do_read():
    data = os.read(pipe_r, 16)
    return ("ok read %r" if data == b"pipe" else "bad read %r") % data


event = threading.Event()


def do_event():
    got = event.wait(30)
    return "ok event" if got else "bad event timed out"


def do_compute():
    # Bursts of about a millisecond with short pauses: the thread is often caught running,
    # without starving the other targets of a shared 2-CPU test machine.
    n = 0
    while not stop.is_set():
        end = time.monotonic() + 0.001
        while time.monotonic() < end:
            n += sum(range(100))
        time.sleep(0.003)
    return "ok compute %d" % n if n > 0 else "bad compute"


def do_hammer_py():
    n = 0
    while not stop.is_set():
        blocks = [bytearray(200000) for _ in range(8)]
        blocks.append(bytes(300000))
        n += len(blocks)
    return "ok hammer_py %d" % n


def do_hammer_c():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    n = 0
    while not stop.is_set():
        ptrs = [libc.malloc(150000 + i) for i in range(16)]
        for p in ptrs:
            libc.free(p)
        n += 1
    return "ok hammer_c %d" % n


def main():
    workers = [
        record("sleep", do_sleep),
        record("accept", do_accept),
        record("select", do_select),
        record("read", do_read),
        record("event", do_event),
        record("compute", do_compute),
    ]
    if "hammer" in sys.argv[1:]:
        workers += [record("hammer_py", do_hammer_py), record("hammer_py2", do_hammer_py),
                    record("hammer_c", do_hammer_c)]
    for w in workers:
        w.start()
    while len(tids) < len(workers):
        time.sleep(0.001)
    time.sleep(0.05)  # let every thread reach its blocking call
    print("ready %d %s port=%d" % (os.getpid(), " ".join("%s=%d" % kv for kv in tids.items()),
                                   port), flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        print("bad main stdin %r" % line, flush=True)
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"ping")
    sel_b.sendall(b"sel")
    os.write(pipe_w, b"pipe")
    event.set()
    stop.set()
    for w in workers:
        w.join(SLEEP_S + 10)
    c.close()
    for w in workers:
        print(results.get(w.name, "bad %s never finished" % w.name), flush=True)
    print("done", flush=True)


main()
