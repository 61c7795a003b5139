#!/usr/bin/env bash
# inject.sh - getting the hook into a live process: memsnap's raw-ptrace injection beside a
# gdb-driven one (what memray attach and heaptrack -p do), measured in the same run on the
# same target.
#   memsnap: `memsnap attach --stats` reports start -> hook recording and the longest stop
#            of the hijacked thread; the whole command is also timed. The first attach loads
#            the hook (dlopen) and is shown apart; later ones reuse the loaded copy.
#   gdb:     `gdb -p PID -batch -ex 'call (void*)dlopen(PATH, RTLD_NOW)' -ex detach` loading a
#            fresh copy of the same libmemsnap_hook.so each time (so every dlopen does real
#            work); the whole command is timed.
# For both, the target's own ticker thread reports the longest gap it saw (every thread of the
# target stopped at once shows up there; gdb stops them all, memsnap stops one).
# Usage: inject.sh MEMSNAP [RUNS]    env: PYTHON (default /usr/bin/python3)
set -euo pipefail
memsnap="${1:?usage: inject.sh MEMSNAP [RUNS]}"
runs="${2:-${INJECT_RUNS:-11}}"
py="${PYTHON:-/usr/bin/python3}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD:-$here/build}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
hook="$build/libmemsnap_hook.so"
tmp="$(mktemp -d)"
target=""
cleanup() {
  [ -n "$target" ] && { kill -9 "$target" && wait "$target"; } 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
minimum() { sort -g | head -1; }
ms_since() { echo "$(( ($(date +%s%N) - $1) / 1000 ))" | awk '{printf "%.2f", $1/1000}'; }

mkfifo "$tmp/in"
"$py" "$here/tests/py/bench_ticker.py" < "$tmp/in" > "$tmp/out" 2>&1 &
target=$!
exec 9> "$tmp/in"
for _ in $(seq 100); do grep -q '^ready' "$tmp/out" && break; sleep 0.05; done
gap() { # resets the ticker, or prints its longest gap since the last call
  local before; before=$(grep -c '^gap' "$tmp/out" || true)
  echo gap >&9
  for _ in $(seq 200); do
    [ "$(grep -c '^gap' "$tmp/out" || true)" -gt "$before" ] && break; sleep 0.01
  done
  grep '^gap' "$tmp/out" | tail -1 | cut -d' ' -f2
}

echo "target: $py ($("$py" -c 'import sys; print(sys.version.split()[0])')), pid $target; $runs runs each"
: > "$tmp/memsnap"; : > "$tmp/gdb"
# gdb first: its copies are regular files, which leave nothing for the next injector.
if command -v gdb > /dev/null; then
  for i in $(seq "$runs"); do
    cp "$hook" "$tmp/hook-$i.so"
    sleep 0.1; gap > /dev/null
    t0=$(date +%s%N)
    timeout -s KILL 60 gdb -p "$target" -nx -batch -iex "set debuginfod enabled off" -ex "call (void*)dlopen(\"$tmp/hook-$i.so\", 2)" -ex detach \
      < /dev/null > "$tmp/gdb.log" 2>&1 || true
    wall=$(ms_since "$t0")
    sleep 0.05
    echo "$wall $(gap)" >> "$tmp/gdb"
  done
fi
for i in $(seq "$runs"); do
  sleep 0.1; gap > /dev/null
  t0=$(date +%s%N)
  "$memsnap" attach "$target" --duration 0.05 --quiet --stats -o "$tmp/m.pb" > /dev/null 2> "$tmp/stats"
  wall=$(ms_since "$t0")
  sleep 0.05
  a=$(sed -n 's/.*attach_ms=\([0-9.]*\).*/\1/p' "$tmp/stats")
  p=$(sed -n 's/.*inject_pause_ms=\([0-9.]*\).*/\1/p' "$tmp/stats")
  # The first attach loads the hook (dlopen); later ones reuse the loaded copy.
  if [ "$i" = 1 ]; then out="$tmp/memsnap.first"; else out="$tmp/memsnap"; fi
  echo "${a:-nan} ${p:-nan} $wall $(gap)" >> "$out"
done

col() { cut -d' ' -f"$2" "$1"; }
row() { printf '  %-60s %9s %9s\n' "$1" "$2" "$3"; }
echo "injection into a live process (ms)                                 min    median"
row "memsnap, first attach (dlopen): start -> recording" "$(col "$tmp/memsnap.first" 1)" "-"
row "memsnap, first attach: longest stop of the thread" "$(col "$tmp/memsnap.first" 2)" "-"
row "memsnap, first attach: longest gap seen by the ticker" "$(col "$tmp/memsnap.first" 4)" "-"
row "memsnap, later attaches (hook reused): start -> recording" "$(col "$tmp/memsnap" 1 | minimum)" "$(col "$tmp/memsnap" 1 | median)"
row "memsnap, later attaches: longest stop of the hijacked thread" "$(col "$tmp/memsnap" 2 | minimum)" "$(col "$tmp/memsnap" 2 | median)"
row "memsnap, later attaches: whole command (incl. 50 ms window)" "$(col "$tmp/memsnap" 3 | minimum)" "$(col "$tmp/memsnap" 3 | median)"
row "memsnap, later attaches: longest gap seen by the ticker" "$(col "$tmp/memsnap" 4 | minimum)" "$(col "$tmp/memsnap" 4 | median)"
if [ -s "$tmp/gdb" ]; then
  row "gdb: whole 'call dlopen' command" "$(col "$tmp/gdb" 1 | minimum)" "$(col "$tmp/gdb" 1 | median)"
  row "gdb: longest gap seen by the target's ticker" "$(col "$tmp/gdb" 2 | minimum)" "$(col "$tmp/gdb" 2 | median)"
  awk -v a="$(col "$tmp/memsnap" 1 | median)" -v g="$(col "$tmp/gdb" 1 | median)" \
    -v p="$(col "$tmp/memsnap" 4 | median)" -v q="$(col "$tmp/gdb" 2 | median)" \
    'BEGIN { printf "  ratio gdb/memsnap: injection time %.0fx, target pause %.0fx\n", g / a, q / p }'
else
  echo "  gdb is not installed: no side-by-side figure (install-deps.sh installs it)"
fi
echo quit >&9
