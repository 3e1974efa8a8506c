#!/usr/bin/env bash
# The lean step on one GPU, where its time goes (one device call, about 6 minutes on an H200):
#
#   bash scripts/gpu_lean_profile.sh RESULTS      # e.g. results/h200/issue13
#
# 1. the CUDA tests of the fused ops, 8 at once;
# 2. what is live at the step's peak (scripts/lean_memory_peak.py), into RESULTS/memory_peak.md;
# 3. tfbench default and lean against the ANN twin in channels-last memory, fp32 and bf16, eager and graphs
#    (configs/lean_channels_last.toml, into RESULTS/channels_last);
# 4. `tfbench profile` of the T=32 step (Spiking-ResNet18, CIFAR-10 shape, batch 100): lean fp32 and bf16,
#    NCHW and channels-last, and the ANN twin beside each, into RESULTS/profiles.
# Each stage starts only while BUDGET_S seconds have not passed.
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-360}
mkdir -p "$res/profiles"
STAGE_LOG=lean_profile.log
source scripts/device_env.sh
timeout 200 python -m pytest -q -p no:cacheprovider -n 8 tests/ops -k "cuda" -W ignore::DeprecationWarning 2>&1 \
  | tail -6 | tee "$res/lean_cuda_tests.log"
for args in "--lean --precision bf16" "--lean --precision bf16 --channels-last" "--lean --precision fp32" \
            "--ann --precision bf16"; do
  past "memory peak $args" || python scripts/lean_memory_peak.py $args --out "$res/memory_peak.md" 2>&1 | tail -3
done
if ! past "formats table"; then
  tf compare --config configs/lean_channels_last.toml --device cuda --out "$res/channels_last" 2>&1 | tail -30 \
    | tee -a "$res/lean_profile.log"
fi
[ "${PROFILES:-1}" = 1 ] || { echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/lean_profile.log"; exit 0; }
common=(--dataset CIFAR-10 --batch-size 100 -T 32 --device cuda --out "$res/profiles")
for fmt in "" --channels-last; do
  for prec in fp32 bf16; do
    past "profile $prec $fmt" && continue
    tf profile --arch Spiking-ResNet18 --backend tfbench --lean --precision $prec $fmt "${common[@]}" 2>&1 \
      | tail -22 | tee -a "$res/lean_profile.log"
    tf profile --arch ResNet18 --precision $prec $fmt "${common[@]}" 2>&1 | tail -22 | tee -a "$res/lean_profile.log"
  done
done
echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/lean_profile.log"
