#!/usr/bin/env bash
# One device call: build the realistic standard benchmark for the development seed (0) and
# the held-out seed (1), then run every method on both in parallel on one GPU; the class
# results land under runs/ as they finish (reruns resume) and are copied to $OUT.
#   usage: benchmarks/gpu_accuracy.sh DEADLINE_SECONDS "METHOD_SPEC ..."
# METHOD_SPEC = name:method[:config.json]
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src MVR3D_CACHE=$PWD/weights PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
mkdir -p runs/logs
for seed in 0 1; do
  if ! python3 -c "import json,sys; sys.exit(0 if json.load(open('runs/data_s$seed/meta.json')).get('complete') else 1)" 2>/dev/null; then
    setsid python3 -m mvr3d make-benchmark --out runs/data_s$seed --preset standard --shapes .shapes --seed $seed --workers 8 > runs/logs/data_s$seed.log 2>&1 &
  fi
done
wait
for spec in $2; do
  IFS=: read -r name method config <<< "$spec"
  for seed in 1 0; do
    args=(--data runs/data_s$seed --out runs/$name-s$seed --method $method)
    [ -n "${config:-}" ] && args+=(--config "$config")
    setsid python3 -m mvr3d benchmark "${args[@]}" > runs/logs/$name-s$seed.log 2>&1 &
  done
done
while [ "$(date +%s)" -lt "$deadline" ] && [ -n "$(jobs -r)" ]; do sleep 5; done
tar czf "$OUT/runs.tgz" runs/*-s*/classes runs/*-s*/results.* runs/logs runs/data_s*/meta.json 2>/dev/null
ls runs/*/classes 2>/dev/null | head -80
nvidia-smi --query-gpu=name,memory.used --format=csv
