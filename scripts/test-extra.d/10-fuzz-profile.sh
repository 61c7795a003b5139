#!/usr/bin/env bash
# 10-fuzz-profile.sh - the short fuzzing pass of `make test`: 20 s of libFuzzer on the profile
# reader (scripts/fuzz.d/profile.sh does the work; `make fuzz` runs it longer).
FUZZ_SECONDS="${FUZZ_TEST_SECONDS:-20}" exec bash "$(dirname "$0")/../fuzz.d/profile.sh" "$@"
