"""Shared by the event-dataset tests: both datasets written as fetched, N-MNIST as extracted, the marker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .. import raw_event_files as raw

needs_spikingjelly = pytest.mark.skipif(importlib.util.find_spec("spikingjelly") is None,
                                        reason="SpikingJelly is not installed (pip install 'tfbench[peers]')")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> tuple[Path, dict[str, list[raw.Sample]]]:
    """Both datasets as fetched: archives under ``<root>/<name>/download/``."""
    root = tmp_path_factory.mktemp("data")
    return root, {"N-MNIST": raw.write_nmnist(root), "DvsGesture": raw.write_dvsgesture(root)}


@pytest.fixture
def nmnist_extracted(tmp_path) -> Path:
    """N-MNIST already extracted (``<root>/N-MNIST/extract/{Train,Test}/<digit>/*.bin``), no archives."""
    raw.write_nmnist(tmp_path, archives=False)
    return tmp_path
