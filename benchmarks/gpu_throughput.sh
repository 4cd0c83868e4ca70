#!/usr/bin/env bash
# Device call for the default path's speed and a check that batching kept its scores:
# build one seed of the realistic standard preset, time scoring per class with each of
# METHODS (template, mvr-reference; benchmarks/throughput.py, B scans per score_many call),
# then, given RUN_NAME, run the accuracy benchmark of `template` on the same seed. Tables and
# raw results land in $OUT.
#   usage: benchmarks/gpu_throughput.sh DEADLINE_SECONDS SEED "CLASSES" "BATCHES" [RUN_NAME] ["METHODS"]
set -u
deadline=$(( $(date +%s) + ${1:-560} ))
seed=${2:-2}
source benchmarks/gpu_common.sh
# The accuracy run needs every class; timing alone needs only CLASSES.
if [ -n "${5:-}" ]; then build_data "$seed" "$deadline"; else build_classes "$seed" "$3"; fi
git log -1 --format='code %H' 2>/dev/null; nvidia-smi --query-gpu=name --format=csv,noheader
for method in ${6:-template}; do
  name=${method//-/_}
  # shellcheck disable=SC2086
  timeout $(( deadline - $(date +%s) )) python3 benchmarks/throughput.py --method "$method" --device cuda \
    --data runs/data_s$seed --classes $3 --batches $4 --profile --out "$OUT/throughput_${name}_cuda.md" \
    > "$OUT/throughput_$name.log" 2>&1
  tail -n 8 "$OUT/throughput_$name.log"
done
if [ -n "${5:-}" ]; then
  out=runs/$5-s$seed
  timeout $(( deadline - $(date +%s) )) python3 -m mvr3d benchmark --data runs/data_s$seed --out "$out" \
    --method template > "runs/logs/$5-s$seed.log" 2>&1
  tail -n 20 "$out/results.md" 2>/dev/null
  tar czf "$OUT/runs.tgz" "$out" runs/logs runs/data_s$seed/meta.json 2>/dev/null
fi
