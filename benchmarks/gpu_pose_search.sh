#!/usr/bin/env bash
# Device calls for MVR's pose search (MVRConfig.pose_search, 'sparse' vs 'dense'): for each seed,
# build the realistic `standard` benchmark, then score every class with the template reference
# (benchmarks/mvr_reference_variants.py) under both pose searches, side by side on the one GPU.
# Each seed's chain runs under setsid, so a second call with the same arguments finds it
# running, waits for it (or DEADLINE) and packs the tables into $OUT/pose_search.tgz.
#   usage: benchmarks/gpu_pose_search.sh DEADLINE_SECONDS "SEEDS" ["SEARCHES" (default "sparse dense")] ["VARIANT ARGS"]
#          benchmarks/gpu_pose_search.sh chain SEED "SEARCHES" "VARIANT ARGS"   (one seed's chain; started by the above)
set -u
source benchmarks/gpu_common.sh
if [ "$1" = chain ]; then
  seed=$2
  python3 -m mvr3d make-benchmark --out runs/data_s$seed --preset standard --shapes .shapes --seed $seed \
    --workers 6 > runs/logs/data_s$seed.log 2>&1
  for search in $3; do
    python3 benchmarks/mvr_reference_variants.py --data runs/data_s$seed --out runs/mvr$search-s$seed \
      --pose-search $search ${4:-} > runs/logs/mvr$search-s$seed.log 2>&1 &
  done
  wait
  exit
fi
deadline=$(( $(date +%s) + ${1:-560} ))
git log -1 --format='code %H' 2>/dev/null; nvidia-smi --query-gpu=name --format=csv,noheader
for seed in $2; do
  running "gpu_pose_search.sh chain $seed" || setsid bash benchmarks/gpu_pose_search.sh chain "$seed" "${3:-sparse dense}" "${4:-}" >/dev/null 2>&1 &
done
sleep 5
while [ "$(date +%s)" -lt "$deadline" ] && running "gpu_pose_search.sh chain"; do sleep 5; done
tar czf "$OUT/pose_search.tgz" runs/mvr*-s*/ runs/logs runs/data_s*/meta.json 2>/dev/null
for d in runs/mvr*-s*/; do echo "$d $(ls "$d/classes" 2>/dev/null | wc -l) classes"; done
tail -n 2 runs/logs/*.log
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
