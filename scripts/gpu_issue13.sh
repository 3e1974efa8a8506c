#!/usr/bin/env bash
# Issue 13 on one GPU, in one device call (about 8 minutes on an H200), each stage started only while
# BUDGET_S seconds have not passed:
#
#   bash scripts/gpu_issue13.sh RESULTS      # e.g. results/h200/issue13
#
# 1. the CUDA tests of the fused ops (the norm ops among them), 8 at once;
# 2. one conv->BN->add->neuron stage per feature-map size, composed / lean / ANN (scripts/lean_layer_bench.py;
#    LAYER=0 skips it), and the stem's max-pool of spikes three ways (scripts/spike_pool_bench.py);
# 3. the training-step table (configs/lean_step.toml): T=32, fp32/bf16, eager/graphs, default/lean, after the
#    host probe (scripts/host_probe.py, into RESULTS/host_probe.txt); what is
#    live at the lean step's peak (scripts/lean_memory_peak.py, bf16 and fp32);
# 4. memory against T (fp32, T in MEMORY_T, default 4 .. 4096, 2 steps each): tfbench default and lean,
#    SpikingJelly, the ANN twin, into RESULTS/memory (tfbench plot draws it); out-of-memory recorded as such
#    (MEMORY_LEAN_ONLY=1: the lean rows only);
# 5. Spiking-ResNet18 at T=4096, batch 100, lean bf16 (fp32 is in 4);
# 6. the step table in channels-last memory without SpikingJelly (configs/lean_channels_last.toml; CL=0 skips it);
# 7. PROFILE=1 only: `tfbench profile` of the lean fp32 step and the ANN twin's (NCHW and channels-last), into
#    RESULTS/profiles;
#    HOST=1 only: the host's time to issue a lean step (scripts/lean_host_time.py), into RESULTS/host_time.md.
# MEMORY=0 skips 4 and 5.
set -u
res=${1:?results folder}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$res"
STAGE_LOG=issue13.log
source scripts/device_env.sh
timeout 200 python -m pytest -q -p no:cacheprovider -n 8 tests/ops -k "cuda" -W ignore::DeprecationWarning 2>&1 \
  | tail -6 | tee "$res/issue13_cuda_tests.log"
[ "${LAYER:-1}" = 1 ] && ! past layer && timeout 120 python scripts/lean_layer_bench.py --out "$res/lean_layer.md" 2>&1 | tail -30
[ "${POOL:-1}" = 1 ] && ! past pool && timeout 100 python scripts/spike_pool_bench.py --out "$res/spike_pool.md" 2>&1 | tail -20
if ! past step; then
  python scripts/host_probe.py 2>&1 | tail -1 | tee "$res/host_probe.txt"   # the host's speed beside the table
  tf compare --config configs/lean_step.toml --device cuda --out "$res" 2>&1 | tee "$res/lean_step.log" | tail -30
  mv "$res/compare.csv" "$res/lean_step.csv" 2>/dev/null; mv "$res/compare.md" "$res/lean_step.md" 2>/dev/null
fi
for prec in bf16 fp32; do
  past "memory peak $prec" || python scripts/lean_memory_peak.py --lean --precision $prec --out "$res/memory_peak.md" \
    2>&1 | head -4
done
mem=(tf compare --arch Spiking-ResNet18 --dataset CIFAR-10 --synthetic --batch-size 100 -T ${MEMORY_T:-4,16,64,256,1024,4096}
     --precision fp32 --epochs 1 --max-steps 2 --device cuda --out "$res/memory")
if [ "${MEMORY:-1}" = 1 ] && ! past memory; then
  echo "== memory against T ($(( $(date +%s) - start )) s)" | tee -a "$res/issue13.log"
  # MEMORY_LEAN_ONLY=1: only the lean rows (the others' code unchanged since an earlier run)
  [ "${MEMORY_LEAN_ONLY:-0}" = 1 ] || \
    "${mem[@]}" --backends tfbench,spikingjelly --baseline spikingjelly --ann-floor 2>&1 | tail -30 | tee -a "$res/issue13.log"
  "${mem[@]}" --backends tfbench --baseline tfbench --lean 2>&1 | tail -12 | tee -a "$res/issue13.log"
fi
if [ "${MEMORY:-1}" = 1 ] && ! past "T=4096 bf16"; then
  echo "== T=4096 lean bf16 ($(( $(date +%s) - start )) s)" | tee -a "$res/issue13.log"
  tf run --arch Spiking-ResNet18 --dataset CIFAR-10 --synthetic --batch-size 100 -T 4096 --epochs 1 --max-steps 2 \
    --device cuda --lean --precision bf16 --out "$res/memory" 2>&1 | tail -20 | tee -a "$res/issue13.log"
fi
if [ "${CL:-1}" = 1 ] && ! past "channels-last table"; then
  tf compare --config configs/lean_channels_last.toml --device cuda --out "$res" 2>&1 | tail -20 \
    | tee "$res/lean_channels_last.log"
fi
for fmt in "" --channels-last; do
  [ "${PROFILE:-0}" = 1 ] && ! past "profile $fmt" || continue
  for model in "--arch Spiking-ResNet18 --backend tfbench --lean" "--arch ResNet18"; do
    tf profile $model --precision fp32 $fmt --dataset CIFAR-10 --batch-size 100 -T 32 --device cuda \
      --out "$res/profiles" 2>&1 | tail -30 | tee -a "$res/issue13.log"
  done
done
[ "${HOST:-0}" = 1 ] && ! past "host time" && python scripts/lean_host_time.py --lean --out "$res/host_time.md" 2>&1 | tail -5
echo "done in $(( $(date +%s) - start )) s" | tee -a "$res/issue13.log"
