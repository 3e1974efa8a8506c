#!/usr/bin/env bash
# The training-step rows of issues 12 and 14, in one device call (at most ~8 minutes on an H200), in
# order of need, each stage started only while BUDGET_S seconds have not passed:
#
#   bash scripts/gpu_final.sh RESULTS      # e.g. results/h200
#
# 1. SpikingJelly's spiking_resnet18 from its own zoo (CIFAR-10 shape, batch 100, T 4/32, fp32/bf16):
#    SpikingJelly 2.0 as built, the same model after tfbench.accelerate, and its ANN twin;
# 2. Spiking-ResNet18 with PLIF (learnable tau): tfbench, SpikingJelly's ParametricLIFNode, the ANN twin;
# 3. sew_resnet18 and spiking_vgg11_bn from the zoo, as 1;
# 4. Spiking-ResNet18 under --compile: tfbench, SpikingJelly, the ANN twin (T=4, fp32).
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$res"
source scripts/device_env.sh
# the CUDA tests of the merged tree first (the fused op, the training loop, the energy meter), 8 at once
timeout 240 python -m pytest -q -p no:cacheprovider -n 8 tests/ops tests/bench/test_train.py tests/bench/test_energy.py \
  -k "cuda or graph" -W ignore::DeprecationWarning 2>&1 | tail -6 | tee "$res/final_cuda_tests.log"
start=$(date +%s)
stage() {   # stage NAME ARGS...: a compare into $res, its table as $res/NAME.{csv,md}
  local name=$1; shift
  if [ $(( $(date +%s) - start )) -gt "$BUDGET_S" ]; then echo "skipped $name: past ${BUDGET_S} s" | tee -a "$res/final.log"; return; fi
  echo "== $name ($(( $(date +%s) - start )) s)" | tee -a "$res/final.log"
  tf compare "$@" --dataset CIFAR-10 --synthetic --batch-size 100 --epochs 1 --max-steps 10 --device cuda \
    --ann-floor --out "$res" 2>&1 | tee "$res/$name.log" | tail -22
  mv "$res/compare.csv" "$res/$name.csv" 2>/dev/null; mv "$res/compare.md" "$res/$name.md" 2>/dev/null
}
zoo=(--backends tfbench,spikingjelly --baseline spikingjelly -T 4,32 --precision fp32,bf16)
stage zoo_spiking_resnet18 --arch sj:spiking_resnet18 "${zoo[@]}"
stage plif_resnet18 --arch Spiking-ResNet18 --neuron PLIF --backends tfbench,spikingjelly --baseline spikingjelly -T 4,32
stage zoo_sew_vgg --arch sj:sew_resnet18,sj:spiking_vgg11_bn "${zoo[@]}"
stage compile_resnet18 --arch Spiking-ResNet18 --compile --backends tfbench,spikingjelly --baseline spikingjelly -T 4
echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/final.log"
