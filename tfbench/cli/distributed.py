"""``--parallel`` / ``--nproc`` for the commands: launch the ranks, or be one.

Outside a launcher, ``--nproc N`` re-runs this very command line in N processes through torchrun
(tfbench/parallel/launch.py) and waits: rank 0 prints and records the result. When a rank fails, the
others are stopped, this process records the first failure (``error: ...`` or ``oom``) in the store
and ends with one line naming the rank. Inside a launcher (torchrun set ``WORLD_SIZE``, e.g. a
multi-node ``torchrun ... -m tfbench run --parallel temporal``) the command joins the group instead;
``--nproc`` is then ignored (torchrun's own options say how many processes there are).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import typer

from ..bench.progress import RichReporter, SilentReporter
from ..bench.records import finished, pending_record
from ..bench.train import train
from ..parallel import dist as tdist
from ..parallel import launch
from ..parallel import strategy as pstrategy
from ..results.schema import RunConfig, na
from ..results.store import Store
from .common import RAW_ARGS, err_console, fail, guarded, workload

RANK_MODULE = "tfbench.cli.rank_entry"   # what every launched rank runs


def wants_processes(parallel: str, nproc: int | None) -> bool:
    """Whether the command runs as (or launches) a process group."""
    return parallel != "none" or (nproc is not None and nproc != 1) or tdist.in_launcher()


def check_gpus(device_type: str, nproc: int) -> None:
    """One-line error when a GPU run asks for more processes than this node has GPUs (any GPU at all,
    when the ranks share them: ``TFBENCH_SHARE_GPUS=1``)."""
    if device_type != "cuda":
        return
    count = torch.cuda.device_count()
    if tdist.shares_gpus():
        if count == 0:
            fail(f"{tdist.SHARE_GPUS_ENV}=1 shares this node's GPUs between the {nproc} processes, but it has "
                 "none (or --device cpu)")
    elif count < nproc:
        fail(f"--nproc {nproc} needs {nproc} GPUs on this node, found {count}; choose --nproc <= {count} "
             f"(or --device cpu, or {tdist.SHARE_GPUS_ENV}=1 to share them)")


def launch_ranks(nproc: int, on_failure: Callable[[dict], None] | None = None) -> None:
    """Run this command line in ``nproc`` ranks and wait; ends the command with the ranks' outcome."""
    result = launch.torchrun(list(RAW_ARGS), nproc, module=RANK_MODULE)
    if result.returncode == 0:
        raise typer.Exit(0)
    if result.failures:
        first = result.failures[0]
        if on_failure is not None:
            on_failure(first)
        fail(f"rank {first['rank']} of {first['world_size']} failed: {first['status']}", 1)
    fail(f"the {nproc} processes ended with exit code {result.returncode} (their output is above)", 1)


def shares(device: str, world: int) -> bool:
    """Whether a run on ``device`` of ``world`` processes puts two on one GPU of this node (TFBENCH_SHARE_GPUS=1):
    the record's ``shared_gpus``."""
    local = tdist.local_world_size() if tdist.in_launcher() else world
    return world > 1 and tdist.gpus_shared(torch.device(device).type, local)


def world_for(parallel: str, nproc: int | None) -> int:
    """The number of processes a run configures: the launcher's WORLD_SIZE inside one, else --nproc."""
    if tdist.in_launcher():
        return tdist.world_size()
    return 1 if nproc is None else nproc


def header(cfg: RunConfig, world: int, quick: bool) -> str:
    chunks = f", {cfg.chunks} neuron chunks" if cfg.chunks > 1 else ""
    chunks += f", {cfg.micro_batches} micro-batches" if cfg.micro_batches > 1 else ""
    return (f"tfbench run: {cfg.arch}, {cfg.backend}, {cfg.dataset}{' (synthetic)' if cfg.synthetic else ''}, "
            f"--parallel {cfg.parallel} over {world} processes ({torch.device(cfg.device).type}){chunks}, "
            f"{workload(cfg, per_process=True)}"
            + (" [quick demo: no workload option given; any gives the paper's defaults]" if quick else ""))


def run_parallel(cfg: RunConfig, nproc: int | None, out: Path, quick: bool = False) -> None:
    """``tfbench run`` with ``--parallel`` data/temporal (or under torchrun): launch or join, train, record."""
    err = err_console()
    store = Store(out)
    if not tdist.in_launcher():
        n = 1 if nproc is None else nproc
        if cfg.parallel == "none":
            fail(f"--nproc {n} needs --parallel data or temporal; choose one of: "
                 f"{', '.join(m for m in pstrategy.MODES if m != 'none')}")
        check_gpus(torch.device(cfg.device).type, n)
        from .. import backends, models

        arch = models.get(cfg.arch)
        reason = pstrategy.unavailable(cfg.parallel, arch, cfg.backend, cfg.step_mode)
        if reason is None and arch.spiking:
            reason = backends.get(cfg.backend).unavailable(cfg.device)
        if reason is not None:
            rec = finished(pending_record(cfg), status=na(reason))
            store.append(rec)
            _show(rec, store)
            raise typer.Exit(1)

        def record_failure(failure: dict) -> None:
            status = failure["status"]
            store.append(finished(pending_record(cfg), status=status))
            err.print(f"recorded in {store.runs.path}", highlight=False, soft_wrap=True)

        err.print(header(cfg, n, quick), highlight=False, soft_wrap=True)
        launch_ranks(n, record_failure)
        return

    # a rank
    world = tdist.world_size()
    try:
        device = tdist.init(torch.device(cfg.device).type)
    except ValueError as e:
        fail(str(e), 1)
    cfg = dataclasses.replace(cfg, device=str(device), world_size=world)
    main = tdist.is_main()
    if main and world > 1 and launch.LAUNCHED_ENV not in os.environ:
        err.print(header(cfg, world, quick), highlight=False, soft_wrap=True)   # plain torchrun: no parent said it
    reporter = RichReporter(err) if main else SilentReporter()
    rec = guarded(lambda: train(cfg, reporter))
    failed = rec.status == "oom" or rec.status.startswith("error")
    if failed and world > 1:
        if main and tdist.FAILURE_DIR_ENV not in os.environ:
            store.append(rec)       # plain torchrun: nobody else will record it
        tdist.fail_fast(rec.status)
    if main:
        store.append(rec)
        _show(rec, store)
    tdist.shutdown()
    if rec.status != "ok":
        raise typer.Exit(1)


def _show(rec, store: Store) -> None:
    from ..report import tables
    from ..results.store import load
    from .common import console

    df = load(store.runs.path, kind="run")
    tables.render(tables.run_table(df[df["key"] == rec.key]), title="tfbench run", console=console())
    err_console().print(f"recorded in {store.runs.path}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
