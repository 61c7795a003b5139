#!/usr/bin/env bash
# run.sh - what `memsnap run` costs the program it profiles, beside tracemalloc.
#
# Runs tests/py/run_workload.py (dicts, JSON round trips, string joins, lists; ~1.5 s plain)
# with Debian's python3 in six ways, interleaved round by round so machine noise hits all
# of them alike, and prints the median wall time of each and its ratio to the plain run, then
# the same for the workload's own wall and CPU time, measured inside the program (so without
# memsnap's start, injection and profile writing, which cost a fixed ~50 ms), and the fastest
# run of each beside the fastest plain one (the least disturbed by the machine's other load):
#   plain                     python3 run_workload.py
#   memsnap run (exact)       every allocation recorded (rate 1, the default)
#   memsnap run --rate R      sampled at attach's default rate (R, bytes)
#   allocator pass-through    the functions sampled mode wraps, wrapped by wrappers that only
#                             call through (tests/bench/passthru.c): what wrapping CPython's
#                             allocator costs by itself, the floor under sampled mode
#   -X tracemalloc=1          tracemalloc, 1 frame per trace
#   -X tracemalloc=25         tracemalloc, 25 frames per trace
# Usage: run.sh MEMSNAP [ROUNDS]    env: PYTHON (default /usr/bin/python3), BENCH_RATE.
set -euo pipefail
memsnap="${1:?usage: run.sh MEMSNAP [ROUNDS]}"
rounds="${2:-${BENCH_ROUNDS:-5}}"
py="${PYTHON:-/usr/bin/python3}"
rate="${BENCH_RATE:-524288}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
work="$here/tests/py/run_workload.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
build="${BUILD:-$here/build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
mkdir -p "$build/bench"
passthru="$build/bench/passthru.so"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -fPIC -shared -I"$here/sampler" "$here/tests/bench/passthru.c" \
  -o "$passthru" -ldl

names=(plain exact sampled floor tm1 tm25)
labels=("plain" "memsnap run (exact)" "memsnap run --rate $rate" "allocator pass-through"
        "-X tracemalloc=1" "-X tracemalloc=25")
run_one() {
  case "$1" in
    plain) "$py" "$work" ;;
    exact) "$memsnap" run -o "$tmp/exact.pb" -- "$py" "$work" ;;
    sampled) "$memsnap" run --rate "$rate" -o "$tmp/sampled.pb" -- "$py" "$work" ;;
    floor) "$py" "$here/tests/py/passthru_run.py" "$passthru" "$work" ;;
    tm1) "$py" -X tracemalloc=1 "$work" ;;
    tm25) "$py" -X tracemalloc=25 "$work" ;;
  esac
}

expected="$("$py" "$work")"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#names[@]}; k++)); do
    n="${names[$(((k + r) % ${#names[@]}))]}"
    t0=$(date +%s%N)
    out="$(MEMSNAP_BENCH_TIMES="$tmp/$n.in" run_one "$n" 2>"$tmp/$n.err")" || { echo "run.sh: $n failed:"; cat "$tmp/$n.err"; exit 1; }
    t1=$(date +%s%N)
    if [ "$out" != "$expected" ]; then echo "run.sh: $n printed '$out', expected '$expected'"; exit 1; fi
    echo $(((t1 - t0) / 1000000)) >>"$tmp/$n.ms"
  done
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
base=$(median "$tmp/plain.ms")
fmedian() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
in_wall0=$(cut -d' ' -f1 "$tmp/plain.in" | fmedian)
in_cpu0=$(cut -d' ' -f2 "$tmp/plain.in" | fmedian)
fmin() { sort -g | head -1; }
in_best0=$(cut -d' ' -f1 "$tmp/plain.in" | fmin)
# The median over rounds of each round's own ratio to its plain run: runs of one round are
# seconds apart, so a slow spell of the machine weighs on both sides of the ratio.
paired() { paste -d' ' <(cut -d' ' -f1 "$tmp/$1.in") <(cut -d' ' -f1 "$tmp/plain.in") |
  awk '{print $1 / $2}' | fmedian; }
printf '%-28s %10s %8s   %14s %8s %13s %8s %11s %8s %8s   (%s, %d rounds, medians; best = fastest run; paired = median of per-round ratios)\n' \
  "variant" "command ms" "ratio" "workload wall" "ratio" "workload cpu" "ratio" "best wall" "ratio" \
  "paired" "$py" "$rounds"
for ((k = 0; k < ${#names[@]}; k++)); do
  m=$(median "$tmp/${names[$k]}.ms")
  w=$(cut -d' ' -f1 "$tmp/${names[$k]}.in" | fmedian)
  c=$(cut -d' ' -f2 "$tmp/${names[$k]}.in" | fmedian)
  b=$(cut -d' ' -f1 "$tmp/${names[$k]}.in" | fmin)
  printf '%-28s %10d %8s   %13.3fs %8s %12.3fs %8s %10.3fs %8s %7.3fx\n' "${labels[$k]}" "$m" \
    "$(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.3fx", a / b}')" "$w" \
    "$(awk -v a="$w" -v b="$in_wall0" 'BEGIN {printf "%.3fx", a / b}')" "$c" \
    "$(awk -v a="$c" -v b="$in_cpu0" 'BEGIN {printf "%.3fx", a / b}')" "$b" \
    "$(awk -v a="$b" -v b="$in_best0" 'BEGIN {printf "%.3fx", a / b}')" "$(paired "${names[$k]}")"
done
