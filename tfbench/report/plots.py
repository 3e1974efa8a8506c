"""Figures from the store (matplotlib, Agg, PNG and SVG): speed-up bars and LIF-layer time against T.

- ``speedup_bars``: for each training config (dataset, arch, T, batch, precision, ...), one bar per
  backend, its speed-up over the baseline backend (the baseline is 1), from median step times.
- ``energy_bars``: for each training config, one bar per backend (the ANN twin too), the GPU's energy
  per training step (NVML), the average power in the label.
- ``layer_time_vs_T``: for each (N, precision, direction, mode), time per call against T on log-log
  axes, one line per backend, the memory-bandwidth floor dashed.

Both read only DataFrames of stored records (``tfbench.results.store.load``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines this runs on

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter, NullLocator, ScalarFormatter  # noqa: E402

from .tables import layer_table, run_table  # noqa: E402

FORMATS = ("png", "svg")
DPI = 150   # sharp enough for a README at its usual width


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _device_note(names) -> str:
    names = sorted({str(n) for n in names if n is not None and str(n) != "nan"})
    return ", ".join(names)


def speedup_bars(runs: pd.DataFrame, baseline: str, out_dir: Path | str, name: str = "speedup") -> list[Path]:
    """Bars of each backend's training-step speed-up over ``baseline``; returns the PNG and SVG paths.

    ``runs``: run records (store.load(..., kind="run")). Rows without a speed-up (another status,
    no baseline in their config) are left out. Raises ValueError when nothing can be plotted.
    """
    table = run_table(runs, baseline)
    if table.empty or table["speedup"].isna().all():
        raise ValueError(f"no run has a speed-up over baseline {baseline!r} to plot "
                         f"(backends in the records: {', '.join(sorted(set(runs.get('backend', []))))})")
    table = table[table["speedup"].notna()].copy()
    table["config"] = (table["dataset"] + " " + table["arch"].str.removeprefix("Spiking-") + "\nT=" +
                       table["T"].astype(str) + " B=" + table["batch"].astype(str) + " " + table["precision"] +
                       table["step_mode"].map(lambda m: "" if m == "multi" else " single-step") +
                       (("\n" + table["options"]) if "options" in table and table["options"].nunique() > 1 else ""))
    spiking = table[table["backend"] != "ann"]
    neurons = set(spiking["neuron"])
    if len(neurons) > 1:   # one group of bars per neuron; the ANN floor row joins each
        ann = table[table["backend"] == "ann"]
        spiking = spiking.assign(config=spiking["config"] + " " + spiking["neuron"])
        base = spiking[spiking["backend"] == baseline].groupby("config")["step_ms"].last()
        copies = []
        for n in sorted(neurons):
            a = ann.assign(config=ann["config"] + " " + n)
            copies.append(a.assign(speedup=a["config"].map(base) / a["step_ms"]))
        table = pd.concat([spiking] + copies)
        table = table[table["speedup"].notna()]
    configs = list(dict.fromkeys(table["config"]))
    backends = list(dict.fromkeys(table["backend"]))
    width = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(configs) * max(len(backends), 2) * 0.5), 4.2))
    for i, backend in enumerate(backends):
        sub = table[table["backend"] == backend].groupby("config")["speedup"].last()
        xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(configs))]
        ys = [float(sub.get(c)) if c in sub.index else 0.0 for c in configs]
        bars = ax.bar(xs, ys, width, label="ANN floor" if backend == "ann" else backend)
        ax.bar_label(bars, labels=[f"{y:.2f}x" if y else "" for y in ys], fontsize=7, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(configs)), configs, fontsize=8)
    ax.set_ylabel(f"training-step speed-up over {baseline}")
    ax.set_title(f"Spiking-ResNet training step, median ({_device_note(table['device'])})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, Path(out_dir) / name)


def _config_label(table: pd.DataFrame) -> pd.Series:
    label = (table["dataset"] + " " + table["arch"].str.removeprefix("Spiking-") + "\nT=" + table["T"].astype(str)
             + " B=" + table["batch"].astype(str) + " " + table["precision"])
    if table["options"].nunique() > 1:
        label = label + "\n" + table["options"]
    return label


def energy_bars(runs: pd.DataFrame, out_dir: Path | str, name: str = "energy") -> list[Path]:
    """Bars of each backend's GPU energy per training step (J, NVML), average power in the label.

    Raises ValueError when no run has an energy figure (CPU runs, no counter).
    """
    table = run_table(runs)
    if table.empty or table["energy_per_step_j"].isna().all():
        raise ValueError("no run has an energy figure (energy is measured on NVIDIA GPUs only)")
    table = table[table["energy_per_step_j"].notna()].copy()
    table["config"] = _config_label(table)
    configs = list(dict.fromkeys(table["config"]))
    backends = list(dict.fromkeys(table["backend"]))
    width = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(configs) * max(len(backends), 2) * 0.5), 4.2))
    for i, backend in enumerate(backends):
        sub = table[table["backend"] == backend].groupby("config")[["energy_per_step_j", "avg_power_w"]].last()
        xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(configs))]
        ys = [float(sub.loc[c, "energy_per_step_j"]) if c in sub.index else 0.0 for c in configs]
        watts = [sub.loc[c, "avg_power_w"] if c in sub.index else None for c in configs]
        bars = ax.bar(xs, ys, width, label="ANN twin" if backend == "ann" else backend)
        ax.bar_label(bars, labels=[f"{y:.3g} J\n{w:.0f} W" if y and w == w and w is not None else "" for y, w in
                                   zip(ys, watts)], fontsize=6, padding=1)
    ax.set_ylim(top=1.15 * float(table["energy_per_step_j"].max()))   # room for the labels
    ax.set_xticks(range(len(configs)), configs, fontsize=8)
    ax.set_ylabel("GPU energy per training step (J)")
    ax.set_title(f"Spiking-ResNet training step, energy ({_device_note(table['device'])})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, Path(out_dir) / name)


def layer_time_vs_T(layers: pd.DataFrame, out_dir: Path | str, name: str = "layer_time_vs_T") -> list[Path]:
    """Lines of LIF-layer time per call against T, per backend; one panel per (N, precision, direction, mode).

    ``layers``: layer records (store.load(..., kind="layer")). Raises ValueError when none is ok.
    """
    table = layer_table(layers)
    table = table[table["median_ms"].notna()] if not table.empty else table
    if table.empty:
        raise ValueError("no LIF-layer record with a time to plot")
    panels = list(dict.fromkeys(zip(table["N"], table["precision"], table["direction"], table["mode"])))
    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (n, precision, direction, mode) in zip(axes.flat, panels):
        sub = table[(table["N"] == n) & (table["precision"] == precision) & (table["direction"] == direction) &
                    (table["mode"] == mode)]
        for backend in dict.fromkeys(sub["backend"]):
            line = sub[sub["backend"] == backend].sort_values("T")
            ax.plot(line["T"], line["median_ms"], marker="o", label=backend)
        floors = sub[sub["floor_ms"].notna()]
        if len(floors):
            # the floor of an op keeping h (docs/neurons.md) is the largest; a backend that keeps less has its own
            spec = floors.groupby("T")["floor_ms"].max()
            ax.plot(spec.index, spec.values, color="black", linestyle="--", label="memory floor")
            for backend in dict.fromkeys(floors["backend"]):
                own = floors[floors["backend"] == backend].sort_values("T")
                if (own["floor_ms"].to_numpy() < 0.999 * spec[own["T"]].to_numpy()).any():
                    ax.plot(own["T"], own["floor_ms"], color="gray", linestyle=":", label=f"{backend} floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted(set(sub["T"])))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("T (time steps)")
        ax.set_ylabel("ms per call (median)")
        ax.set_title(f"N={n:,} {precision} {direction} {mode}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"One LIF layer ({_device_note(table['device'])})", fontsize=10)
    return _save(fig, Path(out_dir) / name)
