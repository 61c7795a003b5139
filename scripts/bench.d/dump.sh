#!/usr/bin/env bash
# dump.sh - what one `memsnap dump` of a 100-thread Python process costs, and how long the
# target is stopped while its stacks are read.
#
# For CPython 3.10 (threads are stopped with ptrace for the walk: frames are recycled heap
# objects) and 3.12 (read live, validated), starts a process with 100 threads parked a few
# frames deep (plus the main thread), runs `memsnap dump --stats` ROUNDS times and prints min
# and median of the wall time of the whole command, the time the walk took inside memsnap, and
# how long the threads were stopped (0 when read live). Checks every dump listed 101 threads.
# Usage: dump.sh MEMSNAP [ROUNDS]    env: BENCH_ROUNDS (default 20), PYENV_ROOT.
set -euo pipefail
memsnap="${1:?usage: dump.sh MEMSNAP [ROUNDS]}"
rounds="${2:-${BENCH_ROUNDS:-20}}"
root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
tmp="$(mktemp -d)"
target_pid=""
cleanup() { [ -n "$target_pid" ] && kill -9 "$target_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cat >"$tmp/threads.py" <<'PY'
import sys, threading
ready = threading.Barrier(101)
stop = threading.Event()
def leaf(i):
    ready.wait()
    stop.wait()
def mid(i):
    leaf(i)
def top(i):
    mid(i)
for i in range(100):
    threading.Thread(target=top, args=(i,), daemon=True).start()
ready.wait()
print("ready", flush=True)
sys.stdin.readline()
PY

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
minimum() { sort -n | head -1; }

printf '%-8s %-16s %12s %12s %12s %12s %12s %12s\n' python mode "cmd min" "cmd median" \
  "walk min" "walk median" "stop min" "stop median"
for v in 3.10 3.12; do
  py=$(ls -d "$root"/versions/"$v".*/bin/python3 2>/dev/null | tail -1 || true)
  if [ -z "$py" ]; then echo "SKIP: python $v is not installed under $root"; continue; fi
  fifo="$tmp/in.$v"; mkfifo "$fifo"
  "$py" "$tmp/threads.py" <"$fifo" >"$tmp/out.$v" &
  target_pid=$!
  exec 9>"$fifo"
  for _ in $(seq 200); do grep -q ready "$tmp/out.$v" 2>/dev/null && break; sleep 0.05; done
  : >"$tmp/cmd"; : >"$tmp/walk"; : >"$tmp/stop"; mode=""
  for _ in $(seq "$rounds"); do
    t0=$(date +%s%N)
    "$memsnap" dump --stats "$target_pid" >"$tmp/dump" 2>"$tmp/err"
    t1=$(date +%s%N)
    n=$(grep -c '^Thread ' "$tmp/dump")
    [ "$n" -eq 101 ] || { echo "dump listed $n threads, expected 101" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", (b-a)/1e6}' >>"$tmp/cmd"
    sed -n 's/.*wall \([0-9.]*\) ms.*/\1/p' "$tmp/err" >>"$tmp/walk"
    sed -n 's/.*stopped \([0-9.]*\) ms.*/\1/p' "$tmp/err" >>"$tmp/stop"
    mode=$(sed -n 's/.*(\(threads stopped\|read live\)).*/\1/p' "$tmp/err")
  done
  printf '%-8s %-16s %12s %12s %12s %12s %12s %12s\n' "$v" "$mode" \
    "$(minimum <"$tmp/cmd") ms" "$(median <"$tmp/cmd") ms" \
    "$(minimum <"$tmp/walk") ms" "$(median <"$tmp/walk") ms" \
    "$(minimum <"$tmp/stop") ms" "$(median <"$tmp/stop") ms"
  exec 9>&-
  wait "$target_pid" 2>/dev/null || true
  target_pid=""
done
echo "(cmd: whole memsnap process; walk: locate + snapshot inside memsnap; stop: first" \
  "PTRACE_INTERRUPT to last detach; $rounds rounds each)"
