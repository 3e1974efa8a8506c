"""How a training run is spread over processes: what ``bench/train.py`` asks of ``--parallel``.

``for_run(mode, world_size, chunks, micro_batches)`` gives a :class:`Strategy` that the training loop
consults at five points: can this backend run (``unavailable``), the neuron in each spiking layer
(``neuron``), the batch size of the data source and each rank's share of it (``source_batch_size``,
``shard``), the model as trained (``wrap``), and the record's measurements combined over the ranks
(``combine``).
``none`` changes nothing; ``data`` and ``temporal`` run in a process group started by torchrun.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..results.schema import option
from . import data_parallel, dist
from .temporal import Link, PipelinedLIF, TemporalParallel

MODES = tuple(option("parallel").choices)   # none, data, temporal (declared in the run schema)
TEMPORAL_BACKEND = "tfbench"   # the one backend whose op takes v0 and returns v_T


class Strategy:
    """No parallelism: one process trains on whole batches."""

    mode = "none"

    def __init__(self, world_size: int = 1):
        self.world_size = world_size

    def unavailable(self, arch, backend: str, step_mode: str) -> str | None:
        """Why this strategy cannot train ``arch`` (a ``models.Arch``) with ``backend`` (None: it can)."""
        return None

    def neuron(self, make: Callable[[], nn.Module] | None, params):
        """The factory of every spiking layer's neuron."""
        return make

    def source_batch_size(self, batch_size: int) -> int:
        """The batch size the data source must yield for a per-process ``batch_size``."""
        return batch_size

    def shard(self, batches):
        """This rank's share of the source's batches."""
        return batches

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model as trained."""
        return model

    def global_batch(self, batch_size: int) -> int:
        """Samples one training step consumes over all ranks."""
        return batch_size

    def combine(self, result: dict, batch_size: int) -> dict:
        """The record's measurements over all ranks (every rank gets the same dict back)."""
        return result


class DataParallel(Strategy):
    """DistributedDataParallel: each rank trains on its rows of every global batch (data_parallel.py)."""

    mode = "data"

    def source_batch_size(self, batch_size: int) -> int:
        return batch_size * self.world_size

    def shard(self, batches):
        return data_parallel.ShardedBatches(batches, dist.rank(), self.world_size)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        return data_parallel.wrap(model, device)

    def global_batch(self, batch_size: int) -> int:
        return batch_size * self.world_size

    def combine(self, result: dict, batch_size: int) -> dict:
        return _combine(result, self.global_batch(batch_size))


class TemporalPipeline(Strategy):
    """The temporal pipeline (temporal.py): T split over the ranks, membranes passed at the boundaries."""

    mode = "temporal"

    def __init__(self, world_size: int = 1, chunks: int = 1, micro_batches: int = 1):
        super().__init__(world_size)
        self.chunks = chunks
        self.micro_batches = micro_batches
        self.link: Link | None = None

    def unavailable(self, arch, backend: str, step_mode: str) -> str | None:
        if not arch.spiking:
            return "the temporal pipeline passes spiking layers' membranes between ranks; an ANN has none " \
                   "(use --parallel data)"
        if arch.builder is not None:
            return (f"the temporal pipeline puts its own neuron (which passes the membrane between ranks) in "
                    f"tfbench's Spiking-ResNets; {arch.name} is built with its library's neurons (use --parallel "
                    f"data)")
        if backend != TEMPORAL_BACKEND:
            return (f"the temporal pipeline needs the membrane at segment boundaries (v0/v_T), which {backend} "
                    f"does not expose (use --backend {TEMPORAL_BACKEND}, or --parallel data)")
        if step_mode != "multi":
            return "the temporal pipeline runs each layer over its whole segment at once (--step-mode multi)"
        return None

    def neuron(self, make, params):
        if self.link is None:
            self.link = Link.world(self.chunks, self.micro_batches)
        link = self.link

        def pipelined() -> nn.Module:
            return PipelinedLIF(params, link)

        return pipelined

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if self.link is None:
            raise RuntimeError("the model must be built with this strategy's neuron() before wrap()")
        return TemporalParallel(model, self.link, self.micro_batches)

    def combine(self, result: dict, batch_size: int) -> dict:
        return _combine(result, batch_size)


