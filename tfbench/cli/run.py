"""``tfbench run``: train one network with one backend and record it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..results.schema import PARALLEL_FIELDS, RunConfig
from .common import console, err_console, fail, guarded, output_folder, workload
from .options import config_options

# `tfbench run` with no options at all: the README's first command. Spiking-ResNet18 learns the built-in
# Glyphs digits (tfbench/data/glyphs.py: no files) to 93-96 % test accuracy in about 50 s on a 2-core CPU
# (2 epochs of 90 steps; 75 left one seed at 83 %; tests/data/test_glyphs.py holds it to >= 80 %).
QUICK = {"dataset": "Glyphs", "synthetic": False, "T": 4, "batch_size": 32, "epochs": 2, "max_steps": 90}
# options that say where or how, not what: they keep the quick demo
NOT_WORKLOAD = {"device", *PARALLEL_FIELDS}

HELP = (
    "Train a spiking network with one neuron backend and append the result to OUT/runs.jsonl.\n\n"
    "The defaults follow the paper: Spiking-ResNet18, T=32, batch 100, 5 epochs, Adam lr 1e-3, the paper's LIF "
    "neuron (tau 1.25, threshold 0.3, hard reset to 0, sigmoid surrogate alpha 4).\n\n"
    f"With no options at all it runs a quick demo instead: Spiking-ResNet18 learns the built-in Glyphs digits "
    f"({', '.join(f'{k}={v}' for k, v in QUICK.items() if k != 'dataset')}; about a minute on a 2-core CPU), on "
    "the best device present. Any option other than --device and --out gives the paper's defaults for the "
    "options not given."
)


@config_options(grid=False)
def run(
    ctx: typer.Context,
    values: dict,
    nproc: Annotated[int | None, typer.Option(min=1, show_default="1", help=(
        "Processes to start on this node through torchrun (one GPU each with --device cuda). Ignored when "
        "already started by torchrun (multi-node: torchrun --nnodes ... -m tfbench run --parallel ...)."))] = None,
    out: Annotated[Path, typer.Option(help="Results folder: the record is appended to OUT/runs.jsonl.")]
    = Path("results"),
) -> None:
    from ..bench.config import normalize
    from ..bench.train import check_data
    from . import distributed

    quick = not (set(values) - NOT_WORKLOAD)
    out = output_folder(out)
    world = distributed.world_for(values.get("parallel", "none"), nproc)
    cfg = RunConfig(**{**(QUICK if quick else {}), **values, "world_size": world})
    cfg = dataclasses.replace(cfg, shared_gpus=distributed.shares(cfg.device, world))
    try:
        cfg = normalize(cfg)
    except ValueError as e:
        fail(str(e))
    guarded(lambda: check_data(cfg))
    if distributed.wants_processes(cfg.parallel, nproc):
        distributed.run_parallel(cfg, nproc, out, quick)
        return
    err = err_console()
    err.print(header(cfg) + (" [quick demo: no workload option given; any gives the paper's defaults]"
                             if quick else ""), highlight=False, soft_wrap=True)
    if quick:
        from .. import data

        err.print(f"{cfg.dataset}: {data.get(cfg.dataset).description}", highlight=False, soft_wrap=True)
    rec = record_one(cfg, out)
    if rec.status != "ok":
        raise typer.Exit(1)


def header(cfg: RunConfig) -> str:
    """The run's one-line description, printed before it starts."""
    frames = f", frames split by {cfg.split_by}, {cfg.in_channels} input channels" if cfg.split_by else ""
    return (f"tfbench run: {cfg.arch}, {cfg.backend}, {cfg.dataset}{' (synthetic)' if cfg.synthetic else ''} on "
            f"{cfg.device}, {workload(cfg)}{frames}")


def record_one(cfg: RunConfig, out: Path):
    """Train ``cfg``, append its record to OUT/runs.jsonl and print it; Ctrl-C keeps a finished record."""
    from ..bench.progress import RichReporter
    from ..bench.train import Interrupted, train
    from ..report import tables
    from ..results.store import Store, load

    store = Store(out)
    err = err_console()
    try:
        rec = guarded(lambda: train(cfg, RichReporter(err)))
    except Interrupted as e:
        if e.record is None:
            raise KeyboardInterrupt(f"{e.title} stopped before its last epoch ended; nothing recorded") from None
        store.append(e.record)
        raise KeyboardInterrupt(f"{e.title}: every epoch had run; recorded in {store.runs.path}") from None
    store.append(rec)
    df = load(store.runs.path, kind="run")
    table = tables.run_table(df[df["key"] == rec.key])
    tables.render(table, title="tfbench run", console=console())
    err.print(f"recorded in {store.runs.path}", highlight=False, soft_wrap=True)
    return rec
