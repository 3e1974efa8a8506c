"""``tfbench profile``: where one training step's time goes (torch.profiler, per-category table)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..results.schema import PARALLEL_FIELDS, RunConfig
from .common import console, err_console, fail, guarded, output_folder
from .options import config_options

# What profile trains unless told otherwise: a short synthetic CIFAR-10-shaped run at T=4.
DEFAULTS = {"dataset": "CIFAR-10", "T": 4, "synthetic": True}
# What profile decides itself: one epoch of synthetic data, as many steps as it records.
FIXED = ("epochs", "max_steps", "synthetic", "lr", "seed", "data_root", "download", "split_by", "in_channels",
         *PARALLEL_FIELDS)


@config_options(grid=False, exclude=FIXED, defaults=DEFAULTS)
def profile(
    ctx: typer.Context,
    values: dict,
    out: Annotated[Path | None, typer.Option(help=(
        "Also write the tables to OUT/profile_<arch>_<backend>_T<T>_<precision>_<options>.md and .csv."))] = None,
) -> None:
    """Profile the steady training steps of one synthetic run: time per step by kernel category."""
    from ..bench.config import normalize
    from ..bench.profile import ACTIVE_STEPS, STEPS, as_table, profile_step
    from ..report import tables

    if out is not None:
        out = output_folder(out)
    try:
        cfg = normalize(RunConfig(**{**DEFAULTS, **values, "epochs": 1, "max_steps": STEPS}))
    except ValueError as e:
        fail(str(e))
    err = err_console()
    err.print(f"tfbench profile: {cfg.arch} {cfg.backend} {cfg.dataset} (synthetic) on {cfg.device}, T={cfg.T}, "
              f"batch {cfg.batch_size}, {cfg.precision}, {cfg.options}: {STEPS} steps after the warm-up, the "
              f"last {ACTIVE_STEPS} recorded", highlight=False, soft_wrap=True)
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
