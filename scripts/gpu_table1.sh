#!/usr/bin/env bash
# The paper's Table 1 grid with its own baselines (issue 15), in one device call (about 6 minutes on an H200):
#
#   bash scripts/gpu_table1.sh RESULTS [WHEELS14]     # e.g. results/h200; WHEELS14: a folder with the
#                                                     # spikingjelly-0.0.0.0.14 wheel (a machine without internet)
#
# Spiking-ResNet18 and 50 on synthetic data of the four datasets' real shapes (batch 100, DvsGesture 10),
# T = 32, fp32, one epoch of 10 steps after the warm-up: SJ-PyTorch and SJ-CuPy (SpikingJelly 0.0.0.0.14,
# in its own environment), tfbench and SpikingJelly 2.0. Steady epochs are step x steps (issue 11's
# table), so the per-epoch time of a real epoch is the median step times its steps.
set -u
res=${1:?results folder}
wheels=${2:-}
mkdir -p "$res"
source scripts/device_env.sh
tf peers install spikingjelly014 ${wheels:+--find-links "$wheels"} 2>&1 | tail -2
tf compare --config configs/table1.toml --arch Spiking-ResNet18,Spiking-ResNet50 --no-ann-floor --synthetic \
  --epochs 1 --max-steps 10 --device cuda --out "$res" 2>&1 | tee "$res/table1.log" | tail -45
