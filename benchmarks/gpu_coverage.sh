#!/usr/bin/env bash
# Device calls for the template method's coverage rule (`edge_reach`), two calls back to back on
# one warm machine. oldsrc/src: the code before it (edge_reach absent, i.e. 0); src: this tree.
#   benchmarks/gpu_coverage.sh start  — throughput of both codes on 100 k-point scans of seed 2
#       (B = 64, as benchmarks/throughput_template_cuda.md), then starts (setsid) the held-out
#       runs of seed 6 (100 good scans a class): this tree on every class into runs/template-new-s6g,
#       the code before on the classes runs/template-old-s6g/classes lacks.
#   benchmarks/gpu_coverage.sh collect DEADLINE_SECONDS — waits for those runs, packs them to $OUT.
#   benchmarks/gpu_coverage.sh quick DEADLINE_SECONDS "CLASSES" — one call: throughput of this tree
#       only, then the held-out runs of CLASSES of seed 6 in the foreground until the deadline.
set -u
source benchmarks/gpu_common.sh
classes="angle_block busted cow cycloidal fandisk featuretype fertility idler_riser plate_holes rocker_arm"
if [ "$1" = quick ]; then
  deadline=$(( $(date +%s) + $2 ))
  build_classes 2 "angle_block cycloidal fandisk" 100000
  python3 benchmarks/throughput.py --method template --device cuda --data runs/data_s2_p100000 \
    --classes angle_block cycloidal fandisk --batches 64 --out "$OUT/throughput_template_edge.md" > "$OUT/throughput_edge.log" 2>&1
  tail -4 "$OUT/throughput_edge.log"
  bash benchmarks/gpu_heldout_classes.sh $(( deadline - $(date +%s) )) 6 "$3"
  cp runs/logs/*.log "$OUT"/ 2>/dev/null
elif [ "$1" = start ]; then
  build_classes 2 "angle_block cycloidal fandisk" 100000
  for code in oldsrc/src src; do
    name=$([ $code = src ] && echo edge || echo before)
    PYTHONPATH=/tmp/site:$PWD/$code:$PWD/benchmarks python3 benchmarks/throughput.py --method template --device cuda \
      --data runs/data_s2_p100000 --classes angle_block cycloidal fandisk --batches 64 \
      --out "$OUT/throughput_template_$name.md" > "$OUT/throughput_$name.log" 2>&1
    tail -4 "$OUT/throughput_$name.log"
  done
  # Ten runs at once fit an H200 (139 GiB; about 10 GiB each at their peak), not an H100.
  export MAX_RUNS=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | awk '{print ($1 > 100000) ? 10 : 6}')
  setsid bash benchmarks/gpu_heldout_classes.sh 1150 6 "$classes" > runs/logs/heldout.log 2>&1 &
  sleep 20; cat runs/logs/heldout.log
else
  deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ] && pgrep -f "gpu_heldout_classes|make-benchmark|mvr3d benchmark" >/dev/null; do sleep 5; done
  for done_json in runs/template-*-s6g/by-class/*/classes/*.json; do
    [ -f "$done_json" ] && cp "$done_json" "${done_json%%/by-class/*}/classes/"
  done
  collect_runs "$deadline"
  cat runs/logs/heldout.log
fi
