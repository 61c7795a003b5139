"""attach_target.py - a Python process for memsnap's attach tests (every version 3.8-3.14).

A worker thread runs a paced allocation workload whose shape the profile must show:
hot() allocates exactly 10x the bytes of cold() (both free them at once), and leak() keeps
what it allocates, so `leak` must top inuse_space and alloc_space(hot)/alloc_space(cold)
must be 10. Meanwhile other threads sit in the blocking calls an injector can disturb -
time.sleep (measured against the clock), socket.accept, select.select, os.read on a pipe,
threading.Event.wait - and record any error they see. The main thread blocks reading
commands on stdin:

  check      poke every blocking thread, verify leaked data, print one "check ..." line
  churn      stop leaking (hot/cold only), so RSS stays flat across attach cycles
  leak       leak again
  idle       stop allocating
  quit       exit 0

It prints "ready <pid> worker=<native tid of the worker>" once everything is running. Nothing else is ever printed, so any
extra output would be a change memsnap caused.
"""
import os
import select
import socket
import sys
import threading
import time

BLOCK = 2000
LEAK_BLOCK = 4096
SLEEP_S = 0.05

errors = []
leaked = []
mode = ["leak"]
mode_changed = threading.Event()
sleep_stats = {"n": 0, "over": [], "under": 0}
acks = {"accept": 0, "select": 0, "read": 0, "event": 0}
lock = threading.Lock()


def hot():
    # ten blocks of BLOCK bytes, freed on return
    b = bytes
    return [b(BLOCK), b(BLOCK), b(BLOCK), b(BLOCK), b(BLOCK),
            b(BLOCK), b(BLOCK), b(BLOCK), b(BLOCK), b(BLOCK)]


def cold():
    b = bytes
    return [b(BLOCK)]


def leak():
    leaked.append(bytearray(b"\x5a") * LEAK_BLOCK)


def worker():
    while True:
        m = mode[0]
        if m == "idle":
            mode_changed.wait(0.05)
            continue
        for i in range(40):
            hot()
            cold()
            if m == "leak" and i % 4 == 0:
                leak()
        if len(leaked) > 20000:  # keep a long stress run bounded (~80 MB)
            del leaked[:10000]
        time.sleep(0.005)


def sleeper():
    while True:
        t0 = time.monotonic()
        time.sleep(SLEEP_S)
        dt = time.monotonic() - t0 - SLEEP_S
        with lock:
            sleep_stats["n"] += 1
            if dt < -0.001:
                sleep_stats["under"] += 1
            sleep_stats["over"].append(dt)
            if len(sleep_stats["over"]) > 4000:
                del sleep_stats["over"][:2000]


def guarded(name, fn):
    def run():
        try:
            fn()
        except BaseException as e:  # any error here is a failure memsnap caused
            with lock:
                errors.append("%s: %r" % (name, e))
    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    sel_r, sel_w = os.pipe()
    rd_r, rd_w = os.pipe()
    event = threading.Event()
    event_done = threading.Event()

    def acceptor():
        while True:
            conn, _ = server.accept()
            data = conn.recv(16)
            if data != b"ping":
                raise RuntimeError("accept got %r" % data)
            conn.close()
            with lock:
                acks["accept"] += 1

    def selector():
        while True:
            r, _, _ = select.select([sel_r], [], [])
            if r != [sel_r] or os.read(sel_r, 1) != b"s":
                raise RuntimeError("select woke wrongly")
            with lock:
                acks["select"] += 1

    def reader():
        while True:
            if os.read(rd_r, 1) != b"r":
                raise RuntimeError("pipe read returned wrong data")
            with lock:
                acks["read"] += 1

    def waiter():
        while True:
            if not event.wait():
                raise RuntimeError("Event.wait returned False")
            event.clear()
            with lock:
                acks["event"] += 1
            event_done.set()

    worker_thread = guarded("worker", worker)
    guarded("sleeper", sleeper)
    guarded("accept", acceptor)
    guarded("select", selector)
    guarded("read", reader)
    guarded("event", waiter)
    while worker_thread.native_id is None:
        time.sleep(0.001)
    print("ready %d worker=%d" % (os.getpid(), worker_thread.native_id), flush=True)

    pokes = 0
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd in ("churn", "leak", "idle"):
            mode[0] = cmd
            mode_changed.set()
            print("mode %s" % cmd, flush=True)
            continue
        if cmd != "check":
            continue
        pokes += 1
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"ping")
        c.close()
        os.write(sel_w, b"s")
        os.write(rd_w, b"r")
        event_done.clear()
        event.set()
        event_done.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if min(acks.values()) >= pokes:
                    break
            time.sleep(0.01)
        bad = sum(1 for b in list(leaked) if len(b) != LEAK_BLOCK or b[0] != 0x5A
                  or b[-1] != 0x5A)
        with lock:
            over = sorted(sleep_stats["over"])
            late = sum(1 for d in over if d > 0.010)
            print("check pokes=%d acked=%d errors=%d sleeps=%d under=%d late=%d "
                  "maxover_ms=%.1f median_ms=%.2f corrupt=%d%s" % (
                      pokes, min(acks.values()), len(errors), sleep_stats["n"],
                      sleep_stats["under"], late, (over[-1] if over else 0) * 1000,
                      (over[len(over) // 2] if over else 0) * 1000, bad,
                      (" first_error=" + errors[0].replace(" ", "_")) if errors else ""),
                  flush=True)


if __name__ == "__main__":
    main()
