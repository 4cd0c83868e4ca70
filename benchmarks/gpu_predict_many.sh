#!/usr/bin/env bash
# One device call, the reliability check of issue 18: on one GPU, fit every class of the
# realistic standard benchmark (held-out seed 1) with the given settings, then `predict` each
# class's test scans and record every command's exit status; meanwhile run the template
# method (CUDA registration and local planes) on a few classes.
#   usage: benchmarks/gpu_predict_many.sh DEADLINE_SECONDS ITERATIONS [CONFIG.json]
# Writes $OUT/predict_many.tsv (class, fit status, predict status, scans scored) and logs.
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
iterations=${2:-100}
config=${3:-}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src MVR3D_CACHE=$PWD/weights PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
data=runs/data_s1
mkdir -p runs/logs
python3 -m mvr3d make-benchmark --out $data --preset standard --shapes .shapes --seed 1 --workers 16 > runs/logs/data.log 2>&1
setsid python3 -m mvr3d benchmark --data $data --out runs/template-s1 --method template \
  --classes angle_block cycloidal fandisk > runs/logs/template.log 2>&1 &
classes=$(cd $data && ls -d */ | tr -d /)
run_class() {
  local c=$1 extra=()
  [ -n "$config" ] && extra=(--config "$config")
  python3 -m mvr3d fit --data $data --class "$c" --out runs/fit/$c --iterations "$iterations" "${extra[@]}" > runs/logs/fit-$c.log 2>&1
  local fit=$?
  python3 -m mvr3d predict --checkpoint runs/fit/$c --input $data/$c/test --output runs/predict/$c > runs/logs/predict-$c.log 2>&1
  local predict=$?
  local scored=$(( $(wc -l < runs/predict/$c/scores.csv 2>/dev/null || echo 1) - 1 ))
  printf '%s\t%s\t%s\t%s\n' "$c" "$fit" "$predict" "$scored" >> runs/predict_many.tsv
}
for c in $classes; do run_class "$c" & done
while [ "$(date +%s)" -lt "$deadline" ] && [ -n "$(jobs -r)" ]; do sleep 5; done
printf 'class\tfit\tpredict\tscored\n' > "$OUT/predict_many.tsv"
sort runs/predict_many.tsv >> "$OUT/predict_many.tsv" 2>/dev/null
tar czf "$OUT/logs.tgz" runs/logs runs/template-s1/results.* runs/template-s1/classes runs/predict/*/scores.csv 2>/dev/null
cat "$OUT/predict_many.tsv"
grep -l "Traceback\|Error" runs/logs/*.log | head
tail -3 runs/logs/template.log
nvidia-smi --query-gpu=name,memory.used --format=csv
