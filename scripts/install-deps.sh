#!/usr/bin/env bash
# Installs, with apt, whatever memsnap's build and tests need and the machine lacks.
# Called by make (once, through a stamp file); safe to run by hand any time.
set -euo pipefail

pkgs=(
  build-essential pkg-config clang clang-format
  libdw-dev libelf-dev libunwind-dev libprotobuf-c-dev protobuf-c-compiler libcmocka-dev
  zlib1g-dev libdeflate-dev
  # what the tests profile and check against
  python3 python3-dev python3-django python3-numpy python3-protobuf gunicorn gdb
  # the browser test of the SVG
  chromium nodejs
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Some Node.js builds ship npm inside the nodejs package; ask for Debian's npm only if absent.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# Node packages the tests use, from their committed package-lock.json: playwright-core (no
# bundled browser; it drives Debian's chromium) for the SVG test, pprof-format for the
# independent check of the profiles we write.
here="$(cd "$(dirname "$0")/.." && pwd)"
for dir in tests/browser tests/decode; do
  if [ -f "$here/$dir/package.json" ] && [ ! -d "$here/$dir/node_modules" ]; then
    (cd "$here/$dir" && npm install --no-audit --no-fund --silent >/dev/null)
  fi
done
