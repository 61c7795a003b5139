# run_alloc.py - a known amount of memory from a known line, for `memsnap run` exactness:
# keeps 100 blocks of 100,000 bytes allocated by the line marked KEEP (10,000,000 bytes live
# at the peak), frees them, and prints how much that was.
def keep_blocks():
    return [bytearray(100000) for _ in range(100)]  # KEEP


blocks = keep_blocks()
total = sum(len(b) for b in blocks)
del blocks
print("kept %d" % total)
