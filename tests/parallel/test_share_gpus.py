"""TFBENCH_SHARE_GPUS=1: a node's ranks share its GPUs over gloo (their messages through the host); without
it a GPU run needs a GPU a rank, and the refusal names the switch."""

from __future__ import annotations

import pytest
import torch

from tfbench.cli.common import UserError
from tfbench.cli.distributed import check_gpus
from tfbench.parallel import dist as tdist
from tfbench.parallel.strategy import _combine


@pytest.mark.parametrize("value, backend", [(None, "nccl"), ("1", "gloo"), ("0", "nccl")])
def test_the_backend_of_a_gpu_run(monkeypatch, value, backend):
    if value is None:
        monkeypatch.delenv(tdist.SHARE_GPUS_ENV, raising=False)
    else:
        monkeypatch.setenv(tdist.SHARE_GPUS_ENV, value)
    assert tdist.backend_for("cuda") == backend
    assert tdist.backend_for("cpu") == "gloo"


def test_more_ranks_than_gpus_are_refused_unless_shared(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv(tdist.SHARE_GPUS_ENV, raising=False)
    with pytest.raises(UserError) as e:
        check_gpus("cuda", 2)
    assert str(e.value) == ("--nproc 2 needs 2 GPUs on this node, found 1; choose --nproc <= 1 "
                            "(or --device cpu, or TFBENCH_SHARE_GPUS=1 to share them)")
    monkeypatch.setenv(tdist.SHARE_GPUS_ENV, "1")
    check_gpus("cuda", 2)        # two ranks on the one GPU
    check_gpus("cpu", 4)         # (a CPU run has no GPUs to count)


def test_sharing_needs_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv(tdist.SHARE_GPUS_ENV, "1")
    with pytest.raises(UserError, match="TFBENCH_SHARE_GPUS=1 shares this node's GPUs between the 2 processes, "
                                        "but it has none"):
        check_gpus("cuda", 2)


@pytest.mark.parametrize("shared", [False, True])
def test_ranks_sharing_a_gpu_record_no_energy(monkeypatch, shared):
    """Ranks on one GPU read the same energy counter: their sum would be no GPU's energy (outside a process
    group the reductions are the values themselves)."""
    if shared:
        monkeypatch.setenv(tdist.SHARE_GPUS_ENV, "1")
    else:
        monkeypatch.delenv(tdist.SHARE_GPUS_ENV, raising=False)
    result = {"train_time_s": [2.0], "test_time_s": [1.0], "setup_time_s": 3.0, "train_energy_j": [50.0],
              "energy_per_step_j": 5.0, "avg_power_w": 300.0, "train_loss": [1.5], "test_accuracy": [0.5],
              "step_ms": 10.0, "step_p10_ms": 9.0, "step_p90_ms": 11.0, "peak_mem_bytes": 1 << 20}
    out = _combine(result, 100)
    if shared:
        assert out["train_energy_j"] == [] and out["energy_per_step_j"] is None and out["avg_power_w"] is None
    else:
        assert out["train_energy_j"] == [50.0] and out["energy_per_step_j"] == 5.0 and out["avg_power_w"] == 300.0
    assert out["peak_mem_bytes"] == 1 << 20 and out["step_ms"] == 10.0
