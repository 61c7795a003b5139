# run_module.py - run with `python3 -m run_module ARGS`: proves `memsnap run` handles -m and
# passes arguments through unchanged.
import sys

print("module args=%s" % ",".join(sys.argv[1:]))
