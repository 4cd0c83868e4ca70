#!/usr/bin/env bash
# Device call for the template method's coverage rule (`edge_reach`): throughput of this tree on
# 100 k-point scans of seed 2 (B = 64, as benchmarks/throughput_template_cuda.md), then the held-out
# runs of CLASSES of seed 6 (100 good scans a class) in the foreground until the deadline: this tree
# into runs/template-new-s6g, oldsrc/src (the code before) on the classes runs/template-old-s6g lacks.
#   usage: benchmarks/gpu_coverage.sh quick DEADLINE_SECONDS "CLASSES"
set -u
source benchmarks/gpu_common.sh
deadline=$(( $(date +%s) + $2 ))
build_classes 2 "angle_block cycloidal fandisk" 100000
python3 benchmarks/throughput.py --method template --device cuda --data runs/data_s2_p100000 \
  --classes angle_block cycloidal fandisk --batches 64 --out "$OUT/throughput_template_edge.md" > "$OUT/throughput_edge.log" 2>&1
tail -4 "$OUT/throughput_edge.log"
bash benchmarks/gpu_heldout_classes.sh $(( deadline - $(date +%s) )) 6 "$3"
cp runs/logs/*.log "$OUT"/ 2>/dev/null
