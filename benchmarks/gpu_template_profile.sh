#!/usr/bin/env bash
# Device call: where the template method's scoring time goes (benchmarks/template_profile.py)
# for several code versions over the same data. Builds CLASSES of one seed of the realistic
# standard preset (classes are seeded by name, so a subset equals the full build's), then
# profiles each VARIANT, "CODE:K[:F:S]": CODE is "new" (this tree's src) or "base" (a copy of an
# earlier src carried in .perfbase/src, e.g. `git archive TAG src | tar -x -C .perfbase`), K the
# largest smoothing neighbourhood taken from cell grids, F and S the grid levels' factor and
# share of the reference (each "default": the code's own; new code only). Tables and rows
# land in $OUT.
#   usage: benchmarks/gpu_template_profile.sh DEADLINE_SECONDS SEED "CLASSES" "VARIANTS"
set -u
deadline=$(( $(date +%s) + ${1:-560} ))
seed=${2:-2}
source benchmarks/gpu_common.sh
build_classes "$seed" "$3"
git log -1 --format='code %H' 2>/dev/null; nvidia-smi --query-gpu=name --format=csv,noheader
for variant in $4; do
  IFS=: read -r code most factor share <<< "$variant"
  most=${most:-default} factor=${factor:-default} share=${share:-default}
  src=$PWD/src; [ "$code" = base ] && src=$PWD/.perfbase/src
  PYTHONPATH=/tmp/site:$src:$PWD/benchmarks timeout $(( deadline - $(date +%s) )) python3 benchmarks/template_profile.py \
    --data runs/data_s$seed --classes $3 --out "$OUT/profile_${variant//:/_}.json" \
    $([ "$most" = default ] || echo --smoothing-grid-max "$most") $([ "$factor" = default ] || echo --grid-level-factor "$factor") \
    $([ "$share" = default ] || echo --grid-level-share "$share") > "$OUT/profile_${variant//:/_}.log" 2>&1
  tail -n 6 "$OUT/profile_${variant//:/_}.log"
done
