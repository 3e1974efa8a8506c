"""``tfbench layer``: the CLI hands the grid to bench.layer.run_layer_sweep and shows what the store holds."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pandas as pd

from tfbench.bench.config import NEURONS
from tfbench.results import store as store_module
from tfbench.results.schema import LayerRecord

from .conftest import assert_one_line_error


def test_layer_sweep_arguments_and_table(cli, tmp_path: Path, monkeypatch) -> None:
    calls = []

    def fake_sweep(backends, Ts, Ns, precisions, directions, device, modes, params, store_path, force, progress):
        calls.append(dict(backends=backends, Ts=Ts, Ns=Ns, precisions=precisions, directions=directions,
                          device=device, modes=modes, params=params, store_path=store_path, force=force))
        records = []
        for b in backends:
            for T in Ts:
                rec = LayerRecord(backend=b, precision=precisions[0], T=T, N=Ns[0], direction=directions[0],
                                  mode=modes[0], device=device, neuron=repr(params), status="ok", checked=True,
                                  median_ms=float(T) * (2 if b == "torch" else 1), floor_ms=0.5)
                store_module.append(store_path, rec.as_dict())
                progress(rec)
                records.append(rec)
        return records

    monkeypatch.setitem(sys.modules, "tfbench.bench.layer", types.SimpleNamespace(run_layer_sweep=fake_sweep))
    result = cli("layer", "--backends", "tfbench,TORCH", "-T", "8,16", "-N", "1_000", "--precision", "bf16",
                 "--direction", "forward", "--device", "cpu", "--neuron", "if", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    call = calls[0]
    assert call["backends"] == ["tfbench", "torch"] and call["Ts"] == [8, 16] and call["Ns"] == [1000]
    assert call["precisions"] == ["bf16"] and call["directions"] == ["forward"] and call["modes"] == ["eager"]
    assert call["device"] == "cpu" and call["params"] == NEURONS["IF"] and call["force"] is False
    assert call["store_path"] == tmp_path / "layer.jsonl"
    assert "[1/4] tfbench bf16 T=8 N=1000 forward eager: ok" in result.output
    table = pd.read_csv(tmp_path / "layer.csv")
    assert table.set_index(["backend", "T"]).loc[("tfbench", 16), "speedup"] == 2.0    # over torch
    assert (tmp_path / "layer.md").exists()


def test_layer_sweep_for_real_on_the_cpu(cli, tmp_path: Path) -> None:
    """The lead's run_layer_sweep through the CLI, tiny: records land in OUT/layer.jsonl; a re-run skips."""
    args = ("layer", "--backends", "tfbench,torch", "-T", "2,4", "-N", "256", "--device", "cpu", "--out", tmp_path)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    df = store_module.load(tmp_path / "layer.jsonl")
    assert len(df) == 4 and set(df["status"]) == {"ok"}
    again = cli(*args)
    assert again.exit_code == 0
    assert len(store_module.JsonlStore(tmp_path / "layer.jsonl").records(history=True)) == 4
    assert len(pd.read_csv(tmp_path / "layer.csv")) == 4


def test_bad_input_is_one_line(cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("layer", "--backends", "nest", "--out", tmp_path), "unknown backend 'nest'",
                          "tfbench", codes=(2,))
    assert_one_line_error(cli("layer", "--direction", "sideways", "--out", tmp_path), "unknown direction 'sideways'",
                          "forward, backward, both", codes=(2,))
    assert_one_line_error(cli("layer", "-N", "-5", "--out", tmp_path), "N must be >= 1", codes=(2,))
    assert_one_line_error(cli("layer", "--mode", "lazy", "--out", tmp_path), "unknown mode 'lazy'", "eager, graph",
                          codes=(2,))
    run_cfg = tmp_path / "runs.toml"
    run_cfg.write_text('kind = "run"\n')
    assert_one_line_error(cli("layer", "--config", run_cfg), "is a 'run' sweep", "tfbench compare --config",
                          codes=(2,))
