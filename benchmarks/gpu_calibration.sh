#!/usr/bin/env bash
# Device calls for the threshold calibration (#19) on one GPU:
#   1. `mvr3d serve` load with the default detector, 100 k-point scans (GPU otherwise idle);
#   2. calibration scores of every class (benchmarks/calibration_check.py --json) on the
#      development seed 0 and on seed 3, a seed no setting was chosen on, and the default
#      method's test scores on seed 3 (`mvr3d benchmark`); the thresholds are fitted afterwards
#      from the JSON, on any machine.
# Jobs start with setsid; a second call within the machine's warm period finds them running
# and waits again.   usage: benchmarks/gpu_calibration.sh DEADLINE_SECONDS [skip-load]
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
source benchmarks/gpu_common.sh
mkdir -p runs/cal "$OUT/benchmarks"
if [ "${2:-}" != "skip-load" ] && [ ! -f runs/load.done ]; then
  python3 benchmarks/serve_load.py --method template --points 100000 --requests 32 --concurrency 1 4 8 \
    --device cuda --out "$OUT/benchmarks/serve_load_template_cuda.md" 2>&1 | tail -12
  touch runs/load.done
fi
build_data "0 3" "$deadline"
halves=("angle_block busted cow cycloidal fandisk" "featuretype fertility idler_riser plate_holes rocker_arm")
thirds=("angle_block busted cow cycloidal" "fandisk featuretype fertility" "idler_riser plate_holes rocker_arm")
for g in 0 1; do
  out=runs/template-s3-$g
  running "out $out " || [ -f "$out/results.json" ] || setsid python3 -m mvr3d benchmark --data runs/data_s3 --out "$out" \
    --method template --classes ${halves[$g]} > "runs/logs/template-s3-$g.log" 2>&1 &
done
for seed in 0 3; do
  for g in 0 1 2; do
    json=runs/cal/cal-s$seed-$g.json
    running "json $json" || [ -f "$json.done" ] || setsid bash -c "python3 benchmarks/calibration_check.py --data runs/data_s$seed \
      --classes ${thirds[$g]} --tag gpu-s$seed-$g --variants '8 fixed views, random pose' '16 fixed views, random pose' \
      --json $json && touch $json.done" > "runs/logs/cal-s$seed-$g.log" 2>&1 &
  done
done
sleep 5  # let the setsid jobs appear to pgrep before waiting on them
while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f "mvr3d benchmark|calibration_check" >/dev/null; do sleep 5; done
tar czf "$OUT/runs.tgz" runs/template-s3-*/classes runs/template-s3-*/results.* runs/cal runs/logs runs/data_s*/meta.json 2>/dev/null
ls runs/cal; for d in runs/template-s3-*/; do echo "$d $(ls $d/classes 2>/dev/null | tr '\n' ' ')"; done
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
