"""The lean step's CUDA-graph time and peak against the norm op's ``epilogue_bytes`` (kernels/tfbench_ops.cpp):
up to that many bytes of z a layer without a residual keeps gy and writes dL/dz in an elementwise pass;
above it a second pass recomputes the membrane. One process, the same model and batch for every setting.

    python scripts/lean_epilogue_ab.py --precision fp32 [--bytes 0,16,64,1024] [--out FILE.md]

Spiking-ResNet18 lean (tfbench's LIF), CIFAR-10 shape, batch 100, T=32, Adam, as ``tfbench run --cuda-graphs
--lean`` trains it (bench.step.TrainingStep in a bench.step.GraphedStep). Each setting's graph is captured
(and its peak read over two eager steps) first; then the graphs are timed in turns, ``--rounds`` rounds of 20
replays each (CUDA events), so that a drift of the GPU's clock falls on all of them alike. ``--bytes`` in MiB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from report_md import emit  # noqa: E402  (scripts/, the running script's folder)
from tfbench import models  # noqa: E402
from tfbench.bench.step import GraphedStep, TrainingStep  # noqa: E402
from tfbench.bench.timing import time_fn  # noqa: E402
from tfbench.data import get as dataset  # noqa: E402
from tfbench.ops import library  # noqa: E402
from tfbench.ops.modules import LIF  # noqa: E402
from tfbench.results.schema import RunConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--bytes", default="0,16,64,1024", help="epilogue_bytes settings, MiB, comma-separated")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()
    dev = torch.device("cuda")
    spec = dataset("CIFAR-10")
    cfg = RunConfig(arch="Spiking-ResNet18", backend="tfbench", dataset="CIFAR-10", synthetic=True, T=32,
                    batch_size=100, precision=a.precision, device="cuda", lean=True, cuda_graphs=True)
    x = torch.rand(100, 3, 32, 32, device=dev, generator=torch.Generator(dev).manual_seed(1))
    y = torch.randint(0, 10, (100,), device=dev, generator=torch.Generator(dev).manual_seed(2))
    default = library.set_option("epilogue_bytes", -1)
    graphs, peaks = {}, {}
    for mib in [int(v) for v in a.bytes.split(",")]:
        library.set_option("epilogue_bytes", mib << 20)   # read by the op at each call: fixed in the capture
        torch.manual_seed(0)
        model = models.build(cfg.arch, lambda: LIF(save="input"), lean=True, spike_input=spec.spikes).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
        gen = torch.Generator(dev).manual_seed(0)
        graphed = GraphedStep(TrainingStep(model, opt, spec, cfg, gen), dev, gen)
        graphed.load(x, y)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for _ in range(GraphedStep.EAGER_CALLS):
            graphed()
        torch.cuda.synchronize()
        peaks[mib] = (torch.cuda.max_memory_allocated() - base) / 2**20
        graphed()   # the capture
        graphs[mib] = graphed
    library.set_option("epilogue_bytes", default)
    times: dict[int, list[float]] = {mib: [] for mib in graphs}
    for _ in range(a.rounds):
        for mib, graphed in graphs.items():
            times[mib].append(time_fn(graphed, dev, warmup=3, repeats=20).median_ms)
    name = torch.cuda.get_device_name(dev)
    lines = [f"## Lean Spiking-ResNet18 {a.precision}, T=32, batch 100, CUDA graphs, on {name}", "",
             f"epilogue_bytes default: {default >> 20} MiB. Step: the median of {a.rounds} rounds' medians of 20 "
             "replays (range of the rounds); peak: the eager steps' allocation above what was there before.", "",
             "| epilogue_bytes (MiB) | step ms | rounds' range | peak above the start, MiB |",
             "| ---: | ---: | --- | ---: |"]
    for mib, ts in times.items():
        lines.append(f"| {mib} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} | {peaks[mib]:,.0f} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
