"""attach_bench.py - runs tests/py/run_workload.py (the allocation-heavy benchmark shared with
`memsnap run`) only once told to on stdin, so `memsnap attach` can be recording before the
timed part starts. Prints "ready", waits for a line, runs the workload (which prints its
checksum), then prints "elapsed <seconds> cpu <seconds>" of the workload alone (wall time, and the
process's CPU time, which a machine shared with other work disturbs less).
"""
import os
import runpy
import sys
import time

print("ready", flush=True)
sys.stdin.readline()
workload = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_workload.py")
t0 = time.perf_counter()
c0 = time.process_time()
sys.argv = [workload] + sys.argv[1:]
runpy.run_path(workload, run_name="__main__")
print("elapsed %.4f cpu %.4f" % (time.perf_counter() - t0, time.process_time() - c0), flush=True)
