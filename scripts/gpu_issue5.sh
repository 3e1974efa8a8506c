#!/usr/bin/env bash
# Issue 5's GPU measurements, in stages that each fit one device call (about 10 minutes):
#
#   bash scripts/gpu_issue5.sh tests   RESULTS   # the CUDA tests (kernels, graphs, the recompute variant)
#   bash scripts/gpu_issue5.sh layer   RESULTS   # LIF-layer targets + the Fig. 5 sweep + the overhead profile
#   bash scripts/gpu_issue5.sh step    RESULTS   # training-step targets (eager, CUDA graphs) + profiles
#   bash scripts/gpu_issue5.sh options RESULTS   # channels-last and torch.compile
#
# RESULTS is a folder (e.g. results/h100). The layer stage re-times every cell (--force), so each of its
# tables comes from one process; the training stages skip runs already finished in RESULTS (resume).
set -u
stage=${1:?stage: tests, layer, step or options}
res=${2:?results folder}
mkdir -p "$res"
source scripts/device_env.sh

case "$stage" in
  tests)
    python -m pytest -q -p no:cacheprovider -x tests/ops tests/bench/test_train.py -k "cuda or recompute or graph" \
      2>&1 | tail -25 | tee "$res/cuda_tests.log"
    ;;
  layer)
    tf layer --config configs/layer_targets.toml --out "$res" --force 2>&1 | tee "$res/layer_targets.log" | tail -60
    tf layer --config configs/fig5.toml --out "$res" --force 2>&1 | tee "$res/fig5.log" | tail -5
    python scripts/profile_overhead.py > "$res/overhead.txt" 2>&1; head -8 "$res/overhead.txt"
    ;;
  step)
    tf compare --config configs/step_targets.toml --out "$res" 2>&1 | tee "$res/step_targets.log" | tail -40
    for args in "--backend tfbench -T 4" "--backend tfbench -T 32" "--backend spikingjelly -T 4" \
                "--arch ResNet18 -T 4" "--backend tfbench -T 4 --cuda-graphs" "--backend tfbench -T 4 --precision bf16"; do
      tf profile $args --out "$res/profiles" 2>&1 | grep -v "^USDT\|^ERROR\|^STAGE" | tee -a "$res/profiles.log" > /dev/null
    done
    tail -30 "$res/profiles.log"
    ;;
  options)
    tf compare --config configs/step_options.toml --out "$res" 2>&1 | tee "$res/step_options.log" | tail -30
    ;;
  *) echo "unknown stage '$stage'; choose from: tests, layer, step, options" >&2; exit 2 ;;
esac
