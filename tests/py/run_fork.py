# run_fork.py - a program that forks, for `memsnap run`: the child (os.fork, then a
# multiprocessing pool with the fork start method) allocates a lot in functions whose names
# the test looks for in the parent's profile, where they must not appear. Prints the
# children's results so the test can check they ran normally.
import multiprocessing
import os
import sys


def child_work():
    data = [bytes(1000) + bytes([i % 256]) for i in range(20000)]  # ~20 MB in the child
    return len(data)


def pool_child_work(n):
    data = [bytearray(1000) for _ in range(n)]
    return len(data)


def parent_work():
    return [bytearray(500) for _ in range(1000)]


if __name__ == "__main__":
    pid = os.fork()
    if pid == 0:
        n = child_work()
        os._exit(0 if n == 20000 else 1)
    _, status = os.waitpid(pid, 0)
    print("fork child status %d" % status, flush=True)
    keep = parent_work()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        print("pool results %s" % pool.map(pool_child_work, [5000, 5000, 5000]), flush=True)
    print("parent kept %d" % len(keep))
    sys.exit(0)
