#!/usr/bin/env bash
# lines.sh - fuzzes the decoders of bytes read from the target: line tables and str objects.
#
# Builds tests/fuzz/fuzz_linetable.c and tests/fuzz/fuzz_pystring.c with libFuzzer, ASan and
# UBSan (clang), seeds each corpus, and runs each for FUZZ_SECONDS/2 (default 60 s in all).
# Usage: lines.sh [MEMSNAP]   env: BUILD (default build), FUZZ_SECONDS, FUZZ_CC (clang).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
cc="${FUZZ_CC:-clang}"
seconds="${FUZZ_SECONDS:-60}"
per=$(( seconds / 2 > 0 ? seconds / 2 : 1 ))
out="$build/fuzz-lines"
mkdir -p "$out"
if ! command -v "$cc" >/dev/null; then echo "SKIP: $cc is not installed"; exit 0; fi

. "$root/scripts/sampler-includes.sh" "$root"
common=(-std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined "${SAMPLER_INC[@]}"
        "$root/sampler/python/py_offsets.c" "$root/sampler/python/py_offsets_table.c"
        "$root/sampler/common/error.c")
"$cc" "${common[@]}" "$root/sampler/python/linetable.c" "$root/tests/fuzz/fuzz_linetable.c" \
  -o "$out/fuzz_linetable"
"$cc" "${common[@]}" "$root/sampler/python/pystring.c" "$root/tests/fuzz/fuzz_pystring.c" \
  -o "$out/fuzz_pystring"

# Seeds: a real location table and lnotab from the running python3, and a few str headers.
mkdir -p "$out/corpus_linetable" "$out/corpus_pystring"
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
def f(x):
    return [i * i for i in range(x) if i % 3]
code = f.__code__
table = code.co_linetable if hasattr(code, "co_linetable") else code.co_lnotab
for model in (1, 2, 3):
    with open("%s/corpus_linetable/seed%d" % (out, model), "wb") as fh:
        fh.write(bytes([model]) + struct.pack("<iiQ", code.co_firstlineno, 6, 0) + table)
for i, (state, length) in enumerate([(0x64, 5), (0x28, 3), (0x30, 2), (0x08, 1)]):
    hdr = bytearray(88)
    struct.pack_into("<q", hdr, 16, length)
    hdr[32] = state
    with open("%s/corpus_pystring/seed%d" % (out, i), "wb") as fh:
        fh.write(bytes([i * 64 + 3]) + struct.pack("<QH", 0x7f0000000000, 64) + bytes(hdr)
                 + "aé日🐍".encode("utf-16-le"))
PY

status=0
for t in linetable pystring; do
  echo "fuzz_$t: ${per}s"
  rc=0
  "$out/fuzz_$t" -max_total_time="$per" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/$t-" "$out/corpus_$t" >"$out/$t.log" 2>&1 || rc=$?
  grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Test unit written' "$out/$t.log" || true
  if [ "$rc" -ne 0 ]; then echo "fuzz_$t failed (exit $rc), see $out/$t.log" >&2; status=1; fi
done
exit $status
