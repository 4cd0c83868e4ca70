#!/usr/bin/env bash
# Device calls for settings of MVR with the template reference: for each seed, build the
# realistic `standard` benchmark, then score every class once per value of one option of
# benchmarks/mvr_reference_variants.py (e.g. --views or --pose-search), side by side on the one
# GPU, into runs/mvr-<value>-s<seed>. Each seed's chain runs under setsid, so a second call with
# the same arguments finds it running, waits for it (or DEADLINE) and packs the tables into
# $OUT/reference_variants.tgz.
#   usage: benchmarks/gpu_reference_variants.sh DEADLINE_SECONDS "SEEDS" OPTION "VALUES" ["OTHER ARGS"]
#     e.g. benchmarks/gpu_reference_variants.sh 570 "1 2" --views "paper3 ring6x45 ring4x30+4x60"
#          benchmarks/gpu_reference_variants.sh 570 "1 2" --pose-search "sparse dense"
#          benchmarks/gpu_reference_variants.sh chain SEED OPTION "VALUES" "OTHER ARGS"   (one seed's chain)
set -u
source benchmarks/gpu_common.sh
if [ "$1" = chain ]; then
  seed=$2
  [ -f runs/data_s$seed/meta.json ] || python3 -m mvr3d make-benchmark --out runs/data_s$seed --preset standard \
    --shapes .shapes --seed $seed --workers 6 > runs/logs/data_s$seed.log 2>&1
  for value in $4; do
    # shellcheck disable=SC2086
    python3 benchmarks/mvr_reference_variants.py --data runs/data_s$seed --out runs/mvr-$value-s$seed \
      "$3" "$value" ${5:-} > runs/logs/mvr-$value-s$seed.log 2>&1 &
  done
  wait
  exit
fi
deadline=$(( $(date +%s) + ${1:-560} ))
git log -1 --format='code %H' 2>/dev/null; nvidia-smi --query-gpu=name --format=csv,noheader
for seed in $2; do
  running "gpu_reference_variants.sh chain $seed" ||
    setsid bash benchmarks/gpu_reference_variants.sh chain "$seed" "$3" "$4" "${5:-}" >/dev/null 2>&1 &
done
sleep 5
while [ "$(date +%s)" -lt "$deadline" ] && running "gpu_reference_variants.sh chain"; do sleep 5; done
tar czf "$OUT/reference_variants.tgz" runs/mvr-*-s*/ runs/logs runs/data_s*/meta.json 2>/dev/null
for d in runs/mvr-*-s*/; do echo "$d $(ls "$d/classes" 2>/dev/null | wc -l) classes"; done
tail -n 2 runs/logs/*.log
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
