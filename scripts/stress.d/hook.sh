#!/usr/bin/env bash
# hook.sh - memsnap dying under the hook, over and over, on every installed Python.
#
# For each Python and HOOK_STRESS_ROUNDS rounds (default 10): the allocation-heavy workload
# runs with the hook recording at rate 1 (the busiest hot path), drained by
# tests/bench/hook_drain.c; the drainer is SIGKILLed at a random moment. Then, while the
# workload keeps running: within 2.5 s the hook's watchdog must have stopped (no control thread,
# no ring mapping left in the target), and the workload must finish with the same checksum
# as a plain run. Finally test_hook runs HOOK_STRESS_REPEAT times (default 3) back to back.
# Usage: hook.sh [MEMSNAP]   env: BUILD, HOOK_STRESS_ROUNDS, HOOK_STRESS_REPEAT.
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$here/build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
rounds="${HOOK_STRESS_ROUNDS:-10}"
repeat="${HOOK_STRESS_REPEAT:-3}"
lib="$build/libmemsnap_hook.so"
work="$here/tests/py/run_workload.py"
export HOOK_BENCH_PY="$here/tests/py/hook_bench.py"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$build/bench"
drain="$build/bench/hook_drain"
. "$here/scripts/sampler-includes.sh" "$here"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 "${SAMPLER_INC[@]}" \
  "$here/tests/bench/hook_drain.c" "$build/libmemsnap.a" -o "$drain" || exit 1

pythons=(/usr/bin/python3)
root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
for v in 3.8 3.9 3.10 3.11 3.12 3.13 3.14; do
  p="$(ls -d "$root"/versions/"$v".*/bin/python3 2>/dev/null | sort -V | tail -1)"
  if [ -n "$p" ]; then pythons+=("$p"); else echo "SKIP: pyenv $v is not installed"; fi
done

status=0
for py in "${pythons[@]}"; do
  [ -x "$py" ] || { echo "SKIP: $py is not installed"; continue; }
  expected="$("$py" "$work" 400)"
  ok=0
  for ((r = 0; r < rounds; r++)); do
    out="$tmp/out.$r"
    HOOK_BENCH_OUT="$out" HOOK_RING_BYTES=$((16 << 20)) "$drain" 1 "$py" "$lib" "$work" 400 \
      >/dev/null 2>"$tmp/drain.err" &
    dpid=$!
    sleep "0.$((RANDOM % 9 + 1))"
    target="$(pgrep -P "$dpid" | head -1)"
    kill -9 "$dpid" 2>/dev/null
    wait "$dpid" 2>/dev/null
    if [ -z "$target" ]; then echo "$py round $r: the workload had not started"; status=1; continue; fi
    stopped=0
    for ((t = 0; t < 25; t++)); do
      sleep 0.1
      if ! grep -q memsnap-ring "/proc/$target/maps" 2>/dev/null &&
        ! grep -qs memsnap-hook /proc/"$target"/task/*/comm; then
        stopped=1
        break
      fi
    done
    while kill -0 "$target" 2>/dev/null; do sleep 0.1; done
    got="$(cat "$out" 2>/dev/null)"
    if [ "$stopped" != 1 ]; then
      echo "$py round $r: hook still recording 2.5 s after its memsnap died"; status=1
    elif [ "$got" != "$expected" ]; then
      echo "$py round $r: workload printed '$got', expected '$expected'"; status=1
    else
      ok=$((ok + 1))
    fi
  done
  echo "$py: $ok of $rounds rounds survived a SIGKILLed drainer"
done

for ((i = 0; i < repeat; i++)); do
  if ! MEMSNAP="${MEMSNAP:-$build/memsnap}" "$build/tests/test_hook" >"$tmp/test_hook.log" 2>&1; then
    tail -20 "$tmp/test_hook.log"
    echo "test_hook failed on repeat $i"; status=1
  fi
done
echo "test_hook: $repeat repeats done"
exit $status
