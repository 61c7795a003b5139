#!/usr/bin/env bash
# 05-pprof-decoder.sh - a profile that `memsnap run` (or, until run profiles, `memsnap attach`)
# really wrote, decoded by an independent pprof decoder (the npm package pprof-format, through
# tests/decode/decode.js): it must decode, every id it uses must be defined, and the leaking
# function must appear in a stack, and memsnap's metadata must be there as plain comments
# (memsnap.pid=<the target's pid>, memsnap.mode, memsnap.timeline), read as written.
# (tests/unit/test_profile.c does the field-by-field comparison on profiles built in memory.)
set -uo pipefail
memsnap="${1:-${MEMSNAP:-build/memsnap}}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/tests/decode/node_modules/pprof-format" ]; then
  echo "SKIP: node or tests/decode/node_modules (scripts/install-deps.sh) is missing"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/leak.py" <<'PY'
import sys, time
kept = []
def grow_leak():
    kept.append(bytearray(4096))
for _ in range(5000):
    grow_leak()
if sys.argv[1:] == ["serve"]:  # keep leaking until killed, for memsnap attach
    print("ready", flush=True)
    while True:
        for _ in range(100):
            grow_leak()
        time.sleep(0.01)
PY
# memsnap run when it profiles; else memsnap attach to the same program.
timeout 120 "$memsnap" run -o "$tmp/run.pb" -- /usr/bin/python3 "$tmp/leak.py" >"$tmp/out" 2>"$tmp/err"
how="memsnap run"
if [ ! -s "$tmp/run.pb" ]; then
  how="memsnap attach"
  /usr/bin/python3 "$tmp/leak.py" serve >"$tmp/serve.out" &
  pid=$!
  for _ in $(seq 100); do grep -q ready "$tmp/serve.out" && break; sleep 0.1; done
  timeout 60 "$memsnap" attach "$pid" --duration 2 -o "$tmp/run.pb" --quiet >"$tmp/out" 2>"$tmp/err"
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
fi
if [ ! -s "$tmp/run.pb" ]; then
  echo "SKIP: neither memsnap run nor memsnap attach wrote a profile: $(head -c 200 "$tmp/err")"
  exit 0
fi
if ! node "$here/tests/decode/decode.js" "$tmp/run.pb" >"$tmp/summary" 2>"$tmp/decode.err"; then
  echo "pprof-decoder: pprof-format refused the profile memsnap run wrote:" >&2
  head -5 "$tmp/decode.err" >&2
  exit 1
fi
if ! grep -q '^types .*inuse_space/bytes' "$tmp/summary"; then
  echo "pprof-decoder: no inuse_space/bytes sample type: $(head -1 "$tmp/summary")" >&2
  exit 1
fi
if ! grep -q 'stack=.*grow_leak@[^;]*leak\.py' "$tmp/summary"; then
  echo "pprof-decoder: grow_leak (leak.py) is in no stack of $(grep -c '^sample' "$tmp/summary") samples" >&2
  exit 1
fi
mode=run
[ "$how" = "memsnap attach" ] && mode=attach
for want in '^comment memsnap\.pid=[1-9][0-9]*$' "^comment memsnap\.mode=$mode\$" \
  '^comment memsnap\.command=.*leak\.py' '^comment memsnap\.rate=[1-9]' \
  '^comment memsnap\.timeline=[0-9]+,[0-9]+,[0-9]+(;[0-9]+,[0-9]+,[0-9]+)*$'; do
  if ! grep -Eq "$want" "$tmp/summary"; then
    echo "pprof-decoder: no comment matching $want; comments: $(grep '^comment' "$tmp/summary" | head -c 600)" >&2
    exit 1
  fi
done
if [ -n "${pid:-}" ] && ! grep -q "^comment memsnap\.pid=$pid\$" "$tmp/summary"; then
  echo "pprof-decoder: memsnap.pid is not the target's pid $pid" >&2
  exit 1
fi
echo "pprof-decoder: pprof-format decoded $(grep -c '^comment memsnap\.' "$tmp/summary") memsnap comments and $(grep -c '^sample' "$tmp/summary") samples of a $how profile"
