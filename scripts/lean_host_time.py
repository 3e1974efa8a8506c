"""Where an eager training step's host time goes on a GPU: is the step host-bound, and on what.

    python scripts/lean_host_time.py --precision bf16 [--lean] [--ann] [--out FILE.md]
        [--adam foreach] [--chunk-elements N] [--split-bytes N] [--no-profile] [--trace FILE.json.gz]

Spiking-ResNet18 (tfbench's LIF, or the ANN twin with --ann), CIFAR-10 shape, batch 100, T=32, the
harness's Adam (``bench.step.adam``; ``--adam foreach``: PyTorch's default implementation instead), as
``tfbench run`` trains it (bench.step.TrainingStep on a synthetic batch). ``--chunk-elements`` and
``--split-bytes`` set the lean nodes' ``CONV_CHUNK_ELEMENTS`` and ``SPLIT_BACKWARD_BYTES``
(tfbench/ops/norm.py) for an A/B of their host time against their memory. After five warm-up steps:

- the step's time (CUDA events over 20 back-to-back steps, median) and the peak memory allocated in
  those steps (cuDNN's benchmark on, as the harness has it: its algorithms, its workspaces), beside the
  host's time to issue one step from an idle queue (perf_counter around the call after a
  synchronisation; median of 20), split into its phases (zero_grad and the encoding, forward, loss and
  backward, Adam, what follows Adam: perf_counter at the model's and the optimizer's hooks): when the
  step's time and the host's are close the step is host-bound;
- the wall-clock time of those 20 steps over 20 (one synchronisation, at the end), and the synchronising
  CUDA calls one step makes (``torch.cuda.set_sync_debug_mode``: a step that waits for the GPU cannot run
  ahead of it, and an eager step is then host time plus GPU time wherever the host is the slower);
- with --trace, a Chrome trace (torch.profiler, CPU and CUDA activity, 3 steps) for the GPU's idle gaps;
- unless --no-profile, the host's time per step by operator (torch.profiler, CPU activity only, 5 steps),
  the top 25 by self time, and by Python function (cProfile, 5 steps).
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
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from report_md import emit  # noqa: E402  (scripts/, the running script's folder)
from tfbench import models  # noqa: E402
from tfbench.bench.step import TrainingStep, adam  # noqa: E402
from tfbench.data import get as dataset  # noqa: E402
from tfbench.ops import norm  # noqa: E402
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
    ap.add_argument("--adam", default="harness", choices=["harness", "foreach"])
    ap.add_argument("--chunk-elements", type=int, default=norm.CONV_CHUNK_ELEMENTS)
    ap.add_argument("--split-bytes", type=int, default=norm.SPLIT_BACKWARD_BYTES)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--trace", help="write a Chrome trace of 3 steps here (.json or .json.gz)")
    ap.add_argument("--out")
    a = ap.parse_args()
    norm.CONV_CHUNK_ELEMENTS, norm.SPLIT_BACKWARD_BYTES = a.chunk_elements, a.split_bytes
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = True   # as the harness trains (bench/train.py): its algorithms and workspaces
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
    opt = adam(model, cfg) if a.adam == "harness" else torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)
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

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    mark()
    wall0 = time.perf_counter()
    for _ in range(20):
        step(x, y)
        mark()
    sync()
    wall_ms = (time.perf_counter() - wall0) * 1e3 / 20
    device_ms = statistics.median((marks[i].elapsed_time(marks[i + 1]) if cuda else
                                   (marks[i + 1] - marks[i]) * 1e3) for i in range(20))
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else float("nan")

    # the phases of one step on the host: perf_counter at the model's and the optimizer's hooks
    clock: list[float] = []
    hooks = [model.register_forward_pre_hook(lambda *_: clock.append(time.perf_counter())),
             model.register_forward_hook(lambda *_: clock.append(time.perf_counter())),
             opt.register_step_pre_hook(lambda *_: clock.append(time.perf_counter())),
             opt.register_step_post_hook(lambda *_: clock.append(time.perf_counter()))]
    phases = []
    for _ in range(20):
        sync()
        clock.clear()
        t0 = time.perf_counter()
        step(x, y)
        t1 = time.perf_counter()
        at = [t0, *clock, t1]   # start, forward's start and end, Adam's start and end, end
        phases.append([(at[i + 1] - at[i]) * 1e3 for i in range(5)] + [(t1 - t0) * 1e3])
    sync()
    for h in hooks:
        h.remove()
    med = [statistics.median(p[i] for p in phases) for i in range(6)]
    issue = [p[5] for p in phases]

    syncs: list[str] = []   # the synchronising calls of one step, where in Python they were made
    if cuda:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                step(x, y)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        sync()
        syncs = [f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0]}" for w in caught
                 if not str(w.message).startswith("Synchronization debug mode is a prototype")]

    title = f"{cfg.arch} {'lean ' if a.lean else ''}{a.precision} T={a.T} B={a.batch_size}"
    lines = [f"## {title}", "",
             f"- Adam: {'PyTorch default (foreach)' if a.adam == 'foreach' else 'the harness (fused on a GPU)'}; "
             f"lean nodes: CONV_CHUNK_ELEMENTS {a.chunk_elements}, SPLIT_BACKWARD_BYTES {a.split_bytes}",
             f"- step (CUDA events, back to back, median of 20): {device_ms:.2f} ms; peak allocated in those steps "
             f"{peak:.1f} MiB; wall clock of those steps {wall_ms:.2f} ms a step",
             f"- synchronising CUDA calls in one step: {len(syncs)}" + "".join(f"\n  - {w}" for w in syncs),
             f"- host time to issue one step from an idle queue: median {statistics.median(issue):.2f} ms "
             f"(min {min(issue):.2f}, max {max(issue):.2f}); medians by phase: zero_grad + encoding {med[0]:.2f}, "
             f"forward {med[1]:.2f}, loss + backward {med[2]:.2f}, Adam {med[3]:.2f}, after Adam {med[4]:.2f} ms", ""]
    if a.trace:
        acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
        with torch.profiler.profile(activities=acts) as prof:
            for _ in range(3):
                step(x, y)
            sync()
        prof.export_chrome_trace(a.trace)
        lines.append(f"- trace of 3 steps: {a.trace}")
    if not a.no_profile:
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
        lines += ["| operator | calls/step | host self ms/step | host total ms/step |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {e.key} | {e.count / 5:.0f} | {e.self_cpu_time_total / 5e3:.3f} | "
                  f"{e.cpu_time_total / 5e3:.3f} |" for e in ops]
        lines += ["", "cProfile, 5 steps, by own time:", "", "```", buf.getvalue().strip()[:6000], "```"]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
