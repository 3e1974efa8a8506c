#!/usr/bin/env bash
# The temporal pipeline's memory per rank on a machine of one GPU: two ranks sharing it
# (TFBENCH_SHARE_GPUS=1: gloo, the membranes through the host), Spiking-ResNet18, CIFAR-10 shape
# (synthetic), batch 100. Each rank's peak is its own process's allocator's, what it would hold on a GPU
# of its own; the step times are not a two-GPU run's (the ranks take turns on the one GPU).
#
#   bash scripts/gpu_pipeline_shared.sh RESULTS      # into RESULTS/pipeline_shared (runs.jsonl, the logs)
#
# 1. T=32 bf16: lean and default in the pipeline of two ranks, and lean in one process (no pipeline);
# 2. T=4096 fp32 lean in the pipeline of two ranks (2,048 steps a rank), 2 steps.
# Each run starts only while BUDGET_S seconds have not passed.
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$res/pipeline_shared"
STAGE_LOG=pipeline_shared.log
source scripts/device_env.sh
out="$res/pipeline_shared"
common=(--arch Spiking-ResNet18 --dataset CIFAR-10 --synthetic --batch-size 100 --epochs 1 --device cuda --out "$out")
pipe=(--parallel temporal --nproc 2)
export TFBENCH_SHARE_GPUS=1
for args in "-T 32 --precision bf16 --max-steps 30 --lean ${pipe[*]}" "-T 32 --precision bf16 --max-steps 30 ${pipe[*]}" \
            "-T 32 --precision bf16 --max-steps 30 --lean" "-T 4096 --precision fp32 --max-steps 2 --lean ${pipe[*]}"; do
  past "run $args" && continue
  echo "== tf run $args ($(( $(date +%s) - start )) s)" | tee -a "$out/$STAGE_LOG"
  # shellcheck disable=SC2086
  timeout 300 python -m tfbench run "${common[@]}" $args 2>&1 | tail -25 | tee -a "$out/$STAGE_LOG"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$out/$STAGE_LOG"
echo "done in $(( $(date +%s) - start )) s" | tee -a "$out/$STAGE_LOG"
