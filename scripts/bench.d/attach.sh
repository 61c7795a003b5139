#!/usr/bin/env bash
# attach.sh - what `memsnap attach` costs the process it records, measured side by side:
#   1. the longest pause of the target's hijacked thread during injection and the attach
#      latency (command start -> hook recording), min/median (memsnap attach --stats): for
#      first attaches (FIRST_RUNS fresh targets: the hook is dlopen'ed) and for later ones
#      (LATENCY_RUNS attaches to one target: the loaded hook is reused);
#   2. overhead of the allocation-heavy workload (tests/py/run_workload.py) while attached at
#      the default rate, beside plain, `-X tracemalloc=1` and the allocator pass-through (the
#      functions the attached hook wraps, wrapped by wrappers that only call through:
#      tests/bench/passthru.c, the floor under any profiler that wraps CPython's allocator),
#      interleaved round by round: min and median of the wall time and of the target's own CPU
#      time, ratios of the medians to plain, and attached over pass-through paired per round
#      (memsnap's own part); with perf, the hook library's share of the attached target's CPU
#      samples (in three more attached runs, untimed);
#   3. target RSS added while recording and left after detach (goals: <= 2 MB, <= 0.5 MB).
#   Part 2 runs again, without tracemalloc, on `python3` on PATH when that is another
#   interpreter (pyenv's, built without PGO; PYTHON2 overrides, "none" skips it).
# Usage: attach.sh MEMSNAP [ROUNDS]    env: PYTHON (default /usr/bin/python3), PYTHON2,
#                                      LATENCY_RUNS, FIRST_RUNS, BENCH_ROUNDS (default 7).
set -euo pipefail
memsnap="${1:?usage: attach.sh MEMSNAP [ROUNDS]}"
rounds="${2:-${BENCH_ROUNDS:-7}}"
runs="${LATENCY_RUNS:-20}"
first_runs="${FIRST_RUNS:-6}"
py="${PYTHON:-/usr/bin/python3}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$here/build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
passthru="$build/bench/passthru.so"
make -s -C "$here" "BUILD=$build" "$passthru"
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
stop_target() { exec 9>&-; kill "$target_pid" 2>/dev/null || true; wait "$target_pid" 2>/dev/null || true; }

# One attach of 50 ms recording to target_pid; appends "attach_ms pause_ms command_ms" to $1.
attach_once() {
  local t0 t1 a p
  t0=$(date +%s%N)
  "$memsnap" attach "$target_pid" --duration 0.05 --quiet --stats -o "$tmp/lat.pb" \
    > /dev/null 2> "$tmp/stats"
  t1=$(date +%s%N)
  a=$(sed -n 's/.*attach_ms=\([0-9.]*\).*/\1/p' "$tmp/stats")
  p=$(sed -n 's/.*inject_pause_ms=\([0-9.]*\).*/\1/p' "$tmp/stats")
  echo "$a $p $(( (t1 - t0) / 1000000 ))" >> "$1"
}
row() { # label file column
  printf '  %-50s min %7.2f  median %7.2f\n' "$1" "$(cut -d' ' -f"$3" "$2" | minimum)" \
    "$(cut -d' ' -f"$3" "$2" | median)"
}

echo "python: $py ($("$py" -c 'import sys; print(sys.version.split()[0])')); load: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. pause and latency: first attaches (fresh targets), then later ones (hook reused)
: > "$tmp/first"; : > "$tmp/again"
for i in $(seq "$first_runs"); do
  start_target idle "$py" "$here/tests/py/attach_target.py"
  echo idle >&9; wait_line "$target_out" "mode idle" >/dev/null
  attach_once "$tmp/first"
  stop_target
done
start_target idle "$py" "$here/tests/py/attach_target.py"
echo idle >&9; wait_line "$target_out" "mode idle" >/dev/null
attach_once "$tmp/first" # loads the hook; not counted below
for i in $(seq "$runs"); do attach_once "$tmp/again"; done
stop_target
echo "injection into an idle target (ms; goal: longest pause <= 2):"
row "first attach ($((first_runs + 1))x, dlopen): longest pause of the thread" "$tmp/first" 2
row "first attach: command start -> hook recording" "$tmp/first" 1
row "later attach (${runs}x, hook reused): longest pause" "$tmp/again" 2
row "later attach: command start -> hook recording" "$tmp/again" 1
row "later attach: whole command (50 ms recording + stop)" "$tmp/again" 3

# 2. overhead, interleaved
perf_ok=0
if command -v perf > /dev/null && perf record -q -e cpu-clock -o "$tmp/probe.data" true > /dev/null 2>&1; then
  perf_ok=1
