#!/usr/bin/env bash
# run.sh - what `memsnap run` costs the program it profiles, beside tracemalloc.
#
# Runs tests/py/run_workload.py (dicts, JSON round trips, string joins, lists; ~1 s plain)
# in up to six ways, interleaved round by round so machine noise hits all of them alike, and
# prints the median wall time of each and its ratio to the plain run, then the same for the
# workload's own wall and CPU time, measured inside the program (so without memsnap's start,
# injection and profile writing, which cost a fixed ~50 ms), the fastest run of each beside the
# fastest plain one (the least disturbed by the machine's other load), and the median of each
# round's own ratio to its plain run ("paired": runs of one round are seconds apart, so a slow
# spell of the machine weighs on both sides of the ratio):
#   plain                     python3 run_workload.py
#   memsnap run (exact)       every allocation recorded (rate 1, the default)
#   memsnap run --rate R      sampled at attach's default rate (R, bytes)
#   allocator pass-through    the functions sampled mode wraps, wrapped by wrappers that only
#                             call through (tests/bench/passthru.c): what wrapping CPython's
#                             allocator costs by itself, the floor under sampled mode
#   -X tracemalloc=1          tracemalloc, 1 frame per trace
#   -X tracemalloc=25         tracemalloc, 25 frames per trace
# Tables: Debian's python3 (built with PGO and LTO: pymalloc's fast path is inlined into
# its 190 callers behind a check that the allocator is still the default, so any wrapper loses
# it) with all six, then `python3` on PATH (pyenv's, built without PGO) when it is another
# interpreter, with the first four. Each table ends with sampled mode over the pass-through,
# paired per round: the part of sampled mode's cost that is memsnap's own, not the wrapping's.
# A third table measures Debian's python3 on tests/py/dicts_workload.py, the benchmark as
# anchors.md describes the one behind its tracemalloc figure (tracemalloc=1 about 6x), beside
# which the goals were set; run_workload.py allocates about twice as densely.
# Usage: run.sh MEMSNAP [ROUNDS]    env: PYTHON (default /usr/bin/python3), PYTHON2 (default
#                                   `python3` on PATH; "none" skips it), BENCH_RATE.
set -euo pipefail
memsnap="${1:?usage: run.sh MEMSNAP [ROUNDS]}"
rounds="${2:-${BENCH_ROUNDS:-5}}"
rate="${BENCH_RATE:-524288}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
build="${BUILD:-$here/build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
passthru="$build/bench/passthru.so"
make -s -C "$here" "BUILD=$build" "$passthru"

label() {
  case "$1" in
    plain) echo "plain" ;;
    exact) echo "memsnap run (exact)" ;;
    sampled) echo "memsnap run --rate $rate" ;;
    floor) echo "allocator pass-through" ;;
    tm1) echo "-X tracemalloc=1" ;;
    tm25) echo "-X tracemalloc=25" ;;
  esac
}

run_one() { # python variant (the workload is $work)
  case "$2" in
    plain) "$1" "$work" ;;
    exact) "$memsnap" run -o "$tmp/exact.pb" -- "$1" "$work" ;;
    sampled) "$memsnap" run --rate "$rate" -o "$tmp/sampled.pb" -- "$1" "$work" ;;
    floor) "$1" "$here/tests/py/passthru_run.py" "$passthru" "$work" ;;
    tm1) "$1" -X tracemalloc=1 "$work" ;;
    tm25) "$1" -X tracemalloc=25 "$work" ;;
  esac
}

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
fmedian() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
fmin() { sort -g | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3fx", a / b}'; }
# The median over rounds of each round's ratio of variant $1 to variant $2 (workload wall).
paired() { paste -d' ' <(cut -d' ' -f1 "$tmp/$1.in") <(cut -d' ' -f1 "$tmp/$2.in") |
  awk '{print $1 / $2}' | fmedian; }

# Measures workload $1 on interpreter $2 in the variants that follow (plain first) and prints
# the table.
table() {
  work="$1"; shift
  local py="$1"; shift
  local names=("$@") r k n t0 t1 out expected
  rm -f "$tmp"/*.in "$tmp"/*.ms
  expected="$("$py" "$work")"
  for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < ${#names[@]}; k++)); do
      n="${names[$(((k + r) % ${#names[@]}))]}"
      t0=$(date +%s%N)
      out="$(MEMSNAP_BENCH_TIMES="$tmp/$n.in" run_one "$py" "$n" 2>"$tmp/$n.err")" ||
        { echo "run.sh: $n ($py) failed:"; cat "$tmp/$n.err"; exit 1; }
      t1=$(date +%s%N)
      if [ "$out" != "$expected" ]; then echo "run.sh: $n printed '$out', expected '$expected'"; exit 1; fi
      echo $(((t1 - t0) / 1000000)) >>"$tmp/$n.ms"
    done
  done
  local base in_wall0 in_cpu0 in_best0 m w c b
  base=$(median "$tmp/plain.ms")
  in_wall0=$(cut -d' ' -f1 "$tmp/plain.in" | fmedian)
  in_cpu0=$(cut -d' ' -f2 "$tmp/plain.in" | fmedian)
  in_best0=$(cut -d' ' -f1 "$tmp/plain.in" | fmin)
  printf '%-28s %10s %8s   %14s %8s %13s %8s %11s %8s %8s   (%s, %d rounds, medians; best = fastest run; paired = median of per-round ratios)\n' \
    "variant" "command ms" "ratio" "workload wall" "ratio" "workload cpu" "ratio" "best wall" "ratio" \
    "paired" "$py $(basename "$work")" "$rounds"
  for n in "${names[@]}"; do
    m=$(median "$tmp/$n.ms")
    w=$(cut -d' ' -f1 "$tmp/$n.in" | fmedian)
    c=$(cut -d' ' -f2 "$tmp/$n.in" | fmedian)
    b=$(cut -d' ' -f1 "$tmp/$n.in" | fmin)
    printf '%-28s %10d %8s   %13.3fs %8s %12.3fs %8s %10.3fs %8s %7.3fx\n' "$(label "$n")" "$m" \
      "$(ratio "$m" "$base")" "$w" "$(ratio "$w" "$in_wall0")" "$c" "$(ratio "$c" "$in_cpu0")" \
      "$b" "$(ratio "$b" "$in_best0")" "$(paired "$n" plain)"
  done
  printf '%-28s %89s %7.3fx\n' "sampled over pass-through" "(memsnap's own part of sampled mode)" \
    "$(paired sampled floor)"
}

table "$here/tests/py/run_workload.py" "${PYTHON:-/usr/bin/python3}" plain exact sampled floor tm1 tm25
# `python3` on PATH may be a pyenv shim (a shell script): measure the interpreter it runs.
py2="${PYTHON2:-$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)}"
py1="$(readlink -f "${PYTHON:-/usr/bin/python3}")"
if [ "$py2" = none ]; then
  :
elif [ -z "$py2" ] || ! "$py2" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 14))' 2>/dev/null; then
  echo "run.sh: no CPython 3.8-3.14 as python3 on PATH: its table is skipped"
elif [ "$(readlink -f "$py2")" = "$py1" ]; then
  echo "run.sh: python3 on PATH is $py1, measured above: no second table"
else
  echo
  table "$here/tests/py/run_workload.py" "$py2" plain exact sampled floor
fi
echo
table "$here/tests/py/dicts_workload.py" "$py1" plain exact sampled floor tm1
