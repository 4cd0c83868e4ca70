#!/usr/bin/env bash
# Device calls for MVR's view sets (MVRConfig.views) with the template reference: for each seed,
# build the realistic `standard` benchmark, then score every class under each view set
# (benchmarks/mvr_reference_variants.py --views V), side by side on the one GPU. Each seed's
# chain runs under setsid, so a second call with the same arguments finds it running, waits for
# it (or DEADLINE) and packs the tables into $OUT/views.tgz.
#   usage: benchmarks/gpu_reference_views.sh DEADLINE_SECONDS "SEEDS" "VIEW SETS" ["VARIANT ARGS"]
#          benchmarks/gpu_reference_views.sh chain SEED "VIEW SETS" "VARIANT ARGS"   (one seed's chain)
set -u
source benchmarks/gpu_common.sh
if [ "$1" = chain ]; then
  seed=$2
  [ -f runs/data_s$seed/meta.json ] || python3 -m mvr3d make-benchmark --out runs/data_s$seed --preset standard \
    --shapes .shapes --seed $seed --workers 6 > runs/logs/data_s$seed.log 2>&1
  for views in $3; do
    python3 benchmarks/mvr_reference_variants.py --data runs/data_s$seed --out runs/mvr-$views-s$seed \
      --views $views ${4:-} > runs/logs/mvr-$views-s$seed.log 2>&1 &
  done
  wait
  exit
fi
deadline=$(( $(date +%s) + ${1:-560} ))
git log -1 --format='code %H' 2>/dev/null; nvidia-smi --query-gpu=name --format=csv,noheader
for seed in $2; do
  running "gpu_reference_views.sh chain $seed" || setsid bash benchmarks/gpu_reference_views.sh chain "$seed" "$3" "${4:-}" >/dev/null 2>&1 &
done
sleep 5
while [ "$(date +%s)" -lt "$deadline" ] && running "gpu_reference_views.sh chain"; do sleep 5; done
tar czf "$OUT/views.tgz" runs/mvr-*-s*/ runs/logs runs/data_s*/meta.json 2>/dev/null
for d in runs/mvr-*-s*/; do echo "$d $(ls "$d/classes" 2>/dev/null | wc -l) classes"; done
tail -n 2 runs/logs/*.log
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
