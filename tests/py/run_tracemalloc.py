# run_tracemalloc.py - the reference `memsnap run` is checked against: runs a script under
# tracemalloc, started at the same point memsnap installs its hook (the main module's first
# line), and prints what tracemalloc measured:
#   peak <bytes>          tracemalloc.get_traced_memory()[1], the Python heap's peak
#   line <bytes>          bytes still allocated when the script ends whose traceback passes
#                         through FILE:LINE (the cost of that line, e.g. an import)
# Usage: python3 run_tracemalloc.py [--frames N] FILE_SUFFIX:LINE script.py [args...]
# N (default 256) frames per trace: deep import stacks need all of them for the line's
# attribution, which makes the run ~50x slower than plain; the peak needs only 1 (~5x).
import sys

frames = 256
if sys.argv[1] == "--frames":
    frames = int(sys.argv[2])
    del sys.argv[1:3]

import tracemalloc  # noqa: E402

tracemalloc.start(frames)

import runpy  # noqa: E402

where, script = sys.argv[1], sys.argv[2]
suffix, lineno = where.rsplit(":", 1)
lineno = int(lineno)
sys.argv = sys.argv[2:]
sys.path[0] = __import__("os").path.dirname(__import__("os").path.abspath(script))
status = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    status = e.code if isinstance(e.code, int) else 0
snap = tracemalloc.take_snapshot()
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
line_bytes = 0
for trace in snap.traces:
    if any(f.filename.endswith(suffix) and f.lineno == lineno for f in trace.traceback):
        line_bytes += trace.size
print("peak %d" % peak)
print("line %d" % line_bytes)
sys.exit(status)
