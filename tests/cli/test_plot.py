"""``tfbench plot``: figures from a store; one-line errors when there is nothing to draw."""

from __future__ import annotations

from pathlib import Path

from tests.report.test_report import store  # noqa: F401  (the fixture: a small store)

from .conftest import assert_one_line_error


def test_plot_writes_figures(cli, store: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "figs"
    result = cli("plot", "--results", store, "--out", out, "--baseline", "torch")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["layer_time_vs_T.png", "layer_time_vs_T.svg", "speedup.png",
                                                     "speedup.svg"]


def test_plot_errors(cli, store: Path, tmp_path: Path) -> None:  # noqa: F811
    assert_one_line_error(cli("plot", "--results", tmp_path / "nothing"), "no results at", codes=(1,))
    assert_one_line_error(cli("plot", "--results", store, "--baseline", "brian2", "--out", tmp_path),
                          "baseline 'brian2' has no runs", "choose from: norse, snntorch, tfbench, torch", codes=(2,))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(cli("plot", "--results", empty), "no records", codes=(1,))
