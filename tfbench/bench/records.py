"""The record a run produces: its pending form (before it runs, for resume), and the environment beside it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from ..results import environment
from ..results.schema import RunConfig, RunRecord
from .config import neuron_params, neuron_text, normalize

_ENV_CACHE: dict[str, environment.Environment] = {}


def capture_env(device) -> environment.Environment:
    """``environment.capture(device)``, once per device per process."""
    key = str(device)
    if key not in _ENV_CACHE:
        _ENV_CACHE[key] = environment.capture(device)
    return _ENV_CACHE[key]


def pending_record(cfg: RunConfig) -> RunRecord:
    """The record ``cfg`` will produce, before it runs (status 'pending'): its ``key`` decides resume."""
    cfg = normalize(cfg)
    env = capture_env(cfg.device)
    values = {name: getattr(cfg, name) for name in (f.name for f in dataclasses.fields(RunConfig))}
    return RunRecord(**values, neuron_params=neuron_text(neuron_params(cfg)), device_name=env.device,
                     env=env.as_dict())


def finished(rec: RunRecord, **fields) -> RunRecord:
    """``rec`` with its outcome and a timestamp."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return dataclasses.replace(rec, timestamp=stamp, **fields)


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and its message with the whitespace folded."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def is_oom(e: BaseException) -> bool:
    import torch

    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and ("out of memory" in str(e).lower()
                                            or "can't allocate memory" in str(e).lower())
