#!/usr/bin/env bash
# The eager step's host time on one GPU, A/B (scripts/lean_host_time.py, one process each): the harness's
# fused Adam against PyTorch's default (foreach), the lean nodes' slices and split backward against fewer
# cuDNN calls (their peak memory beside), lean and the ANN twin, bf16 and fp32, into RESULTS/host_ab.md;
# then, unless STEP=0, the step table (configs/lean_step.toml) in the same call.
#
#   bash scripts/gpu_host_ab.sh RESULTS      # e.g. results/h200/issue13
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$res"
STAGE_LOG=host_ab.log
source scripts/device_env.sh
ab() { past "host $*" || python scripts/lean_host_time.py "$@" --out "$res/host_ab.md" 2>&1 | sed -n 3,6p; }
for prec in bf16 fp32; do
  ab --precision $prec --ann --adam foreach --no-profile
  ab --precision $prec --ann --no-profile
  ab --precision $prec --lean --adam foreach --no-profile
  ab --precision $prec --lean
  ab --precision $prec --lean --chunk-elements $((64 << 20)) --no-profile
  ab --precision $prec --lean --chunk-elements $((64 << 20)) --split-bytes $((1 << 40)) --no-profile
done
if [ "${STEP:-1}" = 1 ] && ! past step; then
  tf compare --config configs/lean_step.toml --device cuda --out "$res" 2>&1 | tee "$res/lean_step.log" | tail -30
  mv "$res/compare.csv" "$res/lean_step.csv" 2>/dev/null; mv "$res/compare.md" "$res/lean_step.md" 2>/dev/null
fi
echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/$STAGE_LOG"
