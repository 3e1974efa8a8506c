#!/usr/bin/env bash
# The eager step's host time on one GPU, A/B (scripts/lean_host_time.py, one process each): the lean nodes'
# slices and split backward at several sizes (their cuDNN calls against their peak memory), and the twin,
# bf16 and fp32, into RESULTS/host_ab.md; then, unless STEP=0, the step table (configs/lean_step.toml).
#
#   bash scripts/gpu_host_ab.sh RESULTS      # e.g. results/h200/issue13
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$res"
STAGE_LOG=host_ab.log
source scripts/device_env.sh
ab() { past "host $*" || python scripts/lean_host_time.py "$@" --out "$res/host_ab.md" 2>&1 | sed -n 3,6p; }
# the lean nodes' stem slices and split threshold (CONV_CHUNK_ELEMENTS / SPLIT_BACKWARD_BYTES, tfbench/ops/norm.py):
# VARIANTS, "elements:bytes" each (default: version 17's 16 M : 8 MiB, and fewer cuDNN calls), the twin once;
# ADAM=1: also Adam foreach against fused
M=$((1 << 20))
for prec in bf16 fp32; do
  ab --precision $prec --ann --no-profile
  [ "${ADAM:-0}" = 1 ] && ab --precision $prec --ann --adam foreach --no-profile
  [ "${ADAM:-0}" = 1 ] && ab --precision $prec --lean --adam foreach --no-profile
  for v in ${VARIANTS:-16:8 16:64 32:8 32:64 64:64}; do
    ab --precision $prec --lean --chunk-elements $(( ${v%:*} * M )) --split-bytes $(( ${v#*:} * M )) --no-profile
  done
done
if [ "${STEP:-1}" = 1 ] && ! past step; then
  tf compare --config configs/lean_step.toml --device cuda --out "$res" 2>&1 | tee "$res/lean_step.log" | tail -30
  mv "$res/compare.csv" "$res/lean_step.csv" 2>/dev/null; mv "$res/compare.md" "$res/lean_step.md" 2>/dev/null
fi
echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/$STAGE_LOG"
