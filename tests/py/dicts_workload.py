# dicts_workload.py - the allocation-heavy benchmark as anchors.md describes the one its
# tracemalloc figure (6.3x) was measured on: 200k dicts, a JSON round trip, a string join and
# lists, built once and kept alive. tests/py/run_workload.py allocates about twice as densely
# (tracemalloc=1 costs 11-12x on it); this one calibrates the benchmark to the anchor (5-6x
# here). Prints a checksum; with MEMSNAP_BENCH_TIMES=FILE it also appends "WALL CPU" (seconds)
# of its own work to FILE, as run_workload.py does.
import json
import os
import sys
import time

started = (time.perf_counter(), time.process_time())
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
records = [
    {"id": i, "name": "user%d" % i, "email": "user%d@example.com" % i, "score": i % 97,
     "tags": ["a", "b%d" % (i % 5)]}
    for i in range(n)
]
text = json.dumps(records)
back = json.loads(text)
names = ",".join(r["name"] for r in back)
groups = {}
for r in back:
    groups.setdefault(r["score"], []).append(r["id"])
print("checksum %d" % ((len(text) + len(names) + sum(len(g) for g in groups.values())) % 1000003))
if os.environ.get("MEMSNAP_BENCH_TIMES"):
    with open(os.environ["MEMSNAP_BENCH_TIMES"], "a") as f:
        f.write("%.4f %.4f\n" % (time.perf_counter() - started[0], time.process_time() - started[1]))
