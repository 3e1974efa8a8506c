"""What the spawned ranks of tests/parallel run: gloo over a file store, results saved per rank.

Each worker joins a gloo group through a FileStore in a temporary folder (no ports to pick), runs
one case and saves what the test compares into ``<folder>/rank<R>.pt``; the test process computes
the single-process reference and compares.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from tfbench import models
from tfbench.ops.lif import PRESETS
from tfbench.parallel import data_parallel
from tfbench.parallel.runs import backward_runs, forward_runs
from tfbench.parallel.temporal import Link, PipelinedLIF, TemporalParallel, backward_segment, forward_segment

PARAMS = PRESETS["paper"]
ARCH = "Spiking-ResNet18"
# Shapes small enough for a 2-core CI machine, big enough that every layer of Spiking-ResNet18 has
# several neurons per BN channel and spikes in every layer (CIFAR-10's 32x32, batch 2).
H = W = 32
BATCH = 2
CLASSES = 10


def network_input(T: int, seed: int = 1, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Rate-coded-like spikes ``[T, B, 3, H, W]`` float64 and labels ``[B]``, the same in every process."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, batch, 3, H, W, generator=g) < 0.4).double()
    y = torch.randint(0, CLASSES, (batch,), generator=g)
    return x, y


def _join(folder: str, rank: int, world: int) -> None:
    torch.set_num_threads(1)    # the same CPU reduction order as the reference (one thread too)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)


def freeze(model: torch.nn.Module, prefixes: tuple[str, ...]) -> None:
    """No gradient for the parameters whose names start with one of ``prefixes``."""
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)


def temporal_network(rank: int, world: int, folder: str, T: int, chunks: int, micro_batches: int = 1,
                     batch: int = BATCH, lean: bool = False, frozen: tuple[str, ...] = ()) -> None:
    """Spiking-ResNet18 in the temporal pipeline: logits, loss, every layer's spikes (in call order:
    micro-batch by micro-batch, layer by layer; none when ``lean``: its fused nodes call no neuron module)
    and every gradient (none for the ``frozen`` parameters: ``freeze``)."""
    _join(folder, rank, world)
    link = Link.world(chunks, micro_batches)
    torch.manual_seed(0)
    model = models.build(ARCH, lambda: PipelinedLIF(PARAMS, link), num_classes=CLASSES, lean=lean,
                         spike_input=lean).double()
    freeze(model, frozen)
    spikes = []
    for m in model.modules():
        if isinstance(m, PipelinedLIF):
            m.register_forward_hook(lambda mod, inp, out: spikes.append(out.detach().clone()))
    net = TemporalParallel(model, link, micro_batches)
    x, y = network_input(T, batch=batch)
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    train_spikes = list(spikes)
    # after one step every rank holds the same parameters; evaluation averages the BN statistics
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p -= 0.01 * p.grad
    net.eval()
    with torch.no_grad():
        eval_logits = net(x)
    torch.save({"logits": logits.detach(), "loss": loss.detach(), "spikes": train_spikes, "grads": grads,
                "eval_logits": eval_logits, "params": {n: p.detach().clone() for n, p in model.named_parameters()},
                "buffers": {n: b.detach().clone() for n, b in model.named_buffers()}},
               Path(folder) / f"rank{rank}.pt")
    link.flush()
    dist.barrier()
    dist.destroy_process_group()


def temporal_layer(rank: int, world: int, folder: str, T: int, n: int, chunks: int) -> None:
    """One LIF layer, chunk-major ``[C, T/k, n/C]`` input, forward and backward through the pipeline."""
    _join(folder, rank, world)
    link = Link.world(chunks)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, n, generator=g, dtype=torch.float64) * 0.5 + 0.3
    gs = torch.randn(T, n, generator=g, dtype=torch.float64)
    steps = T // world
    seg = slice(rank * steps, (rank + 1) * steps)
    per = n // chunks
    xs = list(x[seg].reshape(steps, chunks, per).permute(1, 0, 2).contiguous().unbind(0))
    gss = list(gs[seg].reshape(steps, chunks, per).permute(1, 0, 2).contiguous().unbind(0))
    s, h = forward_segment(xs, PARAMS, link, 0)
    gx = backward_segment(gss, h, PARAMS, link, 0)
    link.flush()
    torch.save({"s": torch.cat(s, 1), "gx": torch.cat(gx, 1)}, Path(folder) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def micro_batched_against_whole(rank: int, world: int, folder: str, T: int, micro_batches: int,
                                batch: int) -> None:
    """Spiking-ResNet18 (fp32) in the temporal pipeline with BatchNorm on its running statistics (eval),
    one step on the whole batch and one in ``micro_batches`` micro-batches: losses and gradients."""
    _join(folder, rank, world)
    link = Link.world(1, micro_batches)
    torch.manual_seed(0)
    model = models.build(ARCH, lambda: PipelinedLIF(PARAMS, link), num_classes=CLASSES)
    spiked = []
    for m in model.modules():
        if isinstance(m, PipelinedLIF):
            m.register_forward_hook(lambda mod, inp, out: spiked.append(float(out.detach().sum())))
    net = TemporalParallel(model, link, micro_batches)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()        # per-sample maths: a micro-batch's BN then normalises as the whole batch's
    x, y = network_input(T, batch=batch)
    x = x.float()
    out = {}
    for name, m in (("whole", 1), ("micro", micro_batches)):
        net.micro_batches = m
        model.zero_grad(set_to_none=True)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        out[name] = {"loss": loss.detach(), "logits": logits.detach(),
                     "grads": {n: p.grad.clone() for n, p in model.named_parameters()}}
    out["spiked"] = spiked
    torch.save(out, Path(folder) / f"rank{rank}.pt")
    link.flush()
    dist.barrier()
    dist.destroy_process_group()


# the independent runs' inputs: the same in every process and in the test
RUN_NEURONS = 48


def runs_input(T: int, runs: int, seed: int = 5) -> dict[str, torch.Tensor]:
    """Per run: input ``x`` [R, T, n], initial membrane ``v0`` [R, n], dL/ds ``gs`` and dL/dv_T ``gv`` (fp32)."""
    g = torch.Generator().manual_seed(seed + runs)
    n = RUN_NEURONS
    return {"x": torch.randn(runs, T, n, generator=g) * 0.5 + 0.3, "v0": torch.rand(runs, n, generator=g) * 0.3,
            "gs": torch.randn(runs, T, n, generator=g), "gv": torch.randn(runs, n, generator=g)}


def pipelined_runs(rank: int, world: int, folder: str, T: int, cases: tuple[int, ...]) -> None:
    """For each R in ``cases``: R independent runs of one layer pipelined through the ranks (runs.py),
    each from its own initial membrane, with dL/dv_T given on the last rank: this rank's segment of
    every run's spikes and dL/dx, the final membranes (last rank) and dL/dv0 (first rank)."""
    _join(folder, rank, world)
    out = {}
    steps = T // world
    seg = slice(rank * steps, (rank + 1) * steps)
    for runs in cases:
        link = Link(ranks=list(range(world)), rank=rank, micro_batches=runs)
        d = runs_input(T, runs)
        fwd = forward_runs(runs, lambda r: d["x"][r, seg].contiguous(), PARAMS, link, v0_of=lambda r: d["v0"][r],
                           final=True)
        bwd = backward_runs(runs, lambda r: d["gs"][r, seg].contiguous(), lambda r: fwd[r][1], PARAMS, link,
                            gv_last_of=lambda r: d["gv"][r], initial_grad=True)
        link.flush()
        out[runs] = {"s": [f[0] for f in fwd], "v_T": [f[2] for f in fwd], "gx": [b[0] for b in bwd],
                     "gv0": [b[1] for b in bwd]}
    torch.save(out, Path(folder) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def data_parallel_network(rank: int, world: int, folder: str, T: int, batch: int) -> None:
    """Spiking-ResNet18 (tfbench neuron) under DDP, each rank on its rows of one global batch."""
    _join(folder, rank, world)
    from tfbench.backends import get

    torch.manual_seed(0)
    model = models.build(ARCH, lambda: get("tfbench").layer(PARAMS), num_classes=CLASSES).double()
    ddp = data_parallel.wrap(model, torch.device("cpu"))
    x, y = network_input(T, batch=batch * world)
    rows = slice(rank * batch, (rank + 1) * batch)
    loss = F.cross_entropy(ddp(x[:, rows]), y[rows])
    loss.backward()
    torch.save({"grads": {n: p.grad.clone() for n, p in model.named_parameters()}, "loss": loss.detach()},
               Path(folder) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def _entry(rank: int, fn, world: int, folder: str, args: tuple) -> None:
    fn(rank, world, folder, *args)


def spawn(fn, world: int, folder: str, *args, timeout_s: float = 300.0) -> list[dict]:
    """Run ``fn(rank, world, folder, *args)`` in ``world`` fresh processes; their saved results by rank.

    Fails (instead of hanging) when the ranks have not finished within ``timeout_s``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ctx = mp.start_processes(_entry, args=(fn, world, folder, args), nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"{fn.__name__} on {world} ranks did not finish in {timeout_s:.0f} s")
    return [torch.load(Path(folder) / f"rank{r}.pt") for r in range(world)]
