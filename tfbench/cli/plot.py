"""``tfbench plot``: figures from stored records (speed-up and energy bars, training memory against T,
LIF-layer time against T)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import err_console, fail, output_folder


def default_baseline(runs) -> str:
    """The backend the speed-up bars are relative to when none is named: the baseline the records were
    compared against (``tfbench compare`` records it; the most recent one wins), else the plain PyTorch
    loop when present, else the first backend of the records."""
    from .common import DEFAULT_BASELINE

    spiking = runs[runs["backend"] != "ann"] if "backend" in runs else runs
    names = list(dict.fromkeys(spiking["backend"])) if len(spiking) else []
    if "baseline" in runs:
        recorded = [b for b in runs.sort_values("timestamp")["baseline"] if isinstance(b, str) and b in names]
        if recorded:
            return recorded[-1]
    if DEFAULT_BASELINE in names:
        return DEFAULT_BASELINE
    return names[0] if names else DEFAULT_BASELINE


def plot(
    results: Annotated[Path, typer.Option(help="A results folder (runs.jsonl, layer.jsonl) or one .jsonl file.")]
    = Path("results"),
    out: Annotated[Path | None, typer.Option(show_default="the results folder",
                                             help="Folder for the figures (PNG and SVG).")] = None,
    baseline: Annotated[str | None, typer.Option(show_default="the baseline the records were compared against", help=(
        "Backend the speed-up bars are relative to."))] = None,
) -> None:
    """Draw speed-up and energy bars per backend and, where the training runs span several T, their peak
    memory against T; time-vs-T lines of the LIF-layer records."""
    results = Path(results)
    if not results.exists():
        fail(f"no results at {str(results)!r}; give --results a folder with runs.jsonl/layer.jsonl or a .jsonl file",
             1)
    out = output_folder(out if out is not None else (results if results.is_dir() else results.parent))
    from ..report import plots
    from ..results.store import load

    df = load(results)
    if df.empty:
        fail(f"no records in {str(results)!r}", 1)
    made: list[Path] = []
    problems: list[str] = []
    runs = df[df["kind"] == "run"].reset_index(drop=True)
    layers = df[df["kind"] == "layer"].reset_index(drop=True)
    if not runs.empty:
        names = sorted(set(runs["backend"]) - {"ann"})
        chosen = baseline if baseline is not None else default_baseline(runs)
        if chosen not in names:
            fail(f"baseline {chosen!r} has no runs in {str(results)!r}; choose from: {', '.join(names)}")
        try:
            made += plots.speedup_bars(runs, chosen, out)
        except ValueError as e:
            problems.append(str(e))
        try:
            made += plots.energy_bars(runs, out)
        except ValueError as e:
            problems.append(str(e))
        if runs["T"].nunique() > 1:
            try:
                made += plots.memory_vs_T(runs, out)
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
