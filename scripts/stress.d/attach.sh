#!/usr/bin/env bash
# attach.sh - the long robustness campaign of `memsnap attach`:
#   1. memsnap SIGKILLed at random instants (KILLS times, default 100; from mid-injection to
#      mid-recording), rotating over every installed CPython: after each kill the target must
#      have no stopped or traced thread, its hook must stop within 2 s (its ring mapping
#      disappears), and every 10th kill a fresh attach must work and the target's own checks
#      (blocking calls, sleeps, leaked data) must pass;
#   2. CYCLES (default 50) attach/detach cycles against an allocating target: RSS growth after
#      the first cycle <= 512 KiB;
#   3. FRESH_KILLS (default 60) SIGKILLs 20-200 ms into the first attach of a fresh target
#      each time (so the library is really being written and loaded, not reused).
# As root with unshare(1), every target runs with private tmpfs /dev/shm and /tmp, and after
# every kill of parts 1 and 3 (and the hook's own stop) no libmemsnap_hook file may remain
# in them. (This machine's /dev/shm is shared with other memsnaps, whose transient files
# would look like leftovers: without isolation that check is skipped.)
# Usage: attach.sh MEMSNAP    env: KILLS, CYCLES, FRESH_KILLS.
set -euo pipefail
memsnap="${1:?usage: attach.sh MEMSNAP}"
kills="${KILLS:-100}"
cycles="${CYCLES:-50}"
fresh_kills="${FRESH_KILLS:-60}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
target="$here/tests/py/attach_target.py"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

pythons=()
[ -x /usr/bin/python3 ] && pythons+=(/usr/bin/python3)
root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
for v in 3.8 3.9 3.10 3.11 3.12 3.13 3.14; do
  p=$(ls -d "$root"/versions/"$v".*/bin/python3 2>/dev/null | head -1 || true)
  if [ -n "$p" ]; then pythons+=("$p"); else echo "SKIP: pyenv $v is not installed"; fi
done

