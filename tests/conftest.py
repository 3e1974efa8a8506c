"""Shared test setup: the `cuda` marker skips without a GPU; CPU threads are capped for 2-core CI;
every test starts from generators seeded by its own name; hypothesis runs derandomized.

Seeding per test (not once per session) makes a test's draws independent of which tests ran
before it, so a failure reproduces when the test is run alone. Hypothesis' ``ci`` profile
derandomizes its search (the same examples on every run) and keeps no example database, so a
run cannot depend on what an earlier run found.
"""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(min(2, os.cpu_count() or 1))
# a peer environment (SpikingJelly 0.0.0.0.14) is installed by .ci/run, never by a test on first use
os.environ["TFBENCH_NO_AUTO_INSTALL"] = "1"

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile("ci")

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", "cuda"] if HAS_CUDA else ["cpu"]


@pytest.fixture(autouse=True)
def seeded(request):
    """torch (CPU and every GPU), numpy and random seeded from the test's node id."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    yield seed


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