def for_run(mode: str, world_size: int = 1, chunks: int = 1, micro_batches: int = 1) -> Strategy:
    """The strategy ``mode`` (none, data, temporal); ValueError naming the choices, or when a parallel
    mode runs outside a process group of ``world_size`` ranks."""
    if mode not in MODES:
        raise ValueError(f"unknown parallel mode {mode!r}; choose from: {', '.join(MODES)}")
    if mode == "none":
        if world_size != 1:
            raise ValueError(f"--parallel none runs one process, got world size {world_size}; "
                             "choose --parallel data or temporal")
        return Strategy()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        raise ValueError(f"--parallel {mode} runs in processes started by torchrun (tfbench run --nproc N "
                         "starts them)")
    if tdist.get_world_size() != world_size:
        raise ValueError(f"the run is configured for {world_size} processes but the group has "
                         f"{tdist.get_world_size()}")
    return DataParallel(world_size) if mode == "data" else TemporalPipeline(world_size, chunks, micro_batches)


def _combine(result: dict, global_batch: int) -> dict:
    """Times: the slowest rank's; peak memory: the largest rank's (per GPU); energy: the ranks' sum
    (each rank its own GPU; none when they share GPUs); losses and accuracies: the mean over ranks
    (identical on every rank for the temporal pipeline)."""
    out = dict(result)
    for name in ("train_time_s", "test_time_s"):
        out[name] = dist.max_over_ranks(list(result[name]))
    out["setup_time_s"] = dist.max_over_ranks([float(result["setup_time_s"])])[0]
    world = dist.world_size()
    if dist.gpus_shared("cuda"):   # ranks on one GPU read the same energy counter: their sum is no GPU's energy
        out.update(train_energy_j=[], energy_per_step_j=None, avg_power_w=None)
    else:
        if result["train_energy_j"]:
            out["train_energy_j"] = [world * v for v in dist.mean_over_ranks(list(result["train_energy_j"]))]
        for name in ("energy_per_step_j", "avg_power_w"):
            if result.get(name) is not None:
                out[name] = world * dist.mean_over_ranks([float(result[name])])[0]
    for name in ("train_loss", "test_accuracy"):
        out[name] = dist.mean_over_ranks(list(result[name]))
    timed = ("step_ms", "step_p10_ms", "step_p90_ms")
    values = [result.get(n) for n in timed]
    if all(v is not None for v in values):
        out.update(zip(timed, dist.max_over_ranks([float(v) for v in values])))
    peak = result.get("peak_mem_bytes")
    if peak is not None:
        out["peak_mem_bytes"] = int(dist.max_over_ranks([float(peak)])[0])
    step = out.get("step_ms")
    out["samples_per_s"] = global_batch / (step * 1e-3) if step else None
    return out


def check_config(mode: str, world_size: int, chunks: int, *, T: int, batch_size: int, train_size: int | None,
                 dataset: str, compile: bool = False, cuda_graphs: bool = False, micro_batches: int = 1) -> str:
    """The canonical ``mode`` after checking a run's parallel options; ValueError naming the bad value."""
    canonical = next((m for m in MODES if m == str(mode).strip().lower()), None)
    if canonical is None:
        raise ValueError(f"unknown parallel mode {mode!r}; choose from: {', '.join(MODES)}")
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    if chunks != 1 and canonical != "temporal":
        raise ValueError(f"chunks {chunks} applies only to --parallel temporal; --parallel {canonical} has "
                         "no neuron chunks")
    if micro_batches < 1:
        raise ValueError(f"micro-batches must be >= 1, got {micro_batches}")
    if micro_batches != 1 and canonical != "temporal":
        raise ValueError(f"micro-batches {micro_batches} applies only to --parallel temporal; --parallel "
                         f"{canonical} passes no membranes between processes to pipeline")
    if micro_batches > batch_size:
        raise ValueError(f"micro-batches {micro_batches} is more than the batch of {batch_size} samples; "
                         f"choose 1..{batch_size}")
    if canonical == "none":
        if world_size != 1:
            raise ValueError(f"{world_size} processes need --parallel data or temporal (got --parallel none)")
        return canonical
    if cuda_graphs:
        raise ValueError(f"cuda-graphs is not available with --parallel {canonical}: a captured step cannot "
                         "hold the exchanges between processes; drop one of the two")
    if compile and canonical == "temporal":
        raise ValueError("compile is not available with --parallel temporal: the membrane exchange between "
                         "processes is not traceable; drop --compile")
    if canonical == "temporal":
        from .temporal import segment

        segment(T, 0, world_size)   # ValueError naming T and the process count
    if canonical == "data" and train_size and batch_size * world_size > train_size:
        raise ValueError(f"batch size {batch_size} per process x {world_size} processes is larger than the "
                         f"{dataset} training set ({train_size} samples); choose --batch-size <= "
                         f"{train_size // world_size}")
    return canonical


def unavailable(mode: str, arch, backend: str, step_mode: str) -> str | None:
    """Why ``mode`` cannot train with ``backend`` (None: it can), without a process group."""
    if mode == "temporal":
        return TemporalPipeline().unavailable(arch, backend, step_mode)
    return None
