from __future__ import annotations

import pytest

from tfbench.ops.lif import alloc


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Every output of the op starts as NaN: an element the kernel never writes fails the test."""
    monkeypatch.setattr(alloc, "POISON", True)
