#!/usr/bin/env bash
# The parts of `make test` that are not cmocka binaries: the browser test of the SVG and a
# short fuzzing pass. Each part prints a skip line when its tool is absent, never passes silently.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
memsnap="$1"
for part in "$here"/scripts/test-extra.d/*.sh; do
  [ -e "$part" ] || continue
  echo "== $(basename "$part")"
  bash "$part" "$memsnap"
done
