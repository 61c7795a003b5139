"""sampling_workload.py - deterministic allocation workloads for test_sampling.c, which records
this program exactly (memsnap run --rate 1) and sampled (the default rate) and compares the
totals under each work_* function.

At SCALE 1 (argv[1]) work_strs and work_dicts allocate about 64 MiB each, work_mix about
128 MiB (its tiny objects, ~40% of it, set the spread of its object count) and work_churn
about 240 MiB, of which it keeps about 48 MiB:
  work_strs   lists of fresh strs (and the ints they are made from): many tiny objects and a
              list buffer grown by realloc, all in one stack - the case the old per-stack
              scaling counted 50x too low
  work_dicts  lists of small fresh dicts
  work_mix    small tuples and a 300 KB bytearray per round: tiny objects and large blocks
  work_churn  lists of strs of which one in two is kept to the end (KEPT): its in-use and
              peak totals differ from what it allocated, and it runs last so that the peak
              of the whole program is its kept set
With "hold" (argv[2]) it prints "ready", waits for a line on stdin, runs the work, prints
"done" and waits for stdin to close while KEPT stays alive (for attach).
"""
import sys

SCALE = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
KEPT = []
NUMS = tuple(range(100000, 101000))  # made once: work_churn's lists hold strs only


def work_strs():
    for _ in range(int(150 * SCALE)):
        lst = [str(i + 100000) for i in range(2000)]
        del lst


def work_dicts():
    for _ in range(int(245 * SCALE)):
        lst = [{"k": i, "v": i} for i in range(1000)]
        del lst


def work_mix():
    for _ in range(int(136 * SCALE)):
        small = [(i, i + 1) for i in range(4000)]
        big = bytearray(300000)
        del small, big


def work_churn():
    for j in range(int(1600 * SCALE)):
        lst = [str(i) for i in NUMS]
        if j % 2 == 0:
            KEPT.append(lst)
        del lst


def main():
    hold = len(sys.argv) > 2 and sys.argv[2] == "hold"
    if hold:
        print("ready", flush=True)
        sys.stdin.readline()
    work_strs()
    work_dicts()
    work_mix()
    work_churn()
    if hold:
        print("done", flush=True)
        sys.stdin.read()
    print("kept %d" % len(KEPT), flush=True)


if __name__ == "__main__":
    main()
