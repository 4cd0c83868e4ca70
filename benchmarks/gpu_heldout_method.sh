#!/usr/bin/env bash
# Device call for a powered nuisance check of any method on a held-out seed: builds CLASSES of seed
# SEED with 100 good scans a class (the same data gpu_heldout_classes.sh builds: classes are seeded by
# name), then runs `mvr3d benchmark ARGS` at this tree, one process per class (up to MAX_RUNS, 6, at
# once), into runs/NAME-s<SEED>g/by-class/<class>; finished classes are gathered under
# runs/NAME-s<SEED>g/classes. A second call on the warm machine finds the runs still going and waits.
# Written 2026-12-07 for MVR's powered check on seed 9 (carry the weights xz-compressed: with them as they are
# the tree passes the device's 64 MiB); no device could be had, so it has not run yet.
# Memory: ten MVR runs at once fit one H200 (seed 10, 2026-12-07); twenty (two seeds at once) did not fit one H100:
# 11 of them stopped at their first batch. Keep MAX_RUNS at 10 or less for MVR.
#   usage: benchmarks/gpu_heldout_method.sh DEADLINE_SECONDS SEED "CLASSES" NAME ARGS...
#   e.g.:  benchmarks/gpu_heldout_method.sh 560 9 "cow busted" mvr-reference --method mvr --preset reference
set -u
deadline=$(( $(date +%s) + $1 ))
seed=$2 classes=$3 name=$4
shift 4
source benchmarks/gpu_common.sh
data=runs/data_s${seed}g shapes=runs/shapes_s${seed}g
if [ ! -f $data/meta.json ] && ! running "out $data "; then
  mkdir -p "$shapes"
  for class in $classes; do cp .shapes/"$class".* .shapes/"${class//_/-}".* "$shapes"/ 2>/dev/null; done
  cp .shapes/LICENSE* "$shapes"/ 2>/dev/null
  python3 -m mvr3d make-benchmark --out $data --preset standard --shapes "$shapes" --seed "$seed" \
    --good-scans 100 --workers 16 > runs/logs/data_s${seed}g.log 2>&1
fi
echo "built at $(( deadline - $(date +%s) )) s before the deadline"
for class in $(ls $data); do
  out=runs/$name-s${seed}g/by-class/$class
  [ -d $data/$class ] && [ ! -f $out/classes/$class.json ] && ! running "out $out " || continue
  while [ "$(pgrep -fc 'mvr3d benchmark')" -ge "${MAX_RUNS:-6}" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
  [ "$(date +%s)" -lt "$deadline" ] || break
  setsid python3 -m mvr3d benchmark --data $data --classes $class --out $out "$@" \
    > runs/logs/$name-s${seed}g-$class.log 2>&1 &
done
while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f "mvr3d benchmark" >/dev/null; do sleep 5; done
for done_json in runs/$name-s${seed}g/by-class/*/classes/*.json; do
  [ -f "$done_json" ] && mkdir -p runs/$name-s${seed}g/classes && cp "$done_json" runs/$name-s${seed}g/classes/
done
collect_runs "$deadline"
