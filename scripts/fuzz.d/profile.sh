#!/usr/bin/env bash
# profile.sh - fuzzes the profile reader (tests/fuzz/fuzz_profile_read.c) with libFuzzer for
# FUZZ_SECONDS (default 60), starting from the committed seeds in tests/fuzz/corpus/profile
# plus fresh ones from the independent Python encoder. Fails on any crash, leak, sanitizer
# report or timeout; the input that caused it is kept in $BUILD/fuzz/profile-artifacts/.
#
# The reader's sources are compiled straight into the fuzzer with clang (build/libmemsnap.a
# is gcc-built, without coverage instrumentation).
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
build="${BUILD:-build}"
seconds="${FUZZ_SECONDS:-60}"
cc="${FUZZ_CC:-clang}"

. "$here/scripts/fuzz-common.sh"
fuzz_require "the profile reader"

out="$build/fuzz"
mkdir -p "$out/profile-corpus" "$out/profile-artifacts"
if [ ! -f "$build/gen/profile.pb-c.c" ]; then
  mkdir -p "$build/gen"
  protoc-c --proto_path=proto --c_out="$build/gen" proto/profile.proto || exit 1
fi
bin="$out/fuzz_profile_read"
. scripts/sampler-includes.sh .
if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined "${SAMPLER_INC[@]}" -Iproto -I"$build/gen" \
  tests/fuzz/fuzz_profile_read.c proto/*.c sampler/common/error.c "$build/gen/profile.pb-c.c" \
  -lprotobuf-c -lz -ldeflate -o "$bin"; then
  echo "profile fuzzer: build failed" >&2
  exit 1
fi

cp tests/fuzz/corpus/profile/* "$out/profile-corpus/" 2>/dev/null
if [ -x /usr/bin/python3 ]; then
  for seed in $RANDOM $RANDOM; do
    /usr/bin/python3 tests/decode/pprof_encode.py "$out/profile-corpus/py-$seed.pb" --raw "$seed" \
      >/dev/null 2>&1 || true
  done
fi

# Inputs up to 64 KiB; one run may use at most 2 GiB (the reader's own cap is the test).
fuzz_run profile "$bin" "$out/profile-corpus" "$seconds" -max_len=65536 -rss_limit_mb=2560
