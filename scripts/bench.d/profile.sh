#!/usr/bin/env bash
# profile.sh - the profile library on a profile of BENCH_SAMPLES (default 1,000,000) samples
# of BENCH_DEPTH (default 40) frames: build, write (raw and gzip), read (raw and gzip) with
# memsnap's decoder, and protobuf-c's unpack of the same raw file side by side, printed with
# the ratio of the two readers. Each step runs in its own process (its own peak RSS).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
build="${BUILD:-build}"
samples="${BENCH_SAMPLES:-1000000}"
depth="${BENCH_DEPTH:-40}"
make -s "$build/libmemsnap.a" >/dev/null
bin="$build/bench/bench_profile"
mkdir -p "$build/bench"
cc -std=c11 -D_GNU_SOURCE -O2 -g -Isampler -Iproto -I"$build/gen" tests/bench/bench_profile.c \
  "$build/libmemsnap.a" $(pkg-config --libs libprotobuf-c zlib) -o "$bin"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

val() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
echo "profile: $samples samples x $depth frames"
w_raw="$("$bin" write "$tmp/p.pb" "$samples" "$depth" 0)"
w_gz="$("$bin" write "$tmp/p.pb.gz" "$samples" "$depth" 1)"
r_raw="$("$bin" read "$tmp/p.pb")"
r_gz="$("$bin" read "$tmp/p.pb.gz")"
u_raw="$("$bin" unpack "$tmp/p.pb")"
printf '  build (in memory)          %6.3f s\n' "$(echo "$w_raw" | val build_s)"
printf '  write raw                  %6.3f s  %6d MB file\n' "$(echo "$w_raw" | val write_s)" \
  "$(( $(echo "$w_raw" | val bytes) / 1000000 ))"
printf '  write gzip                 %6.3f s  %6d MB file\n' "$(echo "$w_gz" | val write_s)" \
  "$(( $(echo "$w_gz" | val bytes) / 1000000 ))"
printf '  read raw (memsnap)         %6.3f s  %6d MB peak RSS\n' "$(echo "$r_raw" | val read_s)" \
  "$(echo "$r_raw" | val rss_mb)"
printf '  read gzip (memsnap)        %6.3f s  %6d MB peak RSS\n' "$(echo "$r_gz" | val read_s)" \
  "$(echo "$r_gz" | val rss_mb)"
printf '  unpack raw (protobuf-c)    %6.3f s  %6d MB peak RSS\n' "$(echo "$u_raw" | val unpack_s)" \
  "$(echo "$u_raw" | val rss_mb)"
awk -v a="$(echo "$u_raw" | val unpack_s)" -v b="$(echo "$r_raw" | val read_s)" \
  -v c="$(echo "$u_raw" | val rss_mb)" -v d="$(echo "$r_raw" | val rss_mb)" \
  'BEGIN { printf "  memsnap reader vs protobuf-c unpack (raw, same file): %.1fx faster, %.1fx less memory\n", a / b, c / d }'
