#!/usr/bin/env bash
# 20-browser.sh MEMSNAP - the SVG flame graph in a real browser: renders a demo profile and
# runs tests/browser/svg.test.mjs on it with Debian's chromium (playwright-core drives it).
# Leaves a screenshot in $BUILD/render-demo.png for a person to look at.
set -euo pipefail
memsnap="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${BUILD:-build}" && pwd)"
if [ ! -x /usr/bin/chromium ]; then echo "SKIP browser test: /usr/bin/chromium is absent"; exit 0; fi
if ! command -v node >/dev/null; then echo "SKIP browser test: node is absent"; exit 0; fi
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
  echo "SKIP browser test: playwright-core not installed (run scripts/install-deps.sh)"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. "$root/scripts/sampler-includes.sh" "$root"
# shellcheck disable=SC2046
# CFLAGS: the same flags libmemsnap.a was built with (make asan adds the sanitizers).
cc -std=c11 -D_GNU_SOURCE ${CFLAGS:--O2} "${SAMPLER_INC[@]}" -I"$root/proto" -o "$work/gen" \
  "$root/tests/bench/gen_render_profile.c" "$build/libmemsnap.a" \
  $(pkg-config --libs libdw libelf libunwind-ptrace libprotobuf-c zlib libdeflate) -lm -lpthread
"$work/gen" demo "$work/demo.pb"
"$work/gen" demo-after "$work/after.pb"
"$memsnap" render "$work/demo.pb" --title 'memsnap demo: <script>&"quotes"' > "$work/demo.svg"
"$memsnap" render "$work/after.pb" --diff "$work/demo.pb" > "$work/diff.svg"
cd "$root/tests/browser"
timeout 120 node svg.test.mjs "$work/demo.svg" "$build/render-demo.png" "$work/diff.svg"
