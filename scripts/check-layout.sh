#!/usr/bin/env bash
# check-layout.sh - fails when an #include points the wrong way between memsnap's folders.
#
# The folders are layers (docs/architecture.md). Each may include its own headers and those
# of the layers listed for it below, nothing else; the hook (sampler/hook/) is a library of its
# own that runs inside the target, and the rest may include only its ABI header (hook_abi.h)
# and, for the allocator table's layout, hook_python.h. Headers are included by bare name, so
# a header's folder is found by looking it up; a generated header belongs to the folder whose
# sources it is made from. Tests, benchmarks and fuzzers are outside the rule.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [sampler/cli]="sampler/cli sampler/record render sampler/inject sampler/python sampler/process proto sampler/common"
  [sampler/record]="sampler/record sampler/inject sampler/python sampler/process proto sampler/common"
  [render]="render proto sampler/common"
  [sampler/inject]="sampler/inject sampler/python sampler/process sampler/common"
  [sampler/python]="sampler/python sampler/process sampler/common"
  [sampler/process]="sampler/process sampler/common"
  [proto]="proto sampler/common"
  [sampler/common]="sampler/common"
  [sampler/hook]="sampler/hook"
)
declare -A generated=([profile.pb-c.h]=proto [flame_assets.h]=render)

# header name -> folder
declare -A home=()
for dir in "${!allowed[@]}"; do
  for h in "$dir"/*.h; do
    [ -e "$h" ] || continue
    name=$(basename "$h")
    if [ -n "${home[$name]:-}" ] && [ "$dir" != sampler/hook ]; then
      echo "check-layout: $name exists in both ${home[$name]} and $dir (headers are included by bare name)" >&2
      exit 1
    fi
    [ "$dir" = sampler/hook ] || home[$name]=$dir
  done
done

bad=0
for dir in "${!allowed[@]}"; do
  for f in "$dir"/*.[chS]; do
    [ -e "$f" ] || continue
    while IFS= read -r inc; do
      case "$inc" in
      hook/hook_abi.h | hook/hook_python.h) to=hook-abi ;;
      hook/*) to=sampler/hook ;;
      */*) to=unknown ;;
      *)
        if [ "$dir" = sampler/hook ]; then
          [ -e "sampler/hook/$inc" ] && to=sampler/hook || to=unknown
        else
          to="${home[$inc]:-${generated[$inc]:-unknown}}"
        fi
        ;;
      esac
      if [ "$to" = hook-abi ]; then
        [ "$dir" != sampler/hook ] && continue
        to=unknown
      fi
      if [ "$to" = unknown ]; then
        echo "check-layout: $f includes \"$inc\", which no layer folder holds" >&2
        bad=1
      elif [[ " ${allowed[$dir]} " != *" $to "* ]]; then
        echo "check-layout: $f includes \"$inc\" from $to, but $dir may include only: ${allowed[$dir]}" >&2
        bad=1
      fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  done
done
# Every C file of sampler/ lives in a layer folder.
for f in sampler/*.[chS]; do
  [ -e "$f" ] || continue
  echo "check-layout: $f is not in a layer folder (sampler/{common,process,python,inject,record,cli,hook}/)" >&2
  bad=1
done
if [ $bad -ne 0 ]; then exit 1; fi
echo "check-layout: includes point down the layers (cli -> record/render -> inject -> python -> process -> common)"
