#!/usr/bin/env bash
# Device call for the density pass's speed: the steps of the anchored density pass on synthetic
# scans (benchmarks/neighbour_index_profile.py; with NIP=1), then benchmarks/throughput.py (100 k-point scans of seed 2,
# B = 64) of this tree and of the code in .perfbase/src (`git archive REV src | tar -x -C .perfbase`).
# CODES: "new" (this tree), "base" (.perfbase/src) or a folder under .perfbase holding src/; each
# starts only while DEADLINE seconds have not passed.
#   usage: benchmarks/gpu_density.sh DEADLINE "CODES"
set -u
deadline=$(( $(date +%s) + $1 ))
source benchmarks/gpu_common.sh
build_classes 2 "angle_block cycloidal fandisk" 100000
[ -n "${NIP:-}" ] && python3 benchmarks/neighbour_index_profile.py --device cuda --out "$OUT/neighbour_index_profile_cuda.md" > "$OUT/nip.log" 2>&1
[ -n "${NIP:-}" ] && head -16 "$OUT/nip.log"
for code in $2; do
  [ "$(date +%s)" -lt "$deadline" ] || break
  src=$PWD/src; [ "$code" = base ] && src=$PWD/.perfbase/src; [ -d ".perfbase/$code/src" ] && src=$PWD/.perfbase/$code/src
  PYTHONPATH=/tmp/site:$src:$PWD/benchmarks python3 benchmarks/throughput.py --method template --device cuda \
    --data runs/data_s2_p100000 --classes angle_block cycloidal fandisk --batches 64 \
    --out "$OUT/throughput_template_$code.md" > "$OUT/throughput_$code.log" 2>&1
  echo "$code"; tail -6 "$OUT/throughput_template_$code.md"
done
