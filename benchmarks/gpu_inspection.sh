#!/usr/bin/env bash
# Device calls for the inspection (#19) and scale-out (#17) tables on one GPU:
#   1. `mvr3d serve` load with the default detector, 100 k-point scans (GPU otherwise idle);
#   2. scale-out: plain predict against --devices cuda:0,cuda:0 (two workers on the one GPU);
#   3. the held-out seeds' end-to-end `benchmark --false-alarm-rate 0.01` (default method),
#      two processes per seed (5 classes each), started with setsid so a second call within the
#      machine's warm period finds them running and waits again.
#   usage: benchmarks/gpu_inspection.sh DEADLINE_SECONDS ["SEEDS"] [skip-load]
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
seeds=${2:-"1 2"}
source benchmarks/gpu_common.sh
mkdir -p "$OUT/benchmarks"
if [ "${3:-}" != "skip-load" ] && [ ! -f runs/load.done ]; then
  python3 benchmarks/serve_load.py --method template --points 100000 --requests 32 --concurrency 1 4 8 \
    --device cuda --out "$OUT/benchmarks/serve_load_template_cuda.md" 2>&1 | tail -20
  python3 benchmarks/scaleout.py --device cuda --devices cuda:0,cuda:0 --no-ray --method template \
    --scans 48 --points 100000 --batch 4 --out "$OUT/benchmarks/scaleout_cuda.md" 2>&1 | tail -12
  touch runs/load.done
fi
build_data "$seeds" "$deadline"
groups=("angle_block busted cow cycloidal fandisk" "featuretype fertility idler_riser plate_holes rocker_arm")
for seed in $seeds; do
  for g in 0 1; do
    out=runs/fa-s$seed-$g
    running "out $out " && continue
    [ -f "$out/results.json" ] && continue
    setsid python3 -m mvr3d benchmark --data runs/data_s$seed --out "$out" --method template --false-alarm-rate 0.01 \
      --classes ${groups[$g]} > "runs/logs/fa-s$seed-$g.log" 2>&1 &
  done
done
collect_runs "$deadline"
