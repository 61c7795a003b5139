"""hostile_target.py MODE - a Python process whose interpreter memory is corrupted, harmlessly
to itself, for memsnap's hook-safety tests (every version 3.8-3.13; see docs/hook-safety.md).

A worker thread calls outer(), whose frame it never returns through while corrupted, and
allocates without pause from inner frames below it. The main thread corrupts, with ctypes:

  code_garbage   outer's frame's code pointer = 0xdead0000
  wrong_type     outer's frame's code pointer = a bytes object
  frame_cycle    outer's frame's previous frame = outer's own frame (a chain that loops)
  table_huge     the size of outer's line table (a bytes object of its own) = 2**40
  table_negative the same size = -5
  huge_names     outer's code has a name, qualified name and file name of 3 MB each (no
                 corruption: legal, only big)
  thread_cycle   the main thread's tstate->next = itself (the interpreter's thread list loops)
  none           nothing

The cyclic GC is disabled first (it would visit the corrupted frame), no exception or warning
crosses the corrupted frame, and no thread starts or ends while the thread list loops. Every
write is undone before the worker returns through outer().

It prints "ready <pid>" once corrupted, then reads commands on stdin:
  check   prints "alive <n>" (n: the worker's allocation rounds so far, growing)
  quit    undoes the corruption, stops the worker, prints "bye", exits 0
"""
import ctypes
import gc
import os
import sys
import threading
import types

MODE = sys.argv[1] if len(sys.argv) > 1 else "none"
V = sys.version_info[:2]
P = ctypes.c_void_p

stop = threading.Event()
entered = threading.Event()
rounds = [0]
outer_frame = []


def inner():
    # allocates: lists, strs and dicts of fresh objects, kept a little, freed
    keep = []
    while not stop.is_set():
        keep.append([str(i) + "x" for i in range(50)])
        keep.append({i: (i, i + 1) for i in range(20)})
        if len(keep) > 40:
            del keep[:20]
        rounds[0] += 1


def outer_source():
    outer_frame.append(sys._getframe())
    entered.set()
    inner()
    return 0


def make_outer():
    code = outer_source.__code__
    if MODE in ("table_huge", "table_negative"):
        # a line table object of its own (a new bytes object), so that corrupting its size
        # touches no other code object
        if V >= (3, 10):
            code = code.replace(co_linetable=bytes(bytearray(code.co_linetable)))
        else:
            code = code.replace(co_lnotab=bytes(bytearray(code.co_lnotab)))
    if MODE == "huge_names":
        big = 3 * 1024 * 1024
        kw = {"co_name": "n" * big, "co_filename": "/" + "f" * big}
        if V >= (3, 11):
            kw["co_qualname"] = "q" * big
        code = code.replace(**kw)
    return types.FunctionType(code, globals(), "outer")


def word_at(addr):
    return P.from_address(addr)


def frame_fields(frame):
    """(address of the code pointer, address of the previous-frame pointer) of a live frame."""
    if V >= (3, 11):
        iframe = P.from_address(id(frame) + 24).value  # PyFrameObject.f_frame
        if V == (3, 11):
            return iframe + 32, iframe + 48  # f_code, previous
        return iframe + 0, iframe + 8  # f_code / f_executable, previous
    return id(frame) + 32, id(frame) + 24  # PyFrameObject.f_code, f_back


undo = []


def poke(addr, value):
    cell = word_at(addr)
    undo.append((addr, cell.value))
    cell.value = value


def corrupt(frame, fn):
    code_at, back_at = frame_fields(frame)
    if word_at(code_at).value != id(fn.__code__):
        sys.stderr.write("hostile_target: frame layout not understood on %s\n" % (V,))
        sys.exit(3)
    if MODE == "code_garbage":
        poke(code_at, 0xDEAD0000)
    elif MODE == "wrong_type":
        poke(code_at, id(wrong))
    elif MODE == "frame_cycle":
        # the frame itself: the interpreter frame (3.11+) or the frame object
        own = back_at - (48 if V == (3, 11) else 8) if V >= (3, 11) else id(frame)
        poke(back_at, own)
    elif MODE in ("table_huge", "table_negative"):
        table = fn.__code__.co_linetable if V >= (3, 10) else fn.__code__.co_lnotab
        size = ctypes.c_ssize_t.from_address(id(table) + 16)  # PyVarObject.ob_size
        if size.value != len(table):
            sys.stderr.write("hostile_target: bytes layout not understood\n")
            sys.exit(3)
        undo.append(("size", id(table), size.value))
        size.value = 2**40 if MODE == "table_huge" else -5
    elif MODE == "thread_cycle":
        get = ctypes.pythonapi.PyThreadState_Get
        get.restype = P
        ts = get()
        nxt = word_at(ts + 8)  # PyThreadState.next
        if nxt.value:
            sys.stderr.write("hostile_target: the main thread is not the list's tail\n")
            sys.exit(3)
        poke(ts + 8, ts)


def restore():
    while undo:
        item = undo.pop()
        if item[0] == "size":
            ctypes.c_ssize_t.from_address(item[1] + 16).value = item[2]
        else:
            word_at(item[0]).value = item[1]


wrong = b"not a code object" * 3


def main():
    gc.disable()
    fn = make_outer()
    worker = threading.Thread(target=fn, name="hostile-worker", daemon=True)
    worker.start()
    entered.wait()
    corrupt(outer_frame[0], fn)
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            sys.stdout.write("alive %d\n" % rounds[0])
            sys.stdout.flush()
        elif cmd == "quit":
            break
    restore()
    stop.set()
    worker.join()
    outer_frame.clear()
    gc.enable()
    sys.stdout.write("bye\n")
    sys.stdout.flush()


main()
