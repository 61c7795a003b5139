#!/usr/bin/env bash
# Runs each test binary given, in order, prints cmocka's own summaries, and ends with one
# plain "N passed, N failed" line over all binaries. Exits non-zero if any binary failed.
set -uo pipefail
passed=0; failed=0; bad=()
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in "$@"; do
  echo "== $(basename "$t")"
  # Through a file, not a pipe: a target a failed test left running keeps its copy of the
  # output descriptor, and reading a pipe to its end would wait for that target forever.
  "$t" >"$log" 2>&1; rc=$?
  out="$(cat "$log")"
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ]; then bad+=("$(basename "$t")"); [ "$f" -eq 0 ] && failed=$((failed + 1)); fi
done
echo "tests: $passed passed, $failed failed"
if ((${#bad[@]})); then echo "failing binaries: ${bad[*]}" >&2; exit 1; fi
