#!/usr/bin/env bash
# Device call finishing held-out runs that a lost machine cut short: builds only CLASSES of seed
# SEED with 100 good scans a class (classes are seeded by name, so each equals its class in the full
# build), then runs `--method template` at this tree (template-new) and at oldsrc/src (template-old)
# into the carried run folders, which keep their finished classes: one process per class, up to
# MAX_RUNS (6) at once, each in its own folder under by-class/ (a run locks its output folder); the
# finished classes/*.json are copied into the run folder, which holds a run's table.
#   usage: benchmarks/gpu_heldout_classes.sh DEADLINE_SECONDS SEED "CLASSES"
set -u
deadline=$(( $(date +%s) + ${1:-560} ))
seed=$2
source benchmarks/gpu_common.sh
shapes=runs/shapes_s${seed}g
mkdir -p "$shapes"
for name in $3; do cp .shapes/"$name".* "$shapes"/; done
cp .shapes/LICENSE* "$shapes"/ 2>/dev/null
python3 -m mvr3d make-benchmark --out runs/data_s${seed}g --preset standard --shapes "$shapes" --seed "$seed" \
  --good-scans 100 --workers 16 > runs/logs/data_s${seed}g.log 2>&1
echo "built at $(( deadline - $(date +%s) )) s before the deadline"
for run in new old; do
  src=src; [ $run = old ] && src=oldsrc/src
  [ -d "$src" ] || continue
  for class in $(ls runs/data_s${seed}g); do
    [ -d runs/data_s${seed}g/$class ] && [ ! -f runs/template-$run-s${seed}g/classes/$class.json ] || continue
    # Ten runs at once ran out of one H100's memory (2026-12-07); six shared it before.
    while [ "$(pgrep -fc 'mvr3d benchmark')" -ge "${MAX_RUNS:-6}" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
    PYTHONPATH=/tmp/site:$PWD/$src:$PWD/benchmarks setsid python3 -m mvr3d benchmark --data runs/data_s${seed}g \
      --classes $class --out runs/template-$run-s${seed}g/by-class/$class --method template \
      > runs/logs/template-$run-s${seed}g-$class.log 2>&1 &
  done
done
# One process per output folder (a run locks its folder), so each class writes under by-class/.
while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f "mvr3d benchmark" >/dev/null; do sleep 5; done
for done_json in runs/template-*-s${seed}g/by-class/*/classes/*.json; do
  [ -f "$done_json" ] || continue
  mkdir -p "${done_json%%/by-class/*}/classes" && cp "$done_json" "${done_json%%/by-class/*}/classes/"
done
collect_runs "$deadline"
