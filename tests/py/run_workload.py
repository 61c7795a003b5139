# run_workload.py - an allocation-heavy program for `memsnap run` benchmarks: dicts, JSON
# round trips, string joins and lists, about 1-2 s with plain CPython. Prints a checksum so
# every tool's run can be checked to have done the same work. With MEMSNAP_BENCH_TIMES=FILE it
# also appends "WALL CPU" (seconds) of its own work to FILE: the program's slowdown without
# the profiler's start and end (scripts/bench.d/run.sh).
import json
import os
import sys
import time

started = (time.perf_counter(), time.process_time())

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
checksum = 0
keep = []
for r in range(rounds):
    records = [
        {"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7), "r%d" % r], "price": i * 0.5}
        for i in range(2000)
    ]
    text = json.dumps(records)
    back = json.loads(text)
    joined = ",".join(rec["name"] for rec in back)
    index = {rec["id"]: rec for rec in back if rec["id"] % 3}
    checksum = (checksum + len(text) + len(joined) + len(index)) % 1000003
    keep.append(joined[: 100 * (r + 1)])
    if len(keep) > 10:
        keep.pop(0)
print("checksum %d" % checksum)
if os.environ.get("MEMSNAP_BENCH_TIMES"):
    with open(os.environ["MEMSNAP_BENCH_TIMES"], "a") as f:
        f.write("%.4f %.4f\n" % (time.perf_counter() - started[0], time.process_time() - started[1]))
