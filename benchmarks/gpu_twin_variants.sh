#!/usr/bin/env bash
# Device call for MVR's normal-twin scoring rules (benchmarks/mvr_reference_variants.py --twins): builds
# CLASSES of seed SEED with 100 good scans a class (as gpu_heldout_method.sh does), then runs the variants
# script on every class at once (setsid), into runs/twin-s<SEED>g; a second call with the same arguments
# finds them running, waits (or DEADLINE) and packs $OUT/twin.tgz.
#   usage: benchmarks/gpu_twin_variants.sh DEADLINE_SECONDS SEED "CLASSES" [VARIANT SCRIPT ARGS...]
#   e.g.:  benchmarks/gpu_twin_variants.sh 560 3 "cow busted" --views ring4x30+4x60 --twins 1
set -u
deadline=$(( $(date +%s) + $1 ))
seed=$2 classes=$3
shift 3
source benchmarks/gpu_common.sh
data=runs/data_s${seed}g shapes=runs/shapes_s${seed}g out=runs/twin-s${seed}g
if [ ! -f $data/meta.json ] && ! running "out $data "; then
  mkdir -p "$shapes"
  for class in $classes; do cp .shapes/"$class".* .shapes/"${class//_/-}".* "$shapes"/ 2>/dev/null; done
  cp .shapes/LICENSE* "$shapes"/ 2>/dev/null
  python3 -m mvr3d make-benchmark --out $data --preset standard --shapes "$shapes" --seed "$seed" \
    --good-scans 100 --workers 16 > runs/logs/data_s${seed}g.log 2>&1
fi
echo "built at $(( deadline - $(date +%s) )) s before the deadline"
for class in $classes; do
  [ -f $out/classes/$class.json ] || running "classes $class --views" ||
    setsid python3 benchmarks/mvr_reference_variants.py --data $data --out $out --classes $class --seed "$seed" "$@" \
      > runs/logs/twin-s${seed}g-$class.log 2>&1 &
done
sleep 5
while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f "mvr_reference_variants.py" >/dev/null; do sleep 5; done
tar czf "$OUT/twin.tgz" runs/twin-s*/ runs/logs runs/data_s*/meta.json 2>/dev/null
for d in runs/twin-s*/; do echo "$d $(ls "$d/classes" 2>/dev/null | tr '\n' ' ')"; done
for f in runs/logs/twin-*.log; do echo "$f: $(wc -l < "$f") lines; $(tail -n 1 "$f" | cut -c1-150)"; done
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
