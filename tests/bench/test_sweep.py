"""A sweep over T: a cell that runs out of memory is recorded as ``oom``, lets go of everything it
held, and the sweep goes on to the next cell (the memory-vs-T sweep, configs/memory_vs_t.toml)."""

from __future__ import annotations

import weakref
from pathlib import Path

import pytest
import torch

from tfbench.bench import step as step_module
from tfbench.bench import train as train_module
from tfbench.bench.sweep import run_sweep
from tfbench.results.schema import RunConfig
from tfbench.results.store import Store

from ..conftest import DEVICES

TINY = dict(dataset="MNIST", synthetic=True, batch_size=2, epochs=1, max_steps=1, backend="torch")
TOO_LONG = 3        # the T at which the fake device runs out of memory
HELD_BYTES = 1 << 28   # what the failing step holds when it runs out (256 MiB: plain to see in the allocator)


@pytest.mark.parametrize("device", DEVICES)
def test_an_oom_lets_go_of_its_memory_and_the_sweep_goes_on(device: str, tmp_path: Path, monkeypatch) -> None:
    held: list[weakref.ref] = []   # what the failing step had alive when the allocator gave up
    real_step = step_module.TrainingStep.__call__

    def step(self, x, y):
        if self.cfg.T == TOO_LONG:
            activations = torch.empty(HELD_BYTES, dtype=torch.uint8, device=device)   # alive at the failure
            held.extend(weakref.ref(o) for o in (activations, self.model, self.optimizer))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return real_step(self, x, y)

    alive_at_start: list[list[bool]] = []   # at the start of each cell: is any of the failed cell's still alive?
    allocated_at_start: list[int] = []      # the device's allocated bytes then (0 on the CPU)
    real_train = train_module.train

    def train(cfg, *args, **kwargs):
        alive_at_start.append([ref() is not None for ref in held])
        allocated_at_start.append(torch.cuda.memory_allocated(device) if device == "cuda" else 0)
        return real_train(cfg, *args, **kwargs)

    monkeypatch.setattr(step_module.TrainingStep, "__call__", step)
    monkeypatch.setattr(train_module, "train", train)
    store = Store(tmp_path)
    configs = [RunConfig(T=T, device=device, **TINY) for T in (2, TOO_LONG, 4)]
    records = run_sweep(configs, store)
    assert [r.status for r in records] == ["ok", "oom", "ok"]
    assert len(held) == 3 and alive_at_start == [[], [], [False, False, False]]
    assert allocated_at_start[2] < allocated_at_start[1] + HELD_BYTES // 4   # the failed cell's memory is free
    oom = records[1]
    assert oom.step_ms is None and oom.peak_mem_bytes is None and oom.train_time_s == []
    assert [(d["T"], d["status"]) for d in store.runs.records()] == [(2, "ok"), (TOO_LONG, "oom"), (4, "ok")]
    # oom is final: a re-run skips it (and the ok cells) rather than running out of memory again
    skipped = []
    run_sweep(configs, store, on_skip=skipped.append)
    assert [r.T for r in skipped] == [2, TOO_LONG, 4] and len(alive_at_start) == 3
