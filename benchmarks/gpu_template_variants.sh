#!/usr/bin/env bash
# Beside benchmarks/gpu_accuracy.sh in one device call: once that script's data for a seed
# is complete, score it with benchmarks/template_variants.py (runs/tv-s<seed>, resumable).
#   usage: benchmarks/gpu_template_variants.sh DEADLINE_SECONDS ["SEEDS"]
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
export PYTHONPATH=/tmp/site:$PWD/src MVR3D_CACHE=$PWD/weights PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
for seed in ${2:-"0 1"}; do
  (
    until python3 -c "import json,sys; sys.exit(0 if json.load(open('runs/data_s$seed/meta.json')).get('complete') else 1)" 2>/dev/null; do
      [ "$(date +%s)" -ge "$deadline" ] && exit 0; sleep 5
    done
    pgrep -f "out runs/tv-s$seed" >/dev/null || \
      setsid python3 benchmarks/template_variants.py --data runs/data_s$seed --out runs/tv-s$seed > runs/logs/tv-s$seed.log 2>&1 &
  ) &
done
wait
