"""The paper's Table 1 beside measured runs: seconds per epoch from the median step, speed-ups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tfbench.report.paper import load_paper, paper_vs_measured, to_markdown
from tfbench.results.schema import RunRecord
from tfbench.results.store import Store, load

ROOT = Path(__file__).resolve().parents[2]


def test_the_papers_numbers_are_read_as_published() -> None:
    paper = load_paper(ROOT / "results" / "paper" / "table1_a100.toml")
    s = paper["seconds"]
    assert s[("Spiking-ResNet18", "spikingjelly014", "CIFAR-10")] == 71.17
    assert s[("Spiking-ResNet50", "temporal-fusion", "DvsGesture")] == 38.64
    assert ("Spiking-ResNet50", "spikingjelly014", "MNIST") not in s      # the paper has no such row
    assert len(s) == 3 * 4 + 2 * 4


def test_measured_epochs_are_steps_times_the_median_step(tmp_path: Path) -> None:
    base = RunRecord(dataset="CIFAR-10", arch="Spiking-ResNet18", T=32, batch_size=100, device="cuda:0",
                     device_name="NVIDIA H200", status="ok")
    store = Store(tmp_path)
    for backend, ms in (("spikingjelly014", 36.0), ("spikingjelly014-torch", 240.0), ("tfbench", 18.0)):
        store.append(dataclasses.replace(base, backend=backend, step_ms=ms))
    paper = load_paper(ROOT / "results" / "paper" / "table1_a100.toml")
    table = paper_vs_measured(load(tmp_path, kind="run"), paper).set_index(["arch", "dataset"])
    row = table.loc[("Spiking-ResNet18", "CIFAR-10")]
    assert row["here tfbench"] == pytest.approx(0.018 * 500)               # 50,000 / 100 steps
    assert row["tfbench speed-up over SJ-CuPy"] == pytest.approx(2.0)
    assert row["tfbench speed-up over SJ-PyTorch"] == pytest.approx(240 / 18)
    assert row["paper TF speed-up over SJ-CuPy"] == pytest.approx(71.17 / 68.11)
    assert pd_isna(table.loc[("Spiking-ResNet18", "MNIST"), "here tfbench"])   # not measured: an empty cell
    md = to_markdown(table.reset_index(), paper)
    assert "| Spiking-ResNet18 | CIFAR-10 | 160.6 | 71.2 | 68.1 | 1.04x | 2.36x | 120.0 | 18.0 | 9.0 |  | 2.00x" in md


def pd_isna(v) -> bool:
    import pandas as pd

    return v is None or pd.isna(v)