fi
bench_one() { # mode [perf] -> prints "wall cpu" of the workload
  local mode="$1" profile="${2:-}" m="" pp=""
  case "$mode" in
    plain) start_target w "$wpy" "$here/tests/py/attach_bench.py" ;;
    attached) start_target w "$wpy" "$here/tests/py/attach_bench.py"
      "$memsnap" attach "$target_pid" --quiet -o "$tmp/w.pb" > /dev/null 2>&1 &
      m=$!; pids+=("$m")
      for _ in $(seq 200); do ring_mapped "$target_pid" && break; sleep 0.02; done
      sleep 0.2
      if [ -n "$profile" ]; then
        perf record -q -e cpu-clock -F 2000 -p "$target_pid" -o "$tmp/perf.data" > /dev/null 2>&1 &
        pp=$!; sleep 0.2
      fi ;;
    tm1) start_target w "$wpy" -X tracemalloc=1 "$here/tests/py/attach_bench.py" ;;
    floor) start_target w "$wpy" "$here/tests/py/passthru_run.py" "$passthru" \
      "$here/tests/py/attach_bench.py" ;;
  esac
  echo go >&9
  local line; line=$(wait_line "$target_out" "elapsed")
  grep '^checksum' "$target_out" >> "$tmp/checksums"
  if [ -n "$pp" ]; then
    kill -INT "$pp" 2>/dev/null || true; wait "$pp" 2>/dev/null || true
    perf report -i "$tmp/perf.data" --no-children --sort dso -q -g none 2>/dev/null |
      awk '/memsnap_hook/ {s += $1} END {print s + 0}' >> "$tmp/share"
  fi
  exec 9>&-
  if [ -n "$m" ]; then kill -INT "$m" 2>/dev/null || true; wait "$m" || echo "memsnap attach failed" >&2; fi
  wait "$target_pid" 2>/dev/null || true
  echo "$line" | awk '{print $2, $4}'
}
label_of() {
  case "$1" in
    plain) echo "plain" ;;
    attached) echo "memsnap attach (default rate)" ;;
    floor) echo "allocator pass-through" ;;
    tm1) echo "-X tracemalloc=1" ;;
  esac
}
# Measures the workload on interpreter $1 in the modes that follow (plain first).
overhead() {
  wpy="$1"; shift
  local modes=("$@") m r k i f w c base_wall base_cpu
  for m in "${modes[@]}"; do : > "$tmp/t.$m"; done
  : > "$tmp/checksums"; : > "$tmp/share"
  for r in $(seq "$rounds"); do
    for k in "${!modes[@]}"; do # rotate the order each round
      m="${modes[$(( (k + r) % ${#modes[@]} ))]}"
      bench_one "$m" >> "$tmp/t.$m"
    done
  done
  # The hook's share comes from extra attached runs under perf, so that perf's own sampling
  # does not weigh on the timed ones.
  if [ "$perf_ok" = 1 ]; then
    for r in 1 2 3; do bench_one attached perf > /dev/null; done
  fi
  if [ "$(sort -u "$tmp/checksums" | wc -l)" != 1 ]; then echo "workload checksums differ" >&2; exit 1; fi
  base_wall=$(cut -d' ' -f1 "$tmp/t.plain" | median)
  base_cpu=$(cut -d' ' -f2 "$tmp/t.plain" | median)
  echo "workload (tests/py/run_workload.py) on $wpy, $rounds rounds interleaved (s; ratios of medians; goal attach <= 1.03x):"
  printf '  %-32s %8s %8s %7s   %8s %8s %7s\n' "" "wall min" "median" "ratio" "cpu min" "median" "ratio"
  for m in "${modes[@]}"; do
    f="$tmp/t.$m"
    w=$(cut -d' ' -f1 "$f" | median); c=$(cut -d' ' -f2 "$f" | median)
    printf '  %-32s %8.3f %8.3f %6.3fx   %8.3f %8.3f %6.3fx\n' "$(label_of "$m")" \
      "$(cut -d' ' -f1 "$f" | minimum)" "$w" "$(echo "$w / $base_wall" | bc -l)" \
      "$(cut -d' ' -f2 "$f" | minimum)" "$c" "$(echo "$c / $base_cpu" | bc -l)"
  done
  printf '  %-32s %s %6.3fx\n' "attached over pass-through" "(median of per-round ratios, wall)" \
    "$(paste -d' ' "$tmp/t.attached" "$tmp/t.floor" | awk '{print $1 / $3}' | median)"
  if [ -s "$tmp/share" ]; then
    printf '  hook library share of the attached target'"'"'s CPU samples (perf): min %.2f%%  median %.2f%%\n' \
      "$(minimum < "$tmp/share")" "$(median < "$tmp/share")"
  fi
}
overhead "$py" plain attached floor tm1
# Then `python3` on PATH (pyenv's, no PGO: wrapping its allocator costs next to nothing) when
# it is another interpreter; it may be a pyenv shim, so measure the interpreter the shim runs.
py2="${PYTHON2:-$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)}"
if [ "$py2" = none ]; then
  :
elif [ -z "$py2" ] || ! "$py2" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info[:2] <= (3, 14))' 2>/dev/null; then
  echo "attach.sh: no CPython 3.8-3.14 as python3 on PATH: its overhead table is skipped"
elif [ "$(readlink -f "$py2")" = "$(readlink -f "$py")" ]; then
  echo "attach.sh: python3 on PATH is $py, measured above"
else
  overhead "$py2" plain attached floor
fi

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
