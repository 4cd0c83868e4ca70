#!/usr/bin/env bash
# Device call: builds seeds of the realistic `standard` preset with 100 good scans a class (all meshes of
# .shapes; classes are seeded by name), then runs benchmarks/mvr_reference_variants.py once per class and
# run spec, every process under setsid (up to MAX_RUNS at once), into runs/<name>-s<seed>/by-class/<class>.
# A second call with the same arguments on the warm machine finds the runs going, waits for them (or
# DEADLINE) and packs runs/*/classes into $OUT/variants.tgz.
#   usage: benchmarks/gpu_mvr_variant_runs.sh DEADLINE_SECONDS "SEEDS" "NAME:SEED:ARGS" ...
#   e.g.:  benchmarks/gpu_mvr_variant_runs.sh 560 "3 10" "base:3:--views ring4x30+4x60" \
#            "draw:3:--views ring4x30+4x60 --set reference_draw=scan --set denoise_k=16"
set -u
deadline=$(( $(date +%s) + $1 ))
seeds=$2
shift 2
source benchmarks/gpu_common.sh
for seed in $seeds; do
  data=runs/data_s${seed}g
  if [ ! -f $data/meta.json ] && ! running "out $data "; then
    setsid python3 -m mvr3d make-benchmark --out $data --preset standard --shapes .shapes --seed "$seed" \
      --good-scans 100 --workers 8 > runs/logs/data_s${seed}g.log 2>&1 &
  fi
done
sleep 2
while pgrep -f make-benchmark >/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 3; done
echo "built at $(( deadline - $(date +%s) )) s before the deadline"
for spec in "$@"; do
  IFS=: read -r name seed args <<< "$spec"
  data=runs/data_s${seed}g
  for class in $(ls $data); do
    out=runs/$name-s$seed/by-class/$class
    [ -d $data/$class ] && [ ! -f $out/classes/$class.json ] && ! running "out $out " || continue
    while [ "$(pgrep -fc mvr_reference_variants)" -ge "${MAX_RUNS:-20}" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
    [ "$(date +%s)" -lt "$deadline" ] || break
    # shellcheck disable=SC2086
    setsid python3 benchmarks/mvr_reference_variants.py --data $data --classes $class --out $out $args \
      > runs/logs/$name-s$seed-$class.log 2>&1 &
  done
done
while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f mvr_reference_variants >/dev/null; do sleep 5; done
for done_json in runs/*-s*/by-class/*/classes/*.json; do
  [ -f "$done_json" ] || continue
  mkdir -p "${done_json%%/by-class/*}/classes" && cp "$done_json" "${done_json%%/by-class/*}/classes/"
done
tar czf "$OUT/variants.tgz" runs/*-s*/classes runs/*-s*/by-class/*/run.json runs/logs runs/data_s*/meta.json 2>/dev/null
for d in runs/*-s*/; do echo "$d $(ls $d/classes 2>/dev/null | wc -l) classes"; done
for f in runs/logs/*-s*-*.log; do echo "$f: $(grep -c _ $f) scans"; done | head -40
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
