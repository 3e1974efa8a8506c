#!/usr/bin/env bash
# Issue 12's GPU run, in one device call (about 6 minutes), from the repository root:
#
#   bash scripts/gpu_issue12.sh OUT
#
# 1. builds the ops' C++ (kernels/tfbench_ops.cpp) and loads it; 2. at once: the CUDA tests
# (tests/ops, -k cuda) and the --compile investigation (scripts/compile_repro.py; tfbench run --compile
# for the ANN twin and Spiking-ResNet18, inductor's layout optimisation on and off); 3. alone on the
# machine: the layer sweep (configs/layer_issue12.toml) and the per-call costs (scripts/overhead_issue12.py).
# Logs and records land in OUT (layer.jsonl, layer_issue12.{md,csv}, tests.log, compile.log, run.log).
set -u
out=${1:?output folder}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d .whl ]; then   # the peers, carried as wheels
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > /dev/null 2>&1 && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
log() { echo "[$(date +%T)] $*"; }
{
  log "start"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  python -c "import torch, spikingjelly; print('torch', torch.__version__, torch.version.cuda, '| spikingjelly ok')"
  log "building the C++ ops"
  timeout 300 python -c "import torch; from tfbench.ops import library, jit; print(library.IMPLEMENTATION, jit.nvrtc_version())"
  log "tests and --compile runs"
  ( timeout 330 python -m pytest -q -p no:cacheprovider -n 6 tests/ops -k cuda -W ignore::DeprecationWarning \
      > "$out/tests.log" 2>&1; echo "pytest exit $?" >> "$out/tests.log" ) &
  tests=$!
  (
    timeout 200 python scripts/compile_repro.py cuda
    run() { timeout 300 python -m tfbench run --dataset CIFAR-10 --synthetic --device cuda -T 4 --batch-size 16 \
              --epochs 1 --max-steps 3 --compile "$@" 2>&1 | grep -E "status|step ms|error|Error|ok" | head -6; }
    ( echo "== ANN ResNet18, layout optimisation on (default)"; run --arch ResNet18 --out /tmp/c1 ) > /tmp/c1.log &
    ( echo "== ANN ResNet18, TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0"; TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0 run --arch ResNet18 --out /tmp/c2 ) > /tmp/c2.log &
    ( echo "== Spiking-ResNet18 tfbench, default"; run --arch Spiking-ResNet18 --backend tfbench --out /tmp/c3 ) > /tmp/c3.log &
    ( echo "== Spiking-ResNet18 tfbench PLIF, TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0"; TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0 run --arch Spiking-ResNet18 --backend tfbench --neuron PLIF --out /tmp/c4 ) > /tmp/c4.log &
    wait
    cat /tmp/c1.log /tmp/c2.log /tmp/c3.log /tmp/c4.log
    for d in /tmp/c1 /tmp/c2 /tmp/c3 /tmp/c4; do python - "$d" <<'PY'
import json, sys
for line in open(sys.argv[1] + "/runs.jsonl"):
    r = json.loads(line)
    print(sys.argv[1], r.get("arch"), r.get("neuron"), r.get("options"), r.get("status")[:600], r.get("step_ms"))
PY
    done
  ) > "$out/compile.log" 2>&1
  wait $tests
  tail -25 "$out/tests.log"
  log "layer sweep"
  timeout 330 python -m tfbench layer --config configs/layer_issue12.toml --out "$out" --force 2>&1 | tail -75
  log "per-call costs"
  timeout 150 python scripts/overhead_issue12.py cuda
  log "done"
} 2>&1 | tee "$out/run.log"
