#!/usr/bin/env bash
# Device call: throughput of the default template method (location calibration on) on 100 k-point
# scans of seed 2, B = 64, as in benchmarks/throughput_template_cuda.md; table to $OUT.
source benchmarks/gpu_common.sh
build_classes 2 "angle_block cycloidal fandisk" 100000
python3 benchmarks/throughput.py --method template --device cuda --data runs/data_s2_p100000 --classes angle_block cycloidal fandisk --batches 64 --out $OUT/throughput_template_location.md > $OUT/throughput.log 2>&1
tail -20 $OUT/throughput.log; cat $OUT/throughput_template_location.md
