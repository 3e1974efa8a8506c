#!/usr/bin/env bash
# Issue 11's GPU checks and its compare table, in one device call (about 6 minutes on an H200):
#
#   bash scripts/gpu_issue11.sh RESULTS      # e.g. results/h200
#
# 1. the CUDA tests of the training loop (graph replay, the warm-up undone under a graph, energy);
# 2. Spiking-ResNet18 on synthetic CIFAR-10 (batch 100, T = 4 and 32, fp32, 2 epochs of 30 steps):
#    tfbench and SpikingJelly 2.0 beside the ANN twin, eager and with --cuda-graphs --channels-last,
#    with the setup time, the steady epoch time and the energy per step in the table;
# 3. the figures (speed-up and energy bars).
set -u
res=${1:?results folder}
mkdir -p "$res"
source scripts/device_env.sh
python -m pytest -q -p no:cacheprovider tests/bench/test_train.py tests/bench/test_energy.py \
  -k "cuda or graph or energy" 2>&1 | tail -15 | tee "$res/issue11_cuda_tests.log"
tf compare --config configs/epoch_times.toml --device cuda --out "$res" 2>&1 | tee "$res/epoch_times.log" | tail -30
tf plot --results "$res" --out "$res" 2>&1 | tail -3
