#!/usr/bin/env bash
# hook.sh - what libmemsnap_hook.so costs the process it records, beside tracemalloc.
#
# Runs tests/py/run_workload.py (dicts, JSON round trips, string joins, lists) under Debian's
# python3 in four ways, interleaved round by round so machine noise hits all of them alike:
#   plain               the script alone (through tests/py/hook_bench.py, same ctypes import)
#   hook --rate R       hook started via ctypes at the default rate (R bytes), drained every
#                       10 ms by tests/bench/hook_drain.c as memsnap would
#   hook --rate 1       every allocation recorded and drained (64 MiB ring: nothing dropped)
#   -X tracemalloc=1    tracemalloc, 1 frame per trace
# and prints, per variant, the median wall time and median CPU time (user+sys) of the Python
# process alone (the drainer's own CPU is not counted; it is printed separately), with ratios
# to plain, then (with perf) the hook's share of the process's CPU samples.
# Usage: hook.sh [MEMSNAP] [ROUNDS]   env: PYTHON, BENCH_RATE, BENCH_ROUNDS, BUILD.
set -euo pipefail
rounds="${2:-${BENCH_ROUNDS:-7}}"
py="${PYTHON:-/usr/bin/python3}"
rate="${BENCH_RATE:-524288}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$here/build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
lib="$build/libmemsnap_hook.so"
work="$here/tests/py/run_workload.py"
export HOOK_BENCH_PY="$here/tests/py/hook_bench.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

[ -f "$lib" ] || { echo "hook.sh: $lib is not built (make)"; exit 1; }
mkdir -p "$build/bench"
drain="$build/bench/hook_drain"
. "$here/scripts/sampler-includes.sh" "$here"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 "${SAMPLER_INC[@]}" \
  "$here/tests/bench/hook_drain.c" "$build/libmemsnap.a" -o "$drain"

names=(plain sampled exact tm1)
labels=("plain" "hook --rate $rate" "hook --rate 1" "-X tracemalloc=1")
# Each run writes the python process's "wall user sys" (from /usr/bin/time inside the drainer's
# child would count the drainer too, so time wraps python itself via the env var below).
run_one() {
  local timing="$tmp/$1.t"
  case "$1" in
    plain) /usr/bin/time -o "$timing" -f "%e %U %S" "$py" "$HOOK_BENCH_PY" "$lib" none "$work" ;;
    sampled | exact)
      local r=$rate
      local ring=0
      # rate 1 outruns a 4 MiB ring between 10 ms drains; drops would flatter the hook
      [ "$1" = exact ] && r=1 && ring=$((64 << 20))
      HOOK_RING_BYTES="$ring" HOOK_TIME_FILE="$timing" "$drain" "$r" "$py" "$lib" "$work" 2>>"$tmp/$1.drain" ;;
    tm1) /usr/bin/time -o "$timing" -f "%e %U %S" "$py" -X tracemalloc=1 "$HOOK_BENCH_PY" "$lib" none "$work" ;;
  esac
}

expected="$("$py" "$work")"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#names[@]}; k++)); do
    n="${names[$(((k + r) % ${#names[@]}))]}"
    out="$(run_one "$n")" || { echo "hook.sh: $n failed"; cat "$tmp/$n.drain" 2>/dev/null; exit 1; }
    if [ "$out" != "$expected" ]; then echo "hook.sh: $n printed '$out', expected '$expected'"; exit 1; fi
    read -r wall user sys <"$tmp/$n.t"
    echo "$wall" >>"$tmp/$n.wall"
    awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}' >>"$tmp/$n.cpu"
  done
done

median() { sort -g "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
bw=$(median "$tmp/plain.wall")
bc=$(median "$tmp/plain.cpu")
printf '%-22s %9s %7s %9s %7s   (%s, %d rounds, medians)\n' variant "wall s" ratio "cpu s" ratio "$py" "$rounds"
for ((k = 0; k < ${#names[@]}; k++)); do
  w=$(median "$tmp/${names[$k]}.wall")
  c=$(median "$tmp/${names[$k]}.cpu")
  printf '%-22s %9.2f %7s %9.2f %7s\n' "${labels[$k]}" "$w" \
    "$(awk -v a="$w" -v b="$bw" 'BEGIN {printf "%.3fx", a / b}')" "$c" \
    "$(awk -v a="$c" -v b="$bc" 'BEGIN {printf "%.3fx", a / b}')"
done
for n in sampled exact; do
  echo "$n: $(tail -1 "$tmp/$n.drain")"
done

# Wall and CPU ratios on a shared 2-core box swing by more than the 3% being measured, so
# also count where the profiled process's own CPU samples land (perf, software clock): the
# share inside libmemsnap_hook.so is the hook's cost, measured within one run.
if command -v perf >/dev/null 2>&1; then
  for r in "$rate" 1; do
    ring=0
    [ "$r" = 1 ] && ring=$((64 << 20))
    if HOOK_RING_BYTES=$ring perf record -q -e cpu-clock -F 2000 -o "$tmp/perf.data" \
      "$drain" "$r" "$py" "$lib" "$work" >/dev/null 2>&1; then
      share=$(perf report -i "$tmp/perf.data" --no-children --comm "$(basename "$py")" \
        --sort dso 2>/dev/null | awk '/libmemsnap_hook/ {print $1}')
      echo "hook --rate $r: ${share:-0%} of the python process's CPU samples are in libmemsnap_hook.so"
    fi
  done
fi
