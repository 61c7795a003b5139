#!/usr/bin/env bash
# attach.sh - what `memsnap attach` costs the process it records, measured side by side:
#   1. attach latency (command start -> hook recording) and the longest pause of the target's
#      hijacked thread during injection, min/median over N attaches (memsnap attach --stats);
#   2. CPU overhead of the allocation-heavy workload (tests/py/run_workload.py) while
#      attached at the default rate, beside plain and `-X tracemalloc=1`, interleaved round by
#      round, medians and ratios;
#   3. target RSS added while recording and left after detach (goals: <= 2 MB, <= 0.5 MB).
# Usage: attach.sh MEMSNAP [ROUNDS]    env: PYTHON (default /usr/bin/python3), LATENCY_RUNS.
set -euo pipefail
memsnap="${1:?usage: attach.sh MEMSNAP [ROUNDS]}"
rounds="${2:-${BENCH_ROUNDS:-5}}"
runs="${LATENCY_RUNS:-20}"
py="${PYTHON:-/usr/bin/python3}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
minimum() { sort -g | head -1; }
rss_kib() { awk '{print $2 * 4}' "/proc/$1/statm"; }
ring_mapped() { grep -q 'memfd:memsnap-ring' "/proc/$1/maps" 2>/dev/null; }

# Starts a python program with a fifo as stdin; sets target_pid, target_out, and fd 9 writes
# to its stdin. Waits for its "ready" line.
start_target() {
  local name="$1"; shift
  rm -f "$tmp/$name.in"; mkfifo "$tmp/$name.in"
  target_out="$tmp/$name.out"; : > "$target_out"
  "$@" < "$tmp/$name.in" > "$target_out" 2>&1 &
  target_pid=$!; pids+=("$target_pid")
  exec 9> "$tmp/$name.in"
  for _ in $(seq 200); do grep -q '^ready' "$target_out" && return 0; sleep 0.05; done
  echo "target $* did not start" >&2; return 1
}
wait_line() { # file prefix
  for _ in $(seq 1200); do grep -q "^$2" "$1" && { grep "^$2" "$1" | tail -1; return 0; }; sleep 0.05; done
  return 1
}

echo "python: $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"

# 1. latency and pause
start_target idle "$py" "$here/tests/py/attach_target.py"
echo idle >&9; wait_line "$target_out" "mode idle" >/dev/null
: > "$tmp/lat"
for i in $(seq "$runs"); do
  t0=$(date +%s%N)
  "$memsnap" attach "$target_pid" --duration 0.05 --quiet --stats -o "$tmp/lat.pb" \
    > /dev/null 2> "$tmp/stats"
  t1=$(date +%s%N)
  a=$(sed -n 's/.*attach_ms=\([0-9.]*\).*/\1/p' "$tmp/stats")
  p=$(sed -n 's/.*inject_pause_ms=\([0-9.]*\).*/\1/p' "$tmp/stats")
  echo "$a $p $(( (t1 - t0) / 1000000 ))" >> "$tmp/lat"
done
echo "attach latency over $runs attaches to an idle target (ms):"
printf '  %-44s min %7.2f  median %7.2f\n' "command start -> hook recording" \
  "$(cut -d' ' -f1 "$tmp/lat" | minimum)" "$(cut -d' ' -f1 "$tmp/lat" | median)"
printf '  %-44s min %7.2f  median %7.2f\n' "longest pause of the hijacked thread" \
  "$(cut -d' ' -f2 "$tmp/lat" | minimum)" "$(cut -d' ' -f2 "$tmp/lat" | median)"
printf '  %-44s min %7.2f  median %7.2f\n' "whole command (incl. 50 ms recording + stop)" \
  "$(cut -d' ' -f3 "$tmp/lat" | minimum)" "$(cut -d' ' -f3 "$tmp/lat" | median)"
exec 9>&-; kill "$target_pid" 2>/dev/null || true; wait "$target_pid" 2>/dev/null || true

# 2. overhead, interleaved
bench_one() { # mode -> prints elapsed seconds of the workload
  local mode="$1" m=""
  case "$mode" in
    plain) start_target w "$py" "$here/tests/py/attach_bench.py" ;;
    attached) start_target w "$py" "$here/tests/py/attach_bench.py"
      "$memsnap" attach "$target_pid" --quiet -o "$tmp/w.pb" > /dev/null 2>&1 &
      m=$!; pids+=("$m")
      for _ in $(seq 200); do ring_mapped "$target_pid" && break; sleep 0.02; done
      sleep 0.2 ;;
    tm1) start_target w "$py" -X tracemalloc=1 "$here/tests/py/attach_bench.py" ;;
  esac
  echo go >&9
  local line; line=$(wait_line "$target_out" "elapsed")
  grep '^checksum' "$target_out" >> "$tmp/checksums"
  exec 9>&-
  if [ -n "$m" ]; then kill -INT "$m" 2>/dev/null || true; wait "$m" || echo "memsnap attach failed" >&2; fi
  wait "$target_pid" 2>/dev/null || true
  echo "${line#elapsed }"
}
modes=(plain attached tm1)
labels=("plain" "memsnap attach (default rate)" "-X tracemalloc=1")
for m in "${modes[@]}"; do : > "$tmp/t.$m"; done
: > "$tmp/checksums"
for r in $(seq "$rounds"); do
  for m in "${modes[@]}"; do bench_one "$m" >> "$tmp/t.$m"; done
done
if [ "$(sort -u "$tmp/checksums" | wc -l)" != 1 ]; then echo "workload checksums differ" >&2; exit 1; fi
base=$(median < "$tmp/t.plain")
echo "workload (tests/py/run_workload.py) median of $rounds rounds, interleaved:"
for i in "${!modes[@]}"; do
  t=$(median < "$tmp/t.${modes[$i]}")
  printf '  %-34s %7.3f s  %5.2fx\n' "${labels[$i]}" "$t" "$(echo "$t / $base" | bc -l)"
done

# 3. RSS added to an active target while recording and after detach
start_target rss "$py" "$here/tests/py/attach_target.py"
echo churn >&9; wait_line "$target_out" "mode churn" >/dev/null
sleep 1
r0=$(rss_kib "$target_pid")
"$memsnap" attach "$target_pid" --quiet -o "$tmp/rss.pb" > /dev/null 2>&1 &
m=$!; pids+=("$m")
sleep 3
r1=$(rss_kib "$target_pid")
kill -INT "$m"; wait "$m"
sleep 0.5
r2=$(rss_kib "$target_pid")
"$memsnap" attach "$target_pid" --quiet --duration 2 -o "$tmp/rss.pb" > /dev/null 2>&1
sleep 0.5
r3=$(rss_kib "$target_pid")
echo "target RSS (attach_target.py churning, default rate):"
printf '  %-40s %8d KiB\n' "before the first attach" "$r0"
printf '  %-40s %+8d KiB  (goal <= 2048)\n' "while recording" "$((r1 - r0))"
printf '  %-40s %+8d KiB  (goal <= 512)\n' "after detach" "$((r2 - r0))"
printf '  %-40s %+8d KiB\n' "after a second attach/detach" "$((r3 - r0))"
exec 9>&-