fail() { echo "FAIL: $*" >&2; exit 1; }
ring_mapped() { grep -q 'memfd:memsnap-ring' "/proc/$1/maps" 2>/dev/null; }
stopped_or_traced() {
  local s
  for s in /proc/"$1"/task/*/status; do
    grep -q '^State:[[:space:]]*[tT]' "$s" 2>/dev/null && return 0
    grep -q '^TracerPid:[[:space:]]*[1-9]' "$s" 2>/dev/null && return 0
  done
  return 1
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

isolate=0
if [ "$(id -u)" = 0 ] && [ -x /usr/bin/unshare ]; then isolate=1; else
  echo "SKIP: files left behind are checked only as root with unshare(1)"; fi
# python script...: runs it, with private /dev/shm and /tmp when isolate=1 (same pid). The
# script runs as a copy in the private /dev/shm: the clone may live under /tmp, which the
# mount hides.
start_py() {
  if [ "$isolate" = 1 ]; then
    exec /usr/bin/unshare --mount --propagation private /bin/sh -c \
      'mount -t tmpfs -o mode=1777 none /dev/shm && cp "$2" /dev/shm/target.py &&
       mount -t tmpfs -o mode=1777 none /tmp && py="$1" && shift 2 &&
       exec "$py" /dev/shm/target.py "$@"' sh "$@"
  fi
  exec "$@"
}
hook_files() { # pid: the copies of the library in the target's /dev/shm and /tmp
  [ "$isolate" = 1 ] || return 0
  ls -d "/proc/$1/root/dev/shm/"libmemsnap_hook* "/proc/$1/root/tmp/"libmemsnap_hook* 2>/dev/null || true
}

# One target per python: fd 10+i writes to its stdin, out file $tmp/t$i.out.
tpid=()
for i in "${!pythons[@]}"; do
  mkfifo "$tmp/t$i.in"
  ( start_py "${pythons[$i]}" "$target" ) < "$tmp/t$i.in" > "$tmp/t$i.out" 2>&1 &
  tpid[$i]=$!; pids+=("${tpid[$i]}")
  eval "exec $((10 + i))> \"$tmp/t$i.in\""
done
for i in "${!pythons[@]}"; do
  for _ in $(seq 400); do grep -q '^ready' "$tmp/t$i.out" && break; sleep 0.05; done
  grep -q '^ready' "$tmp/t$i.out" || fail "${pythons[$i]}: target did not start"
done

check_target() { # index
  local i="$1" n line
  n=$(grep -c '^check ' "$tmp/t$i.out" || true)
  echo check >&$((10 + i))
  for _ in $(seq 300); do
    [ "$(grep -c '^check ' "$tmp/t$i.out" || true)" -gt "$n" ] && break; sleep 0.05
  done
  line=$(grep '^check ' "$tmp/t$i.out" | tail -1)
  case "$line" in
    *" errors=0 "*" under=0 "*"corrupt=0"*) ;;
    *) fail "${pythons[$i]}: target reports a problem: $line" ;;
  esac
}

echo "$kills SIGKILLs over ${#pythons[@]} interpreters"
worst=0
for k in $(seq "$kills"); do
  i=$(( k % ${#pythons[@]} ))
  pid=${tpid[$i]}
  delay_ms=$(( RANDOM % 700 ))
  "$memsnap" attach "$pid" --quiet -o "$tmp/never.pb" > "$tmp/m.log" 2>&1 &
  m=$!
  sleep "$(printf '0.%03d' "$delay_ms")"
  kill -9 "$m" 2>/dev/null || true
  wait "$m" 2>/dev/null || true
  t0=$(now_ms)
  while ring_mapped "$pid" && [ $(( $(now_ms) - t0 )) -lt 4000 ]; do sleep 0.02; done
  took=$(( $(now_ms) - t0 ))
  [ "$took" -gt "$worst" ] && worst=$took
  ring_mapped "$pid" && fail "kill $k (${pythons[$i]}, after ${delay_ms} ms): hook still recording after 4 s"
  [ "$took" -le 2500 ] || fail "kill $k: hook took $took ms to stop"
  stopped_or_traced "$pid" && fail "kill $k (${pythons[$i]}, after ${delay_ms} ms): target left stopped or traced"
  left=$(hook_files "$pid"); [ -z "$left" ] || fail "kill $k (${pythons[$i]}, after ${delay_ms} ms): left behind: $left"
  if [ $(( k % 10 )) -eq 0 ]; then
    "$memsnap" attach "$pid" --quiet --duration 0.3 -o "$tmp/after.pb" > "$tmp/a.log" 2>&1 \
      || fail "attach after kill $k failed: $(cat "$tmp/a.log")"
    check_target "$i"
    echo "  $k kills, slowest hook stop so far ${worst} ms"
  fi
done
for i in "${!pythons[@]}"; do check_target "$i"; done

echo "$cycles attach/detach cycles per interpreter (Debian's and the newest)"
for i in 0 $(( ${#pythons[@]} - 1 )); do
  pid=${tpid[$i]}
  echo churn >&$((10 + i))
  sleep 0.5
  "$memsnap" attach "$pid" --quiet --duration 0.2 -o "$tmp/c.pb" > /dev/null
  sleep 0.3
  r0=$(awk '{print $2 * 4}' "/proc/$pid/statm")
  for c in $(seq "$cycles"); do
    "$memsnap" attach "$pid" --quiet --duration 0.2 -o "$tmp/c.pb" > "$tmp/c.log" 2>&1 \
      || fail "cycle $c: $(cat "$tmp/c.log")"
  done
  sleep 0.3
  r1=$(awk '{print $2 * 4}' "/proc/$pid/statm")
  echo "  ${pythons[$i]}: RSS ${r0} -> ${r1} KiB ($(( r1 - r0 )) KiB)"
  [ $(( r1 - r0 )) -le 512 ] || fail "RSS grew by $(( r1 - r0 )) KiB over $cycles cycles"
  check_target "$i"
done
for i in "${!pythons[@]}"; do echo quit >&$((10 + i)); done

echo "$fresh_kills SIGKILLs 20-200 ms into the first attach of a fresh target"
loaded=0
for k in $(seq "$fresh_kills"); do
  i=$(( k % ${#pythons[@]} ))
  mkfifo "$tmp/f$k.in"
  ( start_py "${pythons[$i]}" "$target" ) < "$tmp/f$k.in" > "$tmp/f$k.out" 2>&1 &
  fp=$!; pids+=("$fp")
  exec 9> "$tmp/f$k.in"
  for _ in $(seq 400); do grep -q '^ready' "$tmp/f$k.out" && break; sleep 0.05; done
  grep -q '^ready' "$tmp/f$k.out" || fail "${pythons[$i]}: fresh target $k did not start"
  delay_ms=$(( 20 + RANDOM % 180 ))
  "$memsnap" attach "$fp" --quiet -o "$tmp/never.pb" > "$tmp/m.log" 2>&1 &
  m=$!
  sleep "$(printf '0.%03d' "$delay_ms")"
  kill -9 "$m" 2>/dev/null || true
  wait "$m" 2>/dev/null || true
  grep -q 'libmemsnap_hook' "/proc/$fp/maps" && loaded=$(( loaded + 1 ))
  t0=$(now_ms)
  while ring_mapped "$fp" && [ $(( $(now_ms) - t0 )) -lt 4000 ]; do sleep 0.02; done
  ring_mapped "$fp" && fail "fresh kill $k (${pythons[$i]}, after ${delay_ms} ms): hook still recording after 4 s"
  stopped_or_traced "$fp" && fail "fresh kill $k (${pythons[$i]}, after ${delay_ms} ms): target left stopped or traced"
  left=$(hook_files "$fp")
  [ -z "$left" ] || fail "fresh kill $k (${pythons[$i]}, after ${delay_ms} ms): left behind: $left"
  echo quit >&9; exec 9>&-
  wait "$fp" 2>/dev/null || true
  rm -f "$tmp/f$k.in"
done
echo "  $loaded of $fresh_kills fresh targets had the library loaded when memsnap died"
echo "attach stress: ok"
