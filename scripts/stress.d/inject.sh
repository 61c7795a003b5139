#!/usr/bin/env bash
# The injector's long campaign: test_inject with 100 SIGKILLs of an injecting process at
# random instants (0-8 ms) and 100 injections into threads hammering malloc, per Python
# (Debian's and the first pyenv one). Run by `make stress`; $1 is the memsnap binary.
set -euo pipefail
build="${BUILD:-build}"
bin="$build/tests/test_inject"
[ -x "$bin" ] || make -s "$bin"
INJECT_STRESS=1 MEMSNAP="${MEMSNAP:-$1}" "$bin"
