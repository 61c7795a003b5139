#!/usr/bin/env bash
# Runs every scripts/<kind>.d/*.sh in name order with the memsnap binary as $1.
# Used by `make bench`, `make stress`, `make fuzz` and the extra parts of `make test`, so each
# capability adds its own part without touching a shared script.
set -euo pipefail
kind="$1"; shift
here="$(cd "$(dirname "$0")" && pwd)"
status=0
for part in "$here/$kind.d"/*.sh; do
  [ -e "$part" ] || continue
  echo "== $kind: $(basename "$part" .sh)"
  if ! bash "$part" "$@"; then echo "$kind part $(basename "$part") FAILED" >&2; status=1; fi
done
exit $status
