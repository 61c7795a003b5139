#!/usr/bin/env bash
# profile.sh - the profile library on a profile of BENCH_SAMPLES (default 1,000,000) samples
# of BENCH_DEPTH (default 40) frames, with call-tree-shaped stacks and with random ones: build,
# write (raw and gzip), read (raw and gzip) with memsnap's decoder, and protobuf-c's unpack of
# the same raw file side by side, printed with the ratio of the two readers. Each step runs in
# its own process (its own peak RSS); times are wall and CPU (the CPU time is the steadier one
# on a shared machine; for gzip writes it sums every compressing thread).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
build="${BUILD:-build}"
samples="${BENCH_SAMPLES:-1000000}"
depth="${BENCH_DEPTH:-40}"
make -s "$build/libmemsnap.a" >/dev/null
bin="$build/bench/bench_profile"
. scripts/sampler-includes.sh .
mkdir -p "$build/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -g "${SAMPLER_INC[@]}" -Iproto -I"$build/gen" tests/bench/bench_profile.c \
  "$build/libmemsnap.a" $(pkg-config --libs libprotobuf-c zlib libdeflate) -lpthread -o "$bin"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

val() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
for shape in tree random; do
  echo "profile: $samples samples x $depth frames, $shape stacks (wall s / cpu s, cpu = all threads)"
  w_raw="$("$bin" write "$tmp/p.pb" "$samples" "$depth" 0 "$shape")"
  w_gz="$("$bin" write "$tmp/p.pb.gz" "$samples" "$depth" 1 "$shape")"
  r_raw="$("$bin" read "$tmp/p.pb")"
  r_gz="$("$bin" read "$tmp/p.pb.gz")"
  u_raw="$("$bin" unpack "$tmp/p.pb")"
  line() { printf '  %-26s %6.3f / %6.3f s  %s\n' "$1" "$2" "$3" "$4"; }
  line "build (in memory)" "$(echo "$w_raw" | val build_s)" "$(echo "$w_raw" | val build_cpu)" ""
  line "write raw" "$(echo "$w_raw" | val write_s)" "$(echo "$w_raw" | val write_cpu)" \
    "$(($(echo "$w_raw" | val bytes) / 1000000)) MB file"
  line "write gzip" "$(echo "$w_gz" | val write_s)" "$(echo "$w_gz" | val write_cpu)" \
    "$(($(echo "$w_gz" | val bytes) / 1000000)) MB file"
  line "read raw (memsnap)" "$(echo "$r_raw" | val read_s)" "$(echo "$r_raw" | val read_cpu)" \
    "$(echo "$r_raw" | val rss_mb) MB peak RSS"
  line "read gzip (memsnap)" "$(echo "$r_gz" | val read_s)" "$(echo "$r_gz" | val read_cpu)" \
    "$(echo "$r_gz" | val rss_mb) MB peak RSS"
  line "unpack raw (protobuf-c)" "$(echo "$u_raw" | val unpack_s)" "$(echo "$u_raw" | val unpack_cpu)" \
    "$(echo "$u_raw" | val rss_mb) MB peak RSS"
  awk -v a="$(echo "$u_raw" | val unpack_cpu)" -v b="$(echo "$r_raw" | val read_cpu)" \
    -v c="$(echo "$u_raw" | val rss_mb)" -v d="$(echo "$r_raw" | val rss_mb)" \
    'BEGIN { printf "  memsnap reader vs protobuf-c unpack, same raw file: %.1fx less cpu, %.1fx less memory\n", a / b, c / d }'
done
