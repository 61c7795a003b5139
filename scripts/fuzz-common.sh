# fuzz-common.sh - what every scripts/fuzz.d part shares; sourced, not run.
#   fuzz_require WHAT          exit 0 with a SKIP line when clang or its libFuzzer is missing
#   fuzz_run NAME BIN CORPUS SECONDS [libFuzzer options...]
#                              run BIN over CORPUS for SECONDS, print its statistics, and on
#                              any crash, sanitizer report or timeout show the log's tail, name
#                              the directory holding the input ($BUILD/fuzz/NAME-artifacts/),
#                              and exit 1
fuzz_require() {
  local cc="${FUZZ_CC:-clang}"
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "SKIP: $cc is not installed, $1 not fuzzed"
    exit 0
  fi
  if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
    "$cc" -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
    echo "SKIP: $cc has no libFuzzer (-fsanitize=fuzzer), $1 not fuzzed"
    exit 0
  fi
}

fuzz_run() {
  local name="$1" bin="$2" corpus="$3" seconds="$4"
  shift 4
  local dir
  dir="$(dirname "$bin")"
  mkdir -p "$dir/$name-artifacts"
  echo "$name fuzzer: ${seconds}s"
  "$bin" "$corpus" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$dir/$name-artifacts/" "$@" >"$dir/$name-fuzz.log" 2>&1
  local rc=$?
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$dir/$name-fuzz.log"
  if [ $rc -ne 0 ]; then
    tail -40 "$dir/$name-fuzz.log" >&2
    echo "$name fuzzer: FAILED (inputs in $dir/$name-artifacts/)" >&2
    exit 1
  fi
  echo "$name fuzzer: no crash in ${seconds}s"
}
