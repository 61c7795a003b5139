#!/usr/bin/env bash
# The fail-closed campaign: test_failclosed with 20 attaches per target (instead of 3) on
# targets whose libc was deleted or replaced after they started (Debian's python and the
# first pyenv one) and on chroot'ed targets (three Pythons, root only), alternating memsnap
# with and without /proc/PID/map_files access. 0 targets harmed. Run by `make stress`; $1 is
# the memsnap binary.
set -euo pipefail
build="${BUILD:-build}"
bin="$build/tests/test_failclosed"
[ -x "$bin" ] || make -s "$bin"
FAILCLOSED_STRESS=1 MEMSNAP="${MEMSNAP:-$1}" "$bin"
