"""hook_bench.py - runs a Python script with libmemsnap_hook.so started via ctypes, for
scripts/bench.d/hook.sh.

  hook_bench.py LIB HEX|none SCRIPT [ARGS...]

With a config (hex of struct mshook_config) it starts the hook, prints "hookfd N" as its first
stdout line for the drainer (tests/bench/hook_drain.c), waits for the drainer's "go" on stdin
(so recording runs before the script starts), then runs SCRIPT as __main__. With "none" it
only runs SCRIPT, so the plain baseline pays the same ctypes import. HOOK_BENCH_OUT=FILE sends
the script's output to FILE instead of the drainer's pipe (scripts/stress.d/hook.sh kills the
drainer and checks the script still finishes).
"""
import ctypes
import os
import runpy
import sys

lib_path, config, script = sys.argv[1:4]
lib = ctypes.CDLL(lib_path)
if config != "none":
    lib.memsnap_hook_start.argtypes = [ctypes.c_char_p]
    lib.memsnap_hook_start.restype = ctypes.c_int
    fd = lib.memsnap_hook_start(bytes.fromhex(config))
    if fd < 0:
        sys.exit("hook_bench: memsnap_hook_start returned %d" % fd)
    sys.stdout.write("hookfd %d\n" % fd)
    sys.stdout.flush()
    sys.stdin.readline()
    if os.environ.get("HOOK_BENCH_OUT"):  # the stress test kills the drainer: outlive it
        sys.stdout = open(os.environ["HOOK_BENCH_OUT"], "w")
sys.argv = [script] + sys.argv[4:]
runpy.run_path(script, run_name="__main__")
