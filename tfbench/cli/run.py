"""``tfbench run``: train one network with one backend and record it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..bench.progress import RichReporter
from ..bench.train import RunConfig, check_data, train
from ..data import POOL_BATCHES
from ..report import tables
from ..results.store import Store, load
from . import distributed
from .common import (
    Arch,
    BackendName,
    ChannelsLastFlag,
    CompileFlag,
    CudaGraphsFlag,
    Dataset,
    InChannels,
    Neuron,
    Precision,
    SplitBy,
    StepMode,
    console,
    device_option,
    err_console,
    explicit,
    fail,
    guarded,
    pick_device,
)

# `tfbench run` with no options at all: a synthetic MNIST job that finishes in about a minute on a
# 2-core CPU (Spiking-ResNet18 at T=4, batch 16 takes about 0.5 s a step there): the README's first command.
QUICK = {"synthetic": True, "T": 4, "batch_size": 16, "epochs": 2, "max_steps": 15}
# options that say where, not what: they keep the quick demo
NOT_WORKLOAD = {"device", "out", "parallel", "nproc", "chunks"}

HELP = (
    "Train a spiking network with one neuron backend and append the result to OUT/runs.jsonl.\n\n"
    "The defaults follow the paper: Spiking-ResNet18, T=32, batch 100, 5 epochs, Adam lr 1e-3, the paper's LIF "
    "neuron (tau 1.25, threshold 0.3, hard reset to 0, sigmoid surrogate alpha 4).\n\n"
    f"With no options at all it runs a quick demo instead: synthetic MNIST, T={QUICK['T']}, batch "
    f"{QUICK['batch_size']}, {QUICK['epochs']} epochs of {QUICK['max_steps']} steps, on the best device present "
    "(about a minute on a 2-core CPU). Any option other than --device and --out gives the paper's defaults for "
    "the options not given."
)


def run(
    ctx: typer.Context,
    dataset: Annotated[Dataset, typer.Option(case_sensitive=False, help="Dataset to train on.")] = Dataset["MNIST"],
    arch: Annotated[Arch, typer.Option(case_sensitive=False, help=(
        "Network: Spiking-ResNet18/34/50 (torchvision layout, the neuron from --backend), or ResNet18/34/50, "
        "the same network with ReLU at batch T*B (the ANN floor)."))] = Arch["Spiking-ResNet18"],
    neuron: Annotated[Neuron, typer.Option(case_sensitive=False, help=(
        "LIF: the paper's preset (tau 1.25, no input decay, threshold 0.3, hard reset to 0, sigmoid alpha 4); "
        "IF: no leak (threshold 1, hard reset to 0)."))] = Neuron["LIF"],
    backend: Annotated[BackendName, typer.Option(case_sensitive=False, help=(
        "Neuron implementation in every spiking layer: tfbench (fused op), torch (plain loop over T), "
        "spikingjelly / spikingjelly-torch (SpikingJelly 2.0 LIFNode, its fused kernel / its torch path), "
        "snntorch (Leaky stepped over T), norse (LIFBoxCell stepped over T)."))] = BackendName["tfbench"],
    device: Annotated[str | None, typer.Option(callback=device_option, show_default="the best device present",
                                               help="cpu, cuda or cuda:N.")] = None,
    time_steps: Annotated[int, typer.Option("-T", "--time-steps", help="Time steps per sample (>= 1).")] = 32,
    batch_size: Annotated[int, typer.Option(help="Samples per training step (1 to the training set's size).")] = 100,
    epochs: Annotated[int, typer.Option(help="Passes over the training set (>= 1; the test set after each).")] = 5,
    max_steps: Annotated[int | None, typer.Option(show_default="the whole split", help=(
        "Cap on training steps per epoch (>= 1); also caps the test batches."))] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, the shuffling, the encoding and "
                                           "the synthetic data.")] = 0,
    precision: Annotated[Precision, typer.Option(case_sensitive=False, help=(
        "fp32, or bf16/fp16 autocast (fp16 with a gradient scaler)."))] = Precision["fp32"],
    step_mode: Annotated[StepMode, typer.Option(case_sensitive=False, help=(
        "multi: each neuron runs all T steps at once (convs on \\[T*B, ...]); single: the whole network "
        "stepped one time step at a time, as snnTorch and Norse tutorials train."))] = StepMode["multi"],
    split_by: Annotated[SplitBy | None, typer.Option(case_sensitive=False, show_default="number", help=(
        "N-MNIST and DvsGesture only: how SpikingJelly cuts each sample's events into T frames: number (equal "
        "event counts, the paper's) or time (equal durations). Each (T, split-by) has its own frame cache, "
        "DATA_ROOT/<dataset>/frames_number_<T>_split_by_<split-by>, made on first use and reused after."))] = None,
    in_channels: Annotated[InChannels | None, typer.Option(show_default="3", help=(
        "N-MNIST and DvsGesture only: 3 feeds the 2 polarity channels plus a zero third channel to the "
        "3-channel stem (as the paper); 2 builds a 2-channel stem. MNIST and CIFAR-10 always use 3."))] = None,
    data_root: Annotated[Path, typer.Option(help=(
        "Root folder of the datasets: torchvision's layout for DATA_ROOT/MNIST/raw and "
        "DATA_ROOT/cifar-10-batches-py; DATA_ROOT/N-MNIST/download/{Train,Test}.zip and "
        "DATA_ROOT/DvsGesture/download/DvsGesture.tar.gz, which you fetch yourself (their licences forbid "
        "automatic download)."))] = Path("data"),
    download: Annotated[bool, typer.Option("--download", help=(
        "Fetch MNIST or CIFAR-10 into --data-root if missing."))] = False,
    synthetic: Annotated[bool, typer.Option("--synthetic", help=(
        "Random data of the dataset's real shapes and class count (no files). MNIST and CIFAR-10: made on "
        f"--device batch by batch. N-MNIST and DvsGesture: a fixed pool of at most {POOL_BATCHES} batches per "
        "split, made once on --device before training starts and cycled through every epoch (synthetic event frames take "
        "about 25 ms a DvsGesture sample on a CPU core: too slow to make per step). Step times never include "
        "making, loading or copying a batch."))] = False,
    compile: CompileFlag = False,
    cuda_graphs: CudaGraphsFlag = False,
    channels_last: ChannelsLastFlag = False,
    parallel: Annotated[distributed.ParallelMode, typer.Option(case_sensitive=False, help=(
        "Spread the run over processes (GPUs): data (DistributedDataParallel, --batch-size per process, the "
        "global batch --batch-size x processes) or temporal (T split into one contiguous segment per process, "
        "membranes passed between them; tfbench backend, T divisible by the processes). BatchNorm uses each "
        "process's own statistics."))] = distributed.ParallelMode["none"],
    nproc: Annotated[int | None, typer.Option(min=1, show_default="1", help=(
        "Processes to start on this node through torchrun (one GPU each with --device cuda). Ignored when "
        "already started by torchrun (multi-node: torchrun --nnodes ... -m tfbench run --parallel ...)."))] = None,
    chunks: Annotated[int, typer.Option(min=1, help=(
        "--parallel temporal: neuron chunks per layer; a process starts a chunk as soon as the previous one "
        "has sent its membrane (costs a copy of each layer's input and spikes when > 1)."))] = 1,
    out: Annotated[Path, typer.Option(help="Results folder: the record is appended to OUT/runs.jsonl.")]
    = Path("results"),
) -> None:
    quick = not (explicit(ctx) - NOT_WORKLOAD)
    cfg = RunConfig(dataset=dataset.value, arch=arch.value, backend=backend.value, neuron=neuron.value,
                    device=pick_device(device), T=time_steps, batch_size=batch_size, epochs=epochs,
                    max_steps=max_steps, lr=lr, seed=seed, precision=precision.value, synthetic=synthetic,
                    step_mode=step_mode.value, data_root=str(data_root), download=download,
                    split_by=split_by.value if split_by is not None else None,
                    in_channels=int(in_channels.value) if in_channels is not None else None,
                    compile=compile, cuda_graphs=cuda_graphs, channels_last=channels_last,
                    parallel=parallel.value, world_size=distributed.world_for(parallel.value, nproc), chunks=chunks)
    if quick:
        cfg = dataclasses.replace(cfg, **QUICK)
    try:
        cfg = cfg.normalized()
    except ValueError as e:
        fail(str(e))
    guarded(lambda: check_data(cfg))
    if distributed.wants_processes(cfg.parallel, nproc):
        distributed.run_parallel(cfg, nproc, out, quick)
        return
    err = err_console()
    steps = f"{cfg.max_steps} steps" if cfg.max_steps else "full"
    frames = f", frames split by {cfg.split_by}, {cfg.in_channels} input channels" if cfg.split_by else ""
    err.print(f"tfbench run: {cfg.arch}, {cfg.backend}, {cfg.dataset}{' (synthetic)' if cfg.synthetic else ''} on "
              f"{cfg.device}, T={cfg.T}, batch {cfg.batch_size}, {cfg.epochs} epochs ({steps}), {cfg.precision}"
              f"{frames}{'' if cfg.options == 'eager' else ', ' + cfg.options}"
              + (" [quick demo: no workload option given; any gives the paper's defaults]" if quick else ""),
              highlight=False, soft_wrap=True)
    rec = guarded(lambda: train(cfg, RichReporter(err)))
    store = Store(out)
    store.append(rec)
    df = load(store.runs.path, kind="run")
    table = tables.run_table(df[df["key"] == rec.key])
    tables.render(table, title="tfbench run", console=console())
    err.print(f"recorded in {store.runs.path}", highlight=False, soft_wrap=True)
    if rec.status != "ok":
        raise typer.Exit(1)
