#!/usr/bin/env bash
# render.sh - fuzzes the renderer behind the profile reader (tests/fuzz/fuzz_render.c) with
# libFuzzer + ASan + UBSan for FUZZ_SECONDS (default 60), seeded with the reader's corpus and
# the renderer's demo profiles. Fails on any crash, leak, sanitizer report or timeout; the
# input is kept in $BUILD/fuzz/render-artifacts/. The first byte of an input picks options.
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
build="${BUILD:-build}"
seconds="${FUZZ_SECONDS:-60}"
cc="${FUZZ_CC:-clang}"
. "$here/scripts/fuzz-common.sh"
fuzz_require "the renderer"
out="$build/fuzz"
mkdir -p "$out/render-corpus" "$out/render-artifacts" "$build/gen"
make -s BUILD="$build" "$build/gen/flame_assets.h" "$build/gen/profile.pb-c.c" "$build/libmemsnap.a" \
  || exit 1
bin="$out/fuzz_render"
. scripts/sampler-includes.sh .
# shellcheck disable=SC2046
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined "${SAMPLER_INC[@]}" -Iproto -Irender -I"$build/gen" \
  tests/fuzz/fuzz_render.c proto/*.c render/*.c sampler/common/error.c "$build/gen/profile.pb-c.c" \
  -lprotobuf-c -lz -ldeflate -lm -o "$bin"; then
  echo "render fuzzer: build failed" >&2; exit 1
fi
# Seeds: each reader seed and demo profile, prefixed with an options byte, decompressed.
cc -std=c11 -D_GNU_SOURCE -O2 "${SAMPLER_INC[@]}" -Iproto -o "$out/gen_render_profile" \
  tests/bench/gen_render_profile.c "$build/libmemsnap.a" \
  $(pkg-config --libs libdw libelf libunwind-ptrace libprotobuf-c zlib libdeflate) -lm -lpthread || exit 1
"$out/gen_render_profile" demo "$out/demo.pb" && "$out/gen_render_profile" demo-after "$out/after.pb"
n=0
for f in tests/fuzz/corpus/profile/* "$out/demo.pb" "$out/after.pb"; do
  [ -f "$f" ] || continue
  for o in 0 3 6 9; do
    { printf "\\x$(printf %02x $o)"; gzip -dc "$f" 2>/dev/null || cat "$f"; } > "$out/render-corpus/seed-$n-$o"
  done
  n=$((n + 1))
done
fuzz_run render "$bin" "$out/render-corpus" "$seconds" -max_len=65536 -rss_limit_mb=2560
