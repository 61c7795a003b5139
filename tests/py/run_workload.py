# run_workload.py - an allocation-heavy program for `memsnap run` benchmarks: dicts, JSON
# round trips, string joins and lists, about 1-2 s with plain CPython. Prints a checksum so
# every tool's run can be checked to have done the same work.
import json
import sys

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
