"""``tfbench plot``: figures from a store; one-line errors when there is nothing to draw."""

from __future__ import annotations

from pathlib import Path

from tests.report.test_memory_vs_T import record, records, store_of
from tests.report.test_report import store  # noqa: F401  (the fixture: a small store)

from .conftest import assert_one_line_error


def test_plot_writes_figures(cli, store: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "figs"
    result = cli("plot", "--results", store, "--out", out, "--baseline", "torch")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["layer_time_vs_T.png", "layer_time_vs_T.svg",
                                                     "memory_vs_T.png", "memory_vs_T.svg",   # runs at T=4 and 32
                                                     "speedup.png", "speedup.svg"]


def test_plot_draws_memory_against_T(cli, tmp_path: Path) -> None:
    """A memory-vs-T sweep's records (ok, oom, n/a, error; tfbench with and without lean) in a results folder."""
    folder = store_of(tmp_path, records())
    result = cli("plot", "--results", folder, "--out", tmp_path / "figs", "--baseline", "spikingjelly")
    assert result.exit_code == 0, result.output
    assert {"memory_vs_T.png", "memory_vs_T.svg", "speedup.png"} <= {p.name for p in (tmp_path / "figs").iterdir()}
    assert "memory_vs_T.png" in result.output and "skipped: no (arch" not in result.output


def test_plot_skips_memory_where_nothing_has_a_peak_or_one_T(cli, tmp_path: Path) -> None:
    cpu = [record(b, T, None, device_memory=None) for b in ("tfbench", "spikingjelly") for T in (4, 8)]
    result = cli("plot", "--results", store_of(tmp_path / "cpu", cpu), "--out", tmp_path / "cpu-figs",
                 "--baseline", "spikingjelly")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "cpu-figs").iterdir()) == ["speedup.png", "speedup.svg"]
    assert "skipped: no (arch, dataset, batch size) group has training runs with a peak memory at more than one T " \
           "(peak memory is measured on CUDA devices only)" in " ".join(result.output.split())
    one_t = [record(b, 32, 1.0) for b in ("tfbench", "spikingjelly")]
    result = cli("plot", "--results", store_of(tmp_path / "one", one_t), "--out", tmp_path / "one-figs",
                 "--baseline", "spikingjelly")
    assert result.exit_code == 0, result.output
    assert "peak memory" not in result.output      # one T: no memory figure is asked for, so none is missing
    assert "memory_vs_T.png" not in {p.name for p in (tmp_path / "one-figs").iterdir()}


def test_plot_errors(cli, store: Path, tmp_path: Path) -> None:  # noqa: F811
    assert_one_line_error(cli("plot", "--results", tmp_path / "nothing"), "no results at", codes=(1,))
    assert_one_line_error(cli("plot", "--results", store, "--baseline", "brian2", "--out", tmp_path),
                          "baseline 'brian2' has no runs", "choose from: norse, snntorch, tfbench, torch", codes=(2,))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(cli("plot", "--results", empty), "no records", codes=(1,))
