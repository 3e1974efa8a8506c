"""``tfbench profile``: where one training step's time goes (torch.profiler, per-category table)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..bench.profile import ACTIVE_STEPS, SETTLE_STEPS, as_table, profile_step
from ..bench.train import WARMUP_STEPS, RunConfig
from ..report import tables
from .common import (
    Arch,
    BackendName,
    ChannelsLastFlag,
    CompileFlag,
    CudaGraphsFlag,
    Dataset,
    Precision,
    StepMode,
    console,
    device_option,
    err_console,
    fail,
    guarded,
    pick_device,
)

STEPS = WARMUP_STEPS + SETTLE_STEPS + ACTIVE_STEPS


def profile(
    backend: Annotated[BackendName, typer.Option(case_sensitive=False, help="Neuron backend.")]
    = BackendName["tfbench"],
    arch: Annotated[Arch, typer.Option(case_sensitive=False, help="Network.")] = Arch["Spiking-ResNet18"],
    dataset: Annotated[Dataset, typer.Option(case_sensitive=False, help="Dataset shape (synthetic data).")]
    = Dataset["CIFAR-10"],
    device: Annotated[str | None, typer.Option(callback=device_option, show_default="the best device present",
                                               help="cpu, cuda or cuda:N.")] = None,
    time_steps: Annotated[int, typer.Option("-T", "--time-steps", help="Time steps (>= 1).")] = 4,
    batch_size: Annotated[int, typer.Option(help="Samples per step (>= 1).")] = 100,
    precision: Annotated[Precision, typer.Option(case_sensitive=False, help="fp32, or bf16/fp16 autocast.")]
    = Precision["fp32"],
    step_mode: Annotated[StepMode, typer.Option(case_sensitive=False, help="multi or single (see tfbench run).")]
    = StepMode["multi"],
    compile: CompileFlag = False,
    cuda_graphs: CudaGraphsFlag = False,
    channels_last: ChannelsLastFlag = False,
    out: Annotated[Path | None, typer.Option(help=(
        "Also write the tables to OUT/profile_<arch>_<backend>_T<T>_<precision>_<options>.md and .csv."))] = None,
) -> None:
    """Profile the steady training steps of one synthetic run: time per step by kernel category."""
    cfg = RunConfig(dataset=dataset.value, arch=arch.value, backend=backend.value, device=pick_device(device),
                    T=time_steps, batch_size=batch_size, epochs=1, max_steps=STEPS, precision=precision.value,
                    synthetic=True, step_mode=step_mode.value, compile=compile, cuda_graphs=cuda_graphs,
                    channels_last=channels_last)
    try:
        cfg = cfg.normalized()
    except ValueError as e:
        fail(str(e))
    err = err_console()
    err.print(f"tfbench profile: {cfg.arch} {cfg.backend} {cfg.dataset} (synthetic) on {cfg.device}, T={cfg.T}, "
              f"batch {cfg.batch_size}, {cfg.precision}, {cfg.options}: {STEPS} steps, the last {ACTIVE_STEPS} "
              "recorded", highlight=False, soft_wrap=True)
    p = guarded(lambda: profile_step(cfg))
    if p.status != "ok":
        fail(f"the run did not finish: {p.status}", 1)
    cats, top = as_table(p)
    title = f"{cfg.arch} {cfg.backend} T={cfg.T} B={cfg.batch_size} {cfg.precision} {cfg.options} on {cfg.device}"
    tables.render(cats, title=f"time per step: {title}", console=console())
    tables.render(top, title=f"top {'kernels' if p.device == 'cuda' else 'ops'}", console=console())
    if out is not None:
        stem = Path(out) / f"profile_{cfg.arch}_{cfg.backend}_T{cfg.T}_{cfg.precision}_{cfg.options}"
        paths = tables.write(cats, stem) + tables.write(top, stem.with_name(stem.name + "_top"))
        err.print("saved " + ", ".join(str(q) for q in paths), highlight=False, soft_wrap=True)
