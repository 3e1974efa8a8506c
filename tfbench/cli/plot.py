"""``tfbench plot``: figures from stored records (speed-up bars, LIF-layer time against T)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..report import plots
from ..results.store import load
from .common import DEFAULT_BASELINE, err_console, fail


def plot(
    results: Annotated[Path, typer.Option(help="A results folder (runs.jsonl, layer.jsonl) or one .jsonl file.")]
    = Path("results"),
    out: Annotated[Path | None, typer.Option(show_default="the results folder",
                                             help="Folder for the figures (PNG and SVG).")] = None,
    baseline: Annotated[str, typer.Option(help="Backend the speed-up bars are relative to.")] = DEFAULT_BASELINE,
) -> None:
    """Draw speed-up bars per backend (training runs) and time-vs-T lines (LIF-layer records)."""
    try:
        df = load(results)
    except FileNotFoundError:
        fail(f"no results at {str(results)!r}; give --results a folder with runs.jsonl/layer.jsonl or a .jsonl file",
             1)
    if df.empty:
        fail(f"no records in {str(results)!r}", 1)
    out = out if out is not None else (results if results.is_dir() else results.parent)
    made: list[Path] = []
    problems: list[str] = []
    runs = df[df["kind"] == "run"].reset_index(drop=True)
    layers = df[df["kind"] == "layer"].reset_index(drop=True)
    if not runs.empty:
        names = sorted(set(runs["backend"]))
        if baseline not in names:
            fail(f"baseline {baseline!r} has no runs in {str(results)!r}; choose from: {', '.join(names)}")
        try:
            made += plots.speedup_bars(runs, baseline, out)
        except ValueError as e:
            problems.append(str(e))
    if not layers.empty:
        try:
            made += plots.layer_time_vs_T(layers, out)
        except ValueError as e:
            problems.append(str(e))
    err = err_console()
    for p in problems:
        err.print(f"skipped: {p}", highlight=False, soft_wrap=True)
    if not made:
        fail(f"nothing to plot in {str(results)!r}: " + "; ".join(problems), 1)
    err.print("saved " + ", ".join(str(p) for p in made), highlight=False, soft_wrap=True)
