"""The LIF-layer benchmark's floor is per backend: the bytes its op must move, over copy bandwidth."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tfbench.backends import get
from tfbench.bench import layer
from tfbench.ops.lif import PRESETS
from tfbench.report import plots, tables
from tfbench.results import environment
from tfbench.results import store as store_module


@pytest.mark.parametrize("precision, direction, expected", [
    ("fp32", "both", 24), ("bf16", "both", 12), ("fp16", "forward", 6), ("fp32", "backward", 12),
])
def test_default_rule_is_lif_spec(precision, direction, expected):
    assert layer.bytes_per_element(precision, direction, 16) == expected
    assert layer.bytes_per_element(precision, direction, 16, "tfbench") == expected
    assert layer.bytes_per_element(precision, direction, 16, "torch") == expected
    assert layer.bytes_per_element(precision, direction, 16, "no-such-backend") == expected


@pytest.mark.parametrize("precision, steps, expected", [
    ("fp32", 16, 20.5), ("fp32", 64, 20 + 8 * 7 / 64), ("fp32", 8, 20.0), ("fp32", 4, 20.0),
    ("bf16", 16, 10.5), ("fp16", 64, 10 + 8 * 7 / 64),
])
def test_recompute_backend_has_its_own_byte_count(precision, steps, expected):
    assert get("tfbench-recompute").bytes_per_element is not None
    assert layer.bytes_per_element(precision, "both", steps, "tfbench-recompute") == pytest.approx(expected)


def test_run_cell_records_the_backends_floor():
    """Same cell, two backends: each record's floor is its own bytes over the same bandwidth."""
    p = PRESETS["paper"]
    env = environment.capture(torch.device("cpu")).as_dict()
    bandwidth = 1e9  # bytes/s: the floor is then bytes * T * N / 1e6 ms
    records = {b: layer.run_cell(b, "fp32", 16, 512, "both", "eager", torch.device("cpu"), p, bandwidth, env,
                                 warmup=1, repeats=2)
               for b in ("tfbench", "tfbench-recompute")}
    for b, r in records.items():
        assert r.status == "ok" and r.checked, (b, r.status)
    assert records["tfbench"].bytes_per_element == 24
    assert records["tfbench-recompute"].bytes_per_element == pytest.approx(20.5)
    assert records["tfbench"].floor_ms == pytest.approx(24 * 16 * 512 / 1e6)
    assert records["tfbench-recompute"].floor_ms == pytest.approx(20.5 * 16 * 512 / 1e6)


def test_report_shows_each_backends_floor(tmp_path: Path):
    """The layer table carries bytes per element beside the floor; the plot draws the lower floor too."""
    p = PRESETS["paper"]
    records = layer.run_layer_sweep(["tfbench", "tfbench-recompute"], [4, 16], [256], ["fp32"], ["both"], "cpu",
                                    ["eager"], p, store_path=tmp_path / "layer.jsonl", warmup=1, repeats=2)
    assert all(r.status == "ok" for r in records)
    df = store_module.load(tmp_path / "layer.jsonl")
    table = tables.layer_table(df).set_index(["backend", "T"])
    assert table.loc[("tfbench", 16), "bytes_per_element"] == 24
    assert table.loc[("tfbench-recompute", 16), "bytes_per_element"] == pytest.approx(20.5)
    assert table.loc[("tfbench-recompute", 4), "bytes_per_element"] == pytest.approx(20.0)
    # no bandwidth is measured on the CPU: give the records one so that the plot has floors to draw
    df["floor_ms"] = df["bytes_per_element"] * df["T"] * df["N"] / 1e6
    made = plots.layer_time_vs_T(df, tmp_path / "figs")
    assert {p.suffix for p in made} == {".png", ".svg"}
    svg = next(p for p in made if p.suffix == ".svg").read_text()
    assert "tfbench-recompute floor" in svg and "memory floor" in svg
    text = tables.to_markdown(tables.layer_table(df))
    assert "B/elem" in text and "20.5" in text


def test_plif_cells_are_checked_and_floored_like_lif():
    """A PLIF layer (``--neuron PLIF``) goes through the same cell: checked first, the same byte count."""
    from tfbench.ops.neurons import PLIF_PRESETS

    p = PLIF_PRESETS["paper"]
    env = environment.capture(torch.device("cpu")).as_dict()
    for backend in ("tfbench", "tfbench-recompute", "torch", "spikingjelly", "snntorch", "norse"):
        r = layer.run_cell(backend, "fp32", 16, 512, "both", "eager", torch.device("cpu"), p, 1e9, env,
                           warmup=1, repeats=2)
        if backend == "norse":
            assert r.status.startswith("n/a") and "learnable" in r.status
            continue
        if get(backend).unavailable("cpu"):
            continue
        assert r.status == "ok" and r.checked, (backend, r.status)
        assert "PLIFParams" in r.neuron
        assert r.bytes_per_element == (24 if backend != "tfbench-recompute" else pytest.approx(20.5))
