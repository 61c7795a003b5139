#!/usr/bin/env bash
# make demo: start a small leaking web-style app, attach memsnap to it for a few seconds,
# render demo.svg, print the stats. Everything runs on this machine (127.0.0.1 only).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
memsnap="${MEMSNAP:-$here/build/memsnap}"
py=/usr/bin/python3
[ -x "$py" ] || py="$(command -v python3)"
out="$here/demo"
mkdir -p "$out"

fifo="$(mktemp -u)"; mkfifo "$fifo"
"$py" "$here/scripts/demo/leaky_app.py" 60 >"$fifo" &
app=$!
trap 'kill $app 2>/dev/null || true; rm -f "$fifo"' EXIT
exec 3<"$fifo"
read -r -t 20 ready <&3 || { echo "demo: the app did not start" >&2; exit 1; }
echo "demo: started the app ($ready) with $("$py" --version 2>&1)"
sleep 1

echo "demo: memsnap attach $app --duration 5 -o demo/demo.pb"
"$memsnap" attach "$app" --duration 5 -o "$out/demo.pb"
"$memsnap" render "$out/demo.pb" --title "memsnap demo: leaky_app.py" >"$out/demo.svg"
# A picture of it (README's docs/flamegraph.png is one), when Debian's chromium is here.
if command -v chromium >/dev/null 2>&1; then
  prof="$(mktemp -d)"
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$prof" --hide-scrollbars --window-size=1200,460 \
    --screenshot="$out/demo.png" "file://$out/demo.svg" >/dev/null 2>&1 &&
    echo "demo: drew $out/demo.png" || echo "demo: chromium could not draw demo.png (skipped)"
  rm -rf "$prof"
fi
echo
"$memsnap" stats "$out/demo.pb"
echo
if kill -0 "$app" 2>/dev/null; then
  echo "demo: the app is still serving after memsnap detached (pid $app)"
else
  echo "demo: the app is gone; that should never happen" >&2; exit 1
fi
echo "demo: open $out/demo.svg in a browser (flame graph of what the app allocated and kept)"
