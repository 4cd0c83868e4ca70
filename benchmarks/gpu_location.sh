#!/usr/bin/env bash
# Device call comparing the template method at this tree with an earlier one (sessions of
# 2026-12-06: seventh, location calibration, held-out seed 4; eighth, its one-layer templates,
# held-out seed 5): builds realistic `standard` seeds 0-2 (20 good scans a class) and HELDOUT
# with 100 good scans a class (the powered nuisance check; a seed never tuned on), then runs
# in parallel:
#   template-new  `--method template` at this tree
#   template-old  `--method template` at an earlier commit, from a copy of its src/ in oldsrc/
#   ref           `--method mvr --preset reference` (HELDOUT only)
# A second call within the warm period finds runs going, starts only what is missing, waits again.
#   usage: benchmarks/gpu_location.sh DEADLINE_SECONDS [HELDOUT_SEED, default 4]
#   OLD_SEEDS="6g" runs template-old on those builds only (default: all four); NEW_SEEDS likewise
#   for template-new (seeds 0-2 are built only when named there); REF=0 skips ref. Run folders
#   carried in runs/ resume where they stopped (finished classes are kept).
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
held=${2:-4}
source benchmarks/gpu_common.sh
if [ ! -f runs/data_s${held}g/meta.json ] && ! running "out runs/data_s${held}g "; then
  setsid python3 -m mvr3d make-benchmark --out runs/data_s${held}g --preset standard --shapes .shapes --seed $held \
    --good-scans 100 --workers 8 > runs/logs/data_s${held}g.log 2>&1 &
fi
new_seeds=${NEW_SEEDS:-0 1 2 ${held}g}
build_data "$(echo $new_seeds ${OLD_SEEDS:-} | tr ' ' '\n' | grep -v g | sort -u | tr '\n' ' ')" "$deadline"
start() {  # start NAME DATA SRC ARGS...: one benchmark run unless running or done
  local name=$1 data=$2 src=$3; shift 3
  running "out runs/$name " && return
  [ -f "runs/$name/results.json" ] && return
  python3 -c "import json,sys; sys.exit(not json.load(open('$data/meta.json')).get('complete'))" 2>/dev/null || return
  PYTHONPATH=/tmp/site:$PWD/$src:$PWD/benchmarks setsid python3 -m mvr3d benchmark --data "$data" --out "runs/$name" \
    "$@" > "runs/logs/$name.log" 2>&1 &
}
while [ "$(date +%s)" -lt "$deadline" ]; do
  for seed in $new_seeds; do
    start "template-new-s$seed" "runs/data_s$seed" src --method template
  done
  for seed in ${OLD_SEEDS:-0 1 2 ${held}g}; do
    [ -d oldsrc/src ] && start "template-old-s$seed" "runs/data_s$seed" oldsrc/src --method template
  done
  [ "${REF:-1}" = 1 ] && start "ref-s${held}g" runs/data_s${held}g src --method mvr --preset reference
  pgrep -f "make-benchmark|mvr3d benchmark" >/dev/null || break
  sleep 10
done
collect_runs "$deadline"
