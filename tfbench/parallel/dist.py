"""The process group: who this process is (rank, world, local rank), joining, leaving, small reductions.

A process is *distributed* when a launcher started it: ``torchrun`` (``python -m torch.distributed.run``)
sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous address in its environment, and
``tfbench run --nproc N`` starts N such processes through it. ``init`` joins the group: NCCL with each
rank on ``cuda:LOCAL_RANK`` when the run is on GPUs, gloo on the CPU.

When one rank fails, the others must stop rather than wait forever for a message that never comes:
``report_failure`` prints one line naming the rank and writes it where the launching process reads
it (``TFBENCH_FAILURE_DIR``), the rank then exits, and torchrun stops the others (single node). A
rank blocked on a peer on another node stops at the group's timeout (``TFBENCH_DIST_TIMEOUT_S``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

# Seconds a rank waits for a peer at a collective or a receive before giving up. Generous because
# the first training step compiles kernels (NVRTC, Triton) and may build the C++ autograd node
# (about a minute) while the other ranks already wait at their first exchange.
DEFAULT_TIMEOUT_S = 600.0
TIMEOUT_ENV = "TFBENCH_DIST_TIMEOUT_S"
# Where a failing rank writes ``rank<R>.json`` for the process that launched it (tfbench run --nproc).
FAILURE_DIR_ENV = "TFBENCH_FAILURE_DIR"
# Set to 1: a node's ranks share its GPUs (rank r on cuda:(LOCAL_RANK mod GPUs)) in a gloo group, their
# messages staged through host memory (temporal.Link): a pipeline run, and its memory per rank measured,
# on fewer GPUs than ranks. Its times are not a multi-GPU run's (the ranks take turns on a GPU, and every
# message crosses the host).
SHARE_GPUS_ENV = "TFBENCH_SHARE_GPUS"


def in_launcher() -> bool:
    """True in a process started by torchrun (or any launcher that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ


def rank() -> int:
    """This process's global rank: 0 outside a launcher."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes in the job: 1 outside a launcher."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's index on its node (its GPU): 0 outside a launcher."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_world_size() -> int:
    """Processes on this node."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def is_main() -> bool:
    """True on rank 0 (the one that writes results and prints tables)."""
    return rank() == 0


def timeout_s() -> float:
    """The group's timeout in seconds: ``TFBENCH_DIST_TIMEOUT_S`` or ``DEFAULT_TIMEOUT_S``."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be > 0, got {text!r}")
    return value


def shares_gpus() -> bool:
    """Whether this node's ranks share its GPUs (``TFBENCH_SHARE_GPUS=1``)."""
    return os.environ.get(SHARE_GPUS_ENV, "").strip() == "1"


def gpus_shared(device_type: str, ranks: int | None = None) -> bool:
    """Whether a ``device_type`` run of ``ranks`` processes on this node (default: the launcher's
    LOCAL_WORLD_SIZE) puts two on one GPU: ``TFBENCH_SHARE_GPUS=1`` and fewer GPUs than processes."""
    n = local_world_size() if ranks is None else ranks
    return device_type == "cuda" and shares_gpus() and n > torch.cuda.device_count()


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA runs (``gloo`` when the ranks share GPUs: NCCL takes one rank a GPU), ``gloo``
    for CPU runs."""
    if device_type == "cuda":
        return "gloo" if shares_gpus() else "nccl"
    if device_type == "cpu":
        return "gloo"
    raise ValueError(f"no process-group backend for device type {device_type!r}; choose from: cuda, cpu")


def init(device_type: str) -> torch.device:
    """Join the launcher's process group; returns this rank's device (``cuda:LOCAL_RANK``, or
    ``cuda:(LOCAL_RANK mod GPUs)`` when the ranks share GPUs, or ``cpu``).

    Raises ValueError (one line) when this node has fewer GPUs than processes (none, when sharing), or
    outside a launcher.
    """
    if not in_launcher():
        raise ValueError("not started by torchrun: WORLD_SIZE is not set (use tfbench run --nproc N, or torchrun)")
    if device_type == "cuda":
        count = torch.cuda.device_count()
        if shares_gpus() and count == 0:
            raise ValueError(f"{SHARE_GPUS_ENV}=1 shares this node's GPUs between its ranks, but it has none "
                             "(or --device cpu)")
        if local_rank() >= count and not shares_gpus():
            raise ValueError(f"{local_world_size()} processes on this node need {local_world_size()} GPUs, "
                             f"found {count}; choose --nproc <= {count} (or --device cpu, or "
                             f"{SHARE_GPUS_ENV}=1 to share them)")
        device = torch.device("cuda", local_rank() % count)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        backend = backend_for(device.type)
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()), **kwargs)
    return device


def shutdown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _reduce(values: list[float], op: dist.ReduceOp, device: torch.device | None = None) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()) or world_size() == 1:
        return values
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=op)
    return t.tolist()


def max_over_ranks(values: list[float]) -> list[float]:
    """Element-wise maximum of ``values`` over all ranks (the same list back on every rank)."""
    return _reduce(values, dist.ReduceOp.MAX)


def mean_over_ranks(values: list[float]) -> list[float]:
    """Element-wise mean of ``values`` over all ranks."""
    n = world_size()
    return [v / n for v in _reduce(values, dist.ReduceOp.SUM)]


def one_line(e: BaseException) -> str:
    """``Type: message`` on one line."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def report_failure(status: str) -> None:
    """Say that this rank failed (``status``: ``error: ...`` or ``oom``): one line on stderr, and a
    file ``rank<R>.json`` in ``TFBENCH_FAILURE_DIR`` when the launching process asked for one."""
    r, w = rank(), world_size()
    print(f"tfbench: rank {r} of {w} failed: {status}", file=sys.stderr, flush=True)
    folder = os.environ.get(FAILURE_DIR_ENV)
    if folder:
        path = Path(folder) / f"rank{r}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rank": r, "world_size": w, "status": status, "time": time.time()}))
        tmp.replace(path)


def read_failures(folder: Path | str) -> list[dict]:
    """The failures ranks wrote into ``folder``, the first to fail first (the others usually failed
    because of it: a peer that stopped answering)."""
    out = []
    for p in sorted(Path(folder).glob("rank*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda d: d.get("time", 0.0))


def fail_fast(status: str, code: int = 1) -> None:
    """Report this rank's failure and end the process now, without waiting for peers that may never
    answer (no group teardown): torchrun then stops the other ranks."""
    report_failure(status)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
