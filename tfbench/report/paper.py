"""The paper's Table 1 beside the same grid measured here (the paper's numbers are data, read from a file).

``paper_vs_measured(runs, paper)`` takes run records (``results.store.load(..., kind="run")``) and the
paper's published table (``load_paper(path)``, e.g. results/paper/table1_a100.toml) and returns one
row per (arch, dataset): the paper's seconds per epoch for SJ-PyTorch, SJ-CuPy and its temporal
fusion, with its speed-ups, then the same here for SJ-PyTorch, SJ-CuPy (SpikingJelly 0.0.0.0.14),
tfbench and SpikingJelly 2.0, with tfbench's speed-ups over the two baselines.

The seconds per epoch here are steady state: each run's median training step times the steps of a
real epoch (the training split's size over the batch, the last partial batch dropped), which is what
a steady epoch takes (issue 11's table shows epoch = step x steps); the loader's share of a real
epoch (reading and encoding the data) is not in it, nor the one-time setup.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

# The methods of the comparison, as backends here; the paper's own kernel has no backend.
PAPER_METHODS = {"spikingjelly014-torch": "SJ-PyTorch", "spikingjelly014": "SJ-CuPy",
                 "temporal-fusion": "temporal fusion"}
MEASURED = {"spikingjelly014-torch": "SJ-PyTorch", "spikingjelly014": "SJ-CuPy", "tfbench": "tfbench",
            "spikingjelly": "SJ 2.0"}
# training split sizes of the real datasets (what a real epoch has)
TRAIN_SIZES = {"MNIST": 60_000, "CIFAR-10": 50_000, "N-MNIST": 60_000, "DvsGesture": 1_176}


def load_paper(path: Path | str) -> dict:
    """The paper's table: {"source", "gpu", "seconds": {(arch, method, dataset): s}}."""
    doc = tomllib.loads(Path(path).read_text())
    seconds = {}
    for row in doc["row"]:
        for dataset in TRAIN_SIZES:
            if dataset in row:
                seconds[(row["arch"], row["method"], dataset)] = float(row[dataset])
    return {"source": doc["source"], "gpu": doc["gpu"], "seconds": seconds}


def _ratio(a, b):
    return a / b if (a and b and math.isfinite(a) and math.isfinite(b)) else None


def paper_vs_measured(runs: pd.DataFrame, paper: dict) -> pd.DataFrame:
    """One row per (arch, dataset) of the paper's table; empty cells where a run is missing."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for arch, dataset in dict.fromkeys((a, d) for a, _, d in paper["seconds"]):
        row = {"arch": arch, "dataset": dataset}
        p = {m: paper["seconds"].get((arch, m, dataset)) for m in PAPER_METHODS}
        for m, label in PAPER_METHODS.items():
            row[f"paper {label}"] = p[m]
        row["paper TF speed-up over SJ-CuPy"] = _ratio(p["spikingjelly014"], p["temporal-fusion"])
        row["paper TF speed-up over SJ-PyTorch"] = _ratio(p["spikingjelly014-torch"], p["temporal-fusion"])
        here = {}
        for backend, label in MEASURED.items():
            sel = ok[(ok["arch"] == arch) & (ok["dataset"] == dataset) & (ok["backend"] == backend)]
            if len(sel):
                r = sel.iloc[-1]
                here[backend] = float(r["step_ms"]) * 1e-3 * (TRAIN_SIZES[dataset] // int(r["batch_size"]))
            row[f"here {label}"] = here.get(backend)
        row["tfbench speed-up over SJ-CuPy"] = _ratio(here.get("spikingjelly014"), here.get("tfbench"))
        row["tfbench speed-up over SJ-PyTorch"] = _ratio(here.get("spikingjelly014-torch"), here.get("tfbench"))
        devices = ok[(ok["arch"] == arch) & (ok["dataset"] == dataset)]["device_name"].dropna().unique()
        row["here GPU"] = ", ".join(sorted(map(str, devices)))
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, paper: dict) -> str:
    """The comparison as a markdown table, seconds per epoch and speed-ups."""
    def cell(col, v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, str):
            return v
        return f"{v:.2f}x" if "speed-up" in col else f"{v:.1f}"

    cols = [c for c in table.columns if c != "here GPU"]
    gpus = ", ".join(sorted({g for g in table["here GPU"] if g}))
    lines = [f"Seconds per training epoch. Paper: {paper['source']}. Here: {gpus}, steady state (median step x "
             "steps of a real epoch, synthetic data of the real shapes); SJ = SpikingJelly 0.0.0.0.14.", "",
             "| " + " | ".join(cols) + " |", "| " + " | ".join("---" if c in ("arch", "dataset") else "---:"
                                                               for c in cols) + " |"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(cell(c, r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"
