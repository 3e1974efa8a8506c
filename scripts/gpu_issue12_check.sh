#!/usr/bin/env bash
# Issue 12's second GPU call: the --compile fix as committed (no environment variable), the repro with
# inductor's layout optimisation forced, the small layer's eager cost before (OLD tree) and after,
# and the bf16 recompute access width. Run from the repository root: bash scripts/gpu_issue12_check.sh OUT OLD
set -u
out=${1:?output folder}; old=${2:?the tree before the redesign}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log() { echo "[$(date +%T)] $*"; }
{
  log "start"
  ( cd "$old" && timeout 200 env PYTHONPATH=$PWD python -c "import torch; from tfbench.ops.lif import fast; print('old C++ node:', fast.extension() is not None)" ) &
  old_build=$!
  ( export PYTHONPATH=$PWD
    run() { timeout 240 python -m tfbench run --dataset CIFAR-10 --synthetic --device cuda -T 4 --batch-size 16 \
              --epochs 1 --max-steps 3 --compile "$@" 2>&1 | grep -E "│ status|step ms|error" | head -4; }
    ( echo "== ANN ResNet18 --compile (as committed)"; run --arch ResNet18 --out /tmp/d1 ) > /tmp/d1.log &
    ( echo "== Spiking-ResNet18 tfbench LIF --compile (as committed)"; run --arch Spiking-ResNet18 --backend tfbench --out /tmp/d2 ) > /tmp/d2.log &
    ( echo "== Spiking-ResNet18 tfbench LIF --compile --channels-last (as committed)"; run --arch Spiking-ResNet18 --backend tfbench --channels-last --out /tmp/d3 ) > /tmp/d3.log &
    ( echo "== repro, TORCHINDUCTOR_FORCE_LAYOUT_OPT=1"; TORCHINDUCTOR_FORCE_LAYOUT_OPT=1 timeout 200 python scripts/compile_repro.py cuda 2>&1 | grep -v -i warn ) > /tmp/d4.log &
    wait; cat /tmp/d1.log /tmp/d2.log /tmp/d3.log /tmp/d4.log ) > "$out/compile2.log" 2>&1 &
  compile=$!
  wait $old_build
  wait $compile
  cat "$out/compile2.log"
  log "small layer, old and new, alternating"
  for i in 1 2; do
    ( cd "$old" && PYTHONPATH=$PWD timeout 60 python "$OLDPWD/scripts/ab_small_layer.py" "before" )
    PYTHONPATH=$PWD timeout 60 python scripts/ab_small_layer.py "after"
  done
  log "bf16 recompute access width"
  PYTHONPATH=$PWD timeout 90 python scripts/vec_check.py
  log "done"
} 2>&1 | tee "$out/run2.log"
