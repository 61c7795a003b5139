# sampler-includes.sh - sourced by scripts that compile parts of memsnap by hand (fuzzers,
# benchmarks, the browser test): sets the array SAMPLER_INC to the -I flags the Makefile uses
# for sampler/ (the folder itself, for "hook/hook_abi.h", and each of its layer folders, whose
# headers are included by bare name). Usage: . scripts/sampler-includes.sh ROOT
SAMPLER_INC=(-I"$1/sampler")
for _d in "$1"/sampler/*/; do
  SAMPLER_INC+=(-I"${_d%/}")
done
unset _d
