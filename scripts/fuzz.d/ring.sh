#!/usr/bin/env bash
# ring.sh - fuzzes memsnap's reader of the hook's shared ring (tests/fuzz/fuzz_ring_reader.c)
# with libFuzzer for FUZZ_SECONDS (default 60), from a few committed-free generated seeds.
# Fails on any crash, sanitizer report or timeout; the input is kept in
# $BUILD/fuzz/ring-artifacts/. The reader is compiled straight into the fuzzer with clang.
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
build="${BUILD:-build}"
seconds="${FUZZ_SECONDS:-60}"
cc="${FUZZ_CC:-clang}"

. "$here/scripts/fuzz-common.sh"
fuzz_require "the ring reader"

out="$build/fuzz"
mkdir -p "$out/ring-corpus" "$out/ring-artifacts"
bin="$out/fuzz_ring_reader"
. scripts/sampler-includes.sh .
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined "${SAMPLER_INC[@]}" \
  tests/fuzz/fuzz_ring_reader.c sampler/record/ring_reader.c sampler/common/error.c -o "$bin"; then
  echo "ring fuzzer: build failed" >&2
  exit 1
fi

# Seeds: tail 0, head just past one valid FREE and one valid ALLOC with two frames; a CODE,
# ALLOC, CODE_GONE sequence; a wrapped ring.
python3 - "$out/ring-corpus" <<'PY'
import os, struct, sys
d = sys.argv[1]
free = struct.pack("<IIQ", 3, 16, 0x1000)
alloc = struct.pack("<IIQQQII", 2, 72, 0x2000, 64, 0x7000, 2, 0) + struct.pack("<QQQQ", 1, 2, 3, 4)
recs = free + alloc
open(os.path.join(d, "seed-valid"), "wb").write(b"\0" + struct.pack("<QQ", 0, len(recs)) + recs)
# A CODE record (UCS-2 name, Latin-1 file name, 3-byte line table) then its CODE_GONE.
body = "f\u00e9".encode("utf-16-le") + b"a.py" + bytes([2, 1, 4])
clen = (40 + len(body) + 7) & ~7
code = struct.pack("<IIQiIIIIBBH", 4, clen, 0x3000, 7, 0, 2, 4, 3, 2, 1, 0) + body
code += b"\0" * (clen - len(code))
gone = struct.pack("<IIQ", 5, 16, 0x3000)
recs = code + alloc + gone
open(os.path.join(d, "seed-code"), "wb").write(b"\0" + struct.pack("<QQ", 0, len(recs)) + recs)
pad = struct.pack("<II", 1, 16)
open(os.path.join(d, "seed-wrap"), "wb").write(
    b"\0" + struct.pack("<QQ", 65536 - 16, 16 + len(free)) + pad + b"\0" * 8 + free)
PY

fuzz_run ring "$bin" "$out/ring-corpus" "$seconds" -rss_limit_mb=1024
