"""The environment beside every record: the device's memory (where out-of-memory starts) on a GPU."""

from __future__ import annotations

import pytest
import torch

from tfbench.results import environment

from ..conftest import DEVICES


@pytest.mark.parametrize("device", DEVICES)
def test_the_device_memory_is_recorded_on_a_gpu(device: str) -> None:
    env = environment.capture(device).as_dict()
    if device == "cpu":
        assert env["device_memory_bytes"] is None
    else:
        assert env["device_memory_bytes"] == torch.cuda.get_device_properties(0).total_memory > 0
