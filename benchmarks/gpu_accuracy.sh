#!/usr/bin/env bash
# Device calls for the accuracy tables: build the realistic standard benchmark for the
# given seeds (0 = development, 1 = held out), then run every method on them in parallel on
# one GPU. Runs are started with setsid and outlive the call; a second call within the
# machine's warm period finds them running, starts only what is not, and waits again.
# Finished classes land under runs/ (a rerun resumes) and are copied to $OUT as runs.tgz.
#   usage: benchmarks/gpu_accuracy.sh DEADLINE_SECONDS "METHOD_SPEC ..." ["SEEDS"]
# METHOD_SPEC = name:method[:config.json]
set -u
deadline=$(( $(date +%s) + ${1:-540} ))
seeds=${3:-"0 1"}
source benchmarks/gpu_common.sh
build_data "$seeds" "$deadline"
for spec in $2; do
  IFS=: read -r name method config <<< "$spec"
  for seed in $seeds; do
    out=runs/$name-s$seed
    running "out $out " && continue
    [ -f "$out/results.json" ] && continue
    args=(--data runs/data_s$seed --out "$out" --method "$method")
    [ -n "${config:-}" ] && args+=(--config "$config")
    setsid python3 -m mvr3d benchmark "${args[@]}" > "runs/logs/$name-s$seed.log" 2>&1 &
  done
done
collect_runs "$deadline"
