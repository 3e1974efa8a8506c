from __future__ import annotations

import pytest

from tfbench.ops import library


@pytest.fixture(autouse=True)
def poison_outputs():
    """Every output of the op starts as NaN (in the path users get: the C++ op, ``tfbench::_set``):
    an element the kernel never writes fails the test."""
    before = library.set_option("poison", 1)
    yield
    library.set_option("poison", before)
