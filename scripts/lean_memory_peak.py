"""What is live at the training step's peak on a GPU: the CUDA caching allocator's history over one steady step.

    python scripts/lean_memory_peak.py --precision bf16 [--lean] [--channels-last] [--out FILE.md]

Spiking-ResNet18 (tfbench's LIF, or the ANN twin with --ann), CIFAR-10 shape, batch 100, T=32, the harness's Adam, as
``tfbench run`` trains it (bench.step.TrainingStep on a synthetic batch). After three warm-up steps
one step is recorded (torch.cuda.memory._record_memory_history); the script replays the allocation
events and prints the peak above what was allocated before the step (weights, Adam's state, the
batch) and the live blocks at that moment, grouped by the innermost frame of this repository or of
torch.nn that allocated them.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from report_md import emit  # noqa: E402  (scripts/, the running script's folder)
from tfbench import models  # noqa: E402
from tfbench.bench.step import TrainingStep, adam  # noqa: E402
from tfbench.data import get as dataset  # noqa: E402
from tfbench.ops.modules import LIF  # noqa: E402
from tfbench.results.schema import RunConfig  # noqa: E402

MiB = 2 ** 20


def frame_of(frames: list[dict]) -> str:
    for f in frames:
        name = f.get("filename", "")
        if ("tfbench" in name or "torch/nn/" in name or "torch/autograd" in name or "torch/optim" in name) \
                and "lean_memory_peak" not in name:
            return f"{name.split('site-packages/')[-1].split('work/')[-1]}:{f.get('line')} {f.get('name')}"
    return "(no python frame)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--lean", action="store_true")
    ap.add_argument("--ann", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("-T", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--out")
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True   # as the harness trains (bench/train.py): its algorithms and workspaces
    cfg = RunConfig(arch="ResNet18" if a.ann else "Spiking-ResNet18", backend="tfbench", dataset="CIFAR-10",
                    synthetic=True, T=a.T, batch_size=a.batch_size, precision=a.precision, device="cuda",
                    lean=a.lean, channels_last=a.channels_last)
    torch.manual_seed(0)
    model = models.build(cfg.arch, None if a.ann else (lambda: LIF(save="input")), lean=a.lean,
                         spike_input=dataset("CIFAR-10").spikes).to(dev)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = adam(model, cfg)
    spec = dataset("CIFAR-10")
    step = TrainingStep(model, opt, spec, cfg, torch.Generator(dev).manual_seed(0))
    x = torch.rand(a.batch_size, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (a.batch_size,), device=dev)
    for _ in range(3):
        step(x, y)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    torch.cuda.memory._record_memory_history(max_entries=200000, stacks="python")
    step(x, y)
    torch.cuda.synchronize()
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    peak_allocated = torch.cuda.max_memory_allocated()
    events = [e for trace in snap["device_traces"] for e in trace]
    live: dict[int, tuple[int, str]] = {}
    cur = best = 0   # bytes above `base`: a block from before the step that is freed in it counts negative
    best_live: dict[int, tuple[int, str]] = {}
    best_at = ""
    for e in events:
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], frame_of(e.get("frames", [])))
            cur += e["size"]
            if cur > best:
                best, best_live, best_at = cur, dict(live), frame_of(e.get("frames", []))
        elif e["action"] == "free_completed":
            size, _ = live.pop(e["addr"], (e["size"], ""))
            cur -= size
    groups = collections.Counter()
    for size, where in best_live.values():
        groups[where] += size
    title = (f"{cfg.arch} {'lean ' if a.lean else ''}{a.precision}{' channels-last' if a.channels_last else ''}"
             f", T={a.T}, batch {a.batch_size}")
    lines = [f"## {title}", "",
             f"- max_memory_allocated over the step: {peak_allocated / MiB:,.1f} MiB; before the step "
             f"(weights, Adam, batch, whatever outlives a step): {base / MiB:,.1f} MiB",
             f"- peak above that: {best / MiB:,.1f} MiB (what the step allocated, less what it freed of what was "
             f"there before), reached allocating at {best_at}", "",
             "| MiB live at the peak | allocated at |", "| ---: | --- |"]
    lines += [f"| {size / MiB:,.1f} | {where} |" for where, size in groups.most_common(25)]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
