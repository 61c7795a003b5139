"""hook_host.py - a Python process that drives libmemsnap_hook.so directly, for test_hook.

Loads the hook library with ctypes (no injector involved), then obeys one command per stdin
line and answers on stdout, so the C test can check what the hook records against what this
process really did. Works unchanged on CPython 3.8 - 3.13.

Commands (answers in brackets):
  codes                   [codes hot=ID cold=ID outer=ID exact=ID child=ID churn=ID]  code ids
  start HEX | startsync HEX  [started RC]  memsnap_hook_start(config bytes); startsync holds
                          the GIL during the call (MSHOOK_F_SYNC_INSTALL), start releases it
  allocators              [allocators same=0|1]  are the RAW, OBJ and MEM allocators those
                          saved at startup (before any start)?
  blocks                  [blocks N]       sys.getallocatedblocks()
  hotcold N               [hotcold done]   N x outer(): hot() allocates 10x the bytes cold() does
  exact N SIZE            [exact done]     keeps N bytes objects of SIZE bytes, in exact()
  release                 [release done]   drops what exact kept
  fork N                  [fork status=S warnings=W]  a child runs child_work(N) and exits; S
                          its status, W the warnings os.fork() raised in the parent (3.12+
                          warns when the process has more than one thread)
  churn N [SIZE]          [churn done]     N bytes objects of SIZE (default 64) bytes, each
                          dropped when the next is made (the hook's periodic duties run
                          inside its wrappers, every few thousand calls)
  spin S                  [spin done]      churns for S seconds
  sleep S                 [sleep interrupted=SECONDS | sleep finished]  time.sleep(S)
  quit
"""
import ctypes
import warnings
import os
import sys
import time


class Allocator(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p),
                ("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                ("free", ctypes.c_void_p)]


DOMAIN_RAW, DOMAIN_MEM, DOMAIN_OBJ = 0, 1, 2
api = ctypes.pythonapi
api.PyMem_GetAllocator.argtypes = [ctypes.c_int, ctypes.POINTER(Allocator)]
api.PyMem_GetAllocator.restype = None


def allocators():
    out = []
    for d in (DOMAIN_RAW, DOMAIN_MEM, DOMAIN_OBJ):
        a = Allocator()
        api.PyMem_GetAllocator(d, ctypes.byref(a))
        out.append((a.ctx, a.malloc, a.calloc, a.realloc, a.free))
    return out


ORIGINAL = allocators()
LIB_PATH = sys.argv[1]
LIB = ctypes.CDLL(LIB_PATH)  # calls release the GIL, as in a hijacked thread
LIB_GIL = ctypes.PyDLL(LIB_PATH)  # calls keep the GIL, as memsnap run's synchronous install
for lib in (LIB, LIB_GIL):
    lib.memsnap_hook_start.argtypes = [ctypes.c_char_p]
    lib.memsnap_hook_start.restype = ctypes.c_int

BLOCK = 2000
kept = []


def hot():
    i = 0
    while i < 10:
        x = b"h" * BLOCK
        i += 1
    return x


def cold():
    x = b"c" * BLOCK
    return x


def outer():
    hot()
    cold()


def exact(n, size):
    i = 0
    while i < n:
        kept.append(b"e" * size)
        i += 1


def child_work(n):
    junk = []
    i = 0
    while i < n:
        junk.append(b"k" * 500)
        i += 1
    return len(junk)


def churn(n, size=64):
    # size is a variable: a constant b"z" * 64 would be folded at compile time and the loop
    # would allocate nothing
    i = 0
    while i < n:
        x = b"z" * size
        i += 1
    return x


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def main():
    global kept
    say("ready pid=%d" % os.getpid())
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "codes":
            say("codes hot=%d cold=%d outer=%d exact=%d child=%d churn=%d" % (
                id(hot.__code__), id(cold.__code__), id(outer.__code__),
                id(exact.__code__), id(child_work.__code__), id(churn.__code__)))
        elif cmd[0] in ("start", "startsync"):
            cfg = bytes.fromhex(cmd[1])
            lib = LIB_GIL if cmd[0] == "startsync" else LIB
            say("started %d" % lib.memsnap_hook_start(cfg))
        elif cmd[0] == "allocators":
            say("allocators same=%d" % (1 if allocators() == ORIGINAL else 0))
        elif cmd[0] == "blocks":
            say("blocks %d" % sys.getallocatedblocks())
        elif cmd[0] == "hotcold":
            for _ in range(int(cmd[1])):
                outer()
            say("hotcold done")
        elif cmd[0] == "exact":
            exact(int(cmd[1]), int(cmd[2]))
            say("exact done")
        elif cmd[0] == "release":
            kept = []
            say("release done")
        elif cmd[0] == "fork":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pid = os.fork()
                if pid == 0:
                    child_work(int(cmd[1]))
                    os._exit(0)
            _, status = os.waitpid(pid, 0)
            say("fork status=%d warnings=%d" % (status, len(caught)))
        elif cmd[0] == "churn":
            churn(int(cmd[1]), *(int(a) for a in cmd[2:3]))
            say("churn done")
        elif cmd[0] == "spin":
            until = time.monotonic() + float(cmd[1])
            while time.monotonic() < until:
                churn(1000)
            say("spin done")
        elif cmd[0] == "sleep":
            t0 = time.monotonic()
            try:
                time.sleep(float(cmd[1]))
                say("sleep finished")
            except KeyboardInterrupt:
                say("sleep interrupted=%.3f" % (time.monotonic() - t0))
        elif cmd[0] == "quit":
            break
        else:
            say("unknown %s" % cmd[0])


main()
