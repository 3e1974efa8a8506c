#!/usr/bin/env bash
# Several GPUs (issue 6): the temporal pipeline's single-layer scaling (the paper's Fig. 6) and
# Spiking-ResNet18 training with --parallel data / temporal, on every GPU of one node (2 or 4 H200).
#
#   scripts/multi_gpu_bench.sh OUT            # from the repository root; about 8 minutes on 4 H200
#
# Writes, under OUT:
#   scaling/scaling.jsonl, scaling.md, scaling.png   Fig. 6: one LIF layer, N=10^6, T=1024/2048/4096,
#                                                    k=1,2,4 GPUs, forward and backward, the paper's model
#   resnet18/runs.jsonl                              training steps: T=32 and a T too long for one GPU
#   resnet18/summary.md                              step time, speed-up, efficiency, peak memory per GPU
#   logs/*.log                                       every command's output; logs/time.txt: each step's wall time
# Works without tfbench installed (PYTHONPATH=$PWD) and without internet. Each step has its own time
# limit, and a step that would start after BUDGET_S is skipped (said in logs/time.txt).
set -u
OUT=${1:?usage: scripts/multi_gpu_bench.sh OUT}
BUDGET_S=${BUDGET_S:-450}      # start no new step after this many seconds (one call has ~8 minutes)
mkdir -p "$OUT/logs" "$OUT/scaling" "$OUT/resnet18"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NCCL_NVLS_ENABLE=0              # no NVLink multicast (KINDS.md)
export TFBENCH_DIST_TIMEOUT_S=240      # a stuck exchange ends the step instead of the whole call
export TFBENCH_GIT_COMMIT=${TFBENCH_GIT_COMMIT:-$(cat .git_commit 2>/dev/null || echo unknown)}
START=$(date +%s)
NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
echo "GPUs: $NGPU" | tee "$OUT/logs/time.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/logs/nvidia-smi.txt" 2>&1
nvidia-smi topo -m >>"$OUT/logs/nvidia-smi.txt" 2>&1

if [ "$NGPU" -ge 4 ]; then KS="1,2,4"; BIG_T=4096; BIG_KS="4 2"
elif [ "$NGPU" -ge 2 ]; then KS="1,2"; BIG_T=3072; BIG_KS="2"
else echo "needs at least 2 GPUs, found $NGPU" >&2; exit 1; fi
MAXK=${KS##*,}

step() {   # step NAME LIMIT_S COMMAND...: run with a time limit, log it, record its wall time
  local name=$1 limit=$2; shift 2
  local now=$(( $(date +%s) - START ))
  if [ "$now" -ge "$BUDGET_S" ]; then echo "$name: skipped (budget spent at ${now} s)" | tee -a "$OUT/logs/time.txt"; return; fi
  local t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc, $(( $(date +%s) - t0 )) s (at $(( $(date +%s) - START )) s)" | tee -a "$OUT/logs/time.txt"
}

# The C++ autograd node of the eager GPU path, built once now (in the background, beside the layer
# benchmark, which does not use it) rather than by the first training run's ranks.
( timeout 240 python -c "from tfbench.ops import library; print('ops:', library.IMPLEMENTATION)" \
    >"$OUT/logs/build_cpp_node.log" 2>&1 ) &
BUILD=$!

# 1. Fig. 6. Chunks: the pipeline fills in (k-1) chunk times, so more chunks fill it sooner, but a
#    chunk of N/C neurons must still keep the GPU's memory busy: 8-32 brackets the best; --unroll 16
#    keeps 4x more loads in flight per thread, for narrow chunks.
S="python -m tfbench scale --device cuda -N 1000000 --gpus $KS --repeats 10 --warmup 3 --out $OUT/scaling"
step scale_fig6 170 $S -T 1024,2048,4096 --chunks 8,16,32
step scale_unroll16 110 $S -T 4096 --chunks 16,32,64 --unroll 16
wait $BUILD

# 2. Spiking-ResNet18, synthetic CIFAR-10, batch 100, fp32: one step = forward + backward + Adam.
R="python -m tfbench run --dataset CIFAR-10 --synthetic --arch Spiking-ResNet18 --backend tfbench --epochs 1 --max-steps 12 --batch-size 100 --device cuda --out $OUT/resnet18"
step t32_1gpu 90 $R -T 32
for k in ${KS//,/ }; do
  [ "$k" -eq 1 ] && continue
  step "t32_temporal_${k}gpu" 90 $R -T 32 --parallel temporal --nproc "$k"
  step "t32_data_${k}gpu" 90 $R -T 32 --parallel data --nproc "$k"
done

# 3. A T whose activations (~0.64 MB per sample and step: 66 GB per 1024 steps at batch 100) do not
#    fit one GPU: one GPU records "oom"; the temporal pipeline holds T/k steps per GPU; data
#    parallelism with the same global batch (100/k per GPU) beside it.
B="python -m tfbench run --dataset CIFAR-10 --synthetic --arch Spiking-ResNet18 --backend tfbench --epochs 1 --max-steps 6 --device cuda --out $OUT/resnet18 -T $BIG_T"
step "t${BIG_T}_1gpu" 90 $B --batch-size 100
for k in $BIG_KS; do
  step "t${BIG_T}_temporal_${k}gpu" 150 $B --batch-size 100 --parallel temporal --nproc "$k"
done
step "t${BIG_T}_data_${MAXK}gpu" 150 $B --batch-size $((100 / MAXK)) --parallel data --nproc "$MAXK"

# 4. The summary table (from the store only).
python - "$OUT/resnet18/runs.jsonl" >"$OUT/resnet18/summary.md" 2>"$OUT/logs/summary.log" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows[d["key"]] = d
rows = sorted(rows.values(), key=lambda d: (d["T"], d.get("parallel", "none"), d.get("world_size", 1)))
one = {d["T"]: d["step_ms"] for d in rows if d.get("world_size", 1) == 1 and d.get("parallel", "none") == "none"
       and d["status"] == "ok"}
print("| T | parallel | GPUs | batch per GPU | global batch | status | step ms | samples/s | speed-up | efficiency | peak GB per GPU |")
print("| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
for d in rows:
    k, par = d.get("world_size", 1), d.get("parallel", "none")
    glob = d["batch_size"] * k if par == "data" else d["batch_size"]
    ms = d.get("step_ms")
    # speed-up in samples/s over one GPU at the same T (none when one GPU could not run it)
    base = one.get(d["T"])
    sp = (d["samples_per_s"] / (d["batch_size"] / (base / 1e3))) if (ms and base and par == "none") else \
        ((glob / (ms / 1e3)) / (100 / (base / 1e3)) if (ms and base) else None)
    peak = d.get("peak_mem_bytes")
    cells = [d["T"], par, k, d["batch_size"], glob, d["status"].split(":")[0], f"{ms:.1f}" if ms else "",
             f"{d['samples_per_s']:.0f}" if d.get("samples_per_s") else "", f"{sp:.2f}" if sp else "",
             f"{sp / k:.2f}" if sp else "", f"{peak / 1e9:.1f}" if peak else ""]
    print("| " + " | ".join(map(str, cells)) + " |")
PY
cat "$OUT/logs/time.txt"; echo; cat "$OUT/scaling/scaling.md" 2>/dev/null | head -80; echo; cat "$OUT/resnet18/summary.md"
echo "total $(( $(date +%s) - START )) s"
