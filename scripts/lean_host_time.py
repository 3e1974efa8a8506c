"""Where an eager training step's host time goes on a GPU: is the step host-bound, and on what.

    python scripts/lean_host_time.py --precision bf16 [--lean] [--ann] [--out FILE.md]

Spiking-ResNet18 (tfbench's LIF, or the ANN twin with --ann), CIFAR-10 shape, batch 100, T=32, Adam, as
``tfbench run`` trains it (bench.step.TrainingStep on a synthetic batch). After five warm-up steps:

- the step's time (CUDA events over 20 back-to-back steps, median) beside the host's time to issue one
  step from an idle queue (perf_counter around the call after a synchronisation; median of 20): when
  the two are close the step is host-bound;
- the host's time per step by operator (torch.profiler, CPU activity only, 5 steps), the top 25 by self
  time, and the same by the Python function of this repository that called them (cProfile, 5 steps).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from report_md import emit  # noqa: E402  (scripts/, the running script's folder)
from tfbench import models  # noqa: E402
from tfbench.bench.step import TrainingStep  # noqa: E402
from tfbench.data import get as dataset  # noqa: E402
from tfbench.ops.modules import LIF  # noqa: E402
from tfbench.results.schema import RunConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--lean", action="store_true")
    ap.add_argument("--ann", action="store_true")
    ap.add_argument("-T", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to try the script")
    ap.add_argument("--out")
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    cfg = RunConfig(arch="ResNet18" if a.ann else "Spiking-ResNet18", backend="tfbench", dataset="CIFAR-10",
                    synthetic=True, T=a.T, batch_size=a.batch_size, precision=a.precision, device=a.device,
                    lean=a.lean)
    torch.manual_seed(0)
    model = models.build(cfg.arch, None if a.ann else (lambda: LIF(save="input")), lean=a.lean,
                         spike_input=dataset("CIFAR-10").spikes).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = TrainingStep(model, opt, dataset("CIFAR-10"), cfg, torch.Generator(dev).manual_seed(0))
    x = torch.rand(a.batch_size, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (a.batch_size,), device=dev)
    for _ in range(5):
        step(x, y)
    sync()

    marks = []   # CUDA events on a GPU, else host clocks (after a wait for the step)

    def mark():
        if cuda:
            marks.append(torch.cuda.Event(enable_timing=True))
            marks[-1].record()
        else:
            marks.append(time.perf_counter())

    mark()
    for _ in range(20):
        step(x, y)
        mark()
    sync()
    device_ms = statistics.median((marks[i].elapsed_time(marks[i + 1]) if cuda else
                                   (marks[i + 1] - marks[i]) * 1e3) for i in range(20))
    issue = []
    for _ in range(20):
        sync()
        t0 = time.perf_counter()
        step(x, y)
        issue.append((time.perf_counter() - t0) * 1e3)
    sync()

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step(x, y)
        sync()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:25]

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(5):
        step(x, y)
    sync()
    pr.disable()
    buf = io.StringIO()
    stats = pstats.Stats(pr, stream=buf)
    stats.sort_stats("tottime").print_stats(30)

    title = f"{cfg.arch} {'lean ' if a.lean else ''}{a.precision} T={a.T} B={a.batch_size}"
    lines = [f"## {title}", "",
             f"- step (CUDA events, back to back, median of 20): {device_ms:.2f} ms",
             f"- host time to issue one step from an idle queue: median {statistics.median(issue):.2f} ms "
             f"(min {min(issue):.2f}, max {max(issue):.2f})", "",
             "| operator | calls/step | host self ms/step | host total ms/step |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {e.key} | {e.count / 5:.0f} | {e.self_cpu_time_total / 5e3:.3f} | {e.cpu_time_total / 5e3:.3f} |"
              for e in ops]
    lines += ["", "cProfile, 5 steps, by own time:", "", "```", buf.getvalue().strip()[:6000], "```"]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
