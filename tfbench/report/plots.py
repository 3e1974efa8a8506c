"""Figures from the store (matplotlib, Agg, PNG and SVG): speed-up and energy bars, training memory
and LIF-layer time against T.

- ``speedup_bars``: for each training config (dataset, arch, T, batch, precision, ...), one bar per
  backend, its speed-up over the baseline backend (the baseline is 1), from median step times.
- ``energy_bars``: for each training config, one bar per backend (the ANN twin too), the GPU's energy
  per training step (NVML), the average power in the label.
- ``memory_vs_T``: for each (arch, dataset, batch size, device), the steady training's peak device
  memory against T on log-log axes, one line per backend (tfbench's lean path apart), precision and
  speed options; runs that ran out of memory as crosses at the device's memory.
- ``layer_time_vs_T``: for each (N, precision, direction, mode), time per call against T on log-log
  axes, one line per backend, the memory-bandwidth floor dashed.

They read only DataFrames of stored records (``tfbench.results.store.load``).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on the machines this runs on

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator, ScalarFormatter  # noqa: E402

from ..results.schema import ERROR, NA, OK, OOM, status_word  # noqa: E402
from .tables import ANN_BACKEND, MIB, _family, _flag, _num, _options, layer_table, run_table  # noqa: E402

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


GIB = 1 << 30
# A backend keeps its colour across precisions; the precision is the line's style.
PRECISION_LINES = {"fp32": "-", "bf16": "--", "fp16": ":"}
# Where an out-of-memory cross sits when the records do not say the device's memory: this factor above
# the largest peak that fitted (on a log axis, a clear gap above every line).
OOM_ABOVE = 1.6
# Crosses of several lines at one T sit this far apart (in doublings of T): side by side, still over their T.
OOM_SPREAD = 0.12
# What tells two lines of one backend and precision apart; shown in the labels only where some do differ.
LINE_DETAILS = ("options", "neuron", "step_mode")
# One memory figure per group: records of another arch, dataset, batch size or GPU are another figure.
MEMORY_GROUP = ("family", "dataset", "batch", "device")


def _memory_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """``run_table``'s rows with what the memory figure adds: the arch family, ``lean`` (False for records
    older than the field), the status word, the device's memory where recorded, the timestamp."""
    table = run_table(runs).reset_index(drop=True)
    if table.empty:
        return table
    records = runs.reset_index(drop=True)
    table["family"] = table["arch"].map(_family)
    table["device"] = table["device"].map(lambda d: _device_note([d]))
    table["lean"] = [_flag(v) for v in records["lean"]] if "lean" in records else False
    table["options"] = [_options(r, lean=False) for _, r in records.iterrows()]   # lean has its own label
    table["word"] = table["status"].map(status_word)
    envs = records["env"] if "env" in records else [None] * len(records)
    table["device_memory"] = [_num(e.get("device_memory_bytes")) if isinstance(e, dict) else None for e in envs]
    table["timestamp"] = records["timestamp"].fillna("").astype(str) if "timestamp" in records else ""
    return table


def _left_out(group: pd.DataFrame) -> str:
    """The note under a memory figure: how many runs of its group are not drawn, and why."""
    words = group["word"]
    counts = [((words == NA).sum(), "n/a"), ((words == ERROR).sum(), "error"),
              (((words == OK) & group["peak_mem_mib"].isna()).sum(), "ok without a peak memory (not on a GPU)"),
              ((~words.isin((OK, OOM, NA, ERROR))).sum(), "pending")]
    shown = [f"{int(n)} {what}" for n, what in counts if n]
    return ("left out: " + ", ".join(shown) + " (the compare table gives the reasons)") if shown else ""


def _slug(*parts) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", str(p)).strip("-") for p in parts)


def memory_vs_T(runs: pd.DataFrame, out_dir: Path | str, name: str = "memory_vs_T") -> list[Path]:
    """Lines of the training step's peak device memory against T; one figure per (arch, dataset, batch
    size, GPU), named ``name`` (with the group appended when the records hold several). Returns the PNG
    and SVG paths of every figure.

    ``runs``: run records (store.load(..., kind="run")). y is ``peak_mem_bytes``, the peak of the steady
    epochs (after the warm-up), in GiB (MiB when everything is under 1 GiB), on a log axis; x is T on a
    log2 axis. One line per backend ("tfbench lean" apart from "tfbench" by the record's ``lean``;
    records older than that field are not lean; the ANN twin is "ANN twin"), the precision as its style,
    and the speed options, neuron or step mode in the labels where the lines differ in them.
    Where a config has several records at one T (another max-steps, say), the newest is drawn. A run
    with status ``oom`` is a cross in its line's colour at the device's memory (``env`` records
    ``device_memory_bytes``) or, where that is not recorded, above every line. n/a and error runs, and
    ok runs without a peak (the CPU), are left out and counted in a note. A group whose points span
    fewer than two T is not drawn; ValueError when no group is.
    """
    rows = _memory_rows(runs)
    if rows.empty:
        raise ValueError("no training run to plot memory against T")
    groups = list(dict.fromkeys(zip(*(rows[k] for k in MEMORY_GROUP))))
    several_devices = rows["device"].nunique() > 1
    made: list[Path] = []
    for group in groups:
        sub = rows[[all(r[k] == v for k, v in zip(MEMORY_GROUP, group)) for _, r in rows.iterrows()]]
        drawn = sub[((sub["word"] == OK) & sub["peak_mem_mib"].notna()) | (sub["word"] == OOM)]
        line = ["backend", "lean", "precision", *LINE_DETAILS]
        drawn = drawn.sort_values("timestamp", kind="stable").drop_duplicates([*line, "T"], keep="last")
        ok = drawn[drawn["word"] == OK]
        device_memory = sub["device_memory"].dropna()
        device_mib = float(device_memory.max()) / MIB if len(device_memory) else None
        if ok.empty and device_mib is None:
            continue   # nothing gives the axis a scale
        if drawn["T"].nunique() < 2:
            continue
        top_mib = max([*ok["peak_mem_mib"], device_mib or 0.0])
        unit, scale = ("GiB", GIB / MIB) if top_mib >= GIB / MIB else ("MiB", 1.0)
        oom_y = (device_mib if device_mib is not None else float(ok["peak_mem_mib"].max()) * OOM_ABOVE) / scale

        # a line per (backend, lean, precision, details); a colour per line but its precision (the style)
        series = list(dict.fromkeys(k[:2] + k[3:] for k in zip(*(drawn[c] for c in line))))
        backends = list(dict.fromkeys(k[0] for k in series))   # as they ran; tfbench lean after tfbench; ANN last
        series.sort(key=lambda k: (k[0] == ANN_BACKEND, backends.index(k[0]), k[1]))
        precisions = [p for p in PRECISION_LINES if p in set(drawn["precision"])]
        precisions += sorted(set(drawn["precision"]) - set(precisions))
        lines = [k[:2] + (p,) + k[2:] for k in series for p in precisions]
        details = [c for i, c in enumerate(LINE_DETAILS, 2)    # among the spiking lines, or among the ANN's
                   if any(len({k[i] for k in series if (k[0] == ANN_BACKEND) == ann}) > 1 for ann in (False, True))]
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        if len(series) > len(colours):   # a store of many sweeps: 20 colours before any repeats
            colours = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
        points = {k: drawn[[tuple(r[c] for c in line) == k for _, r in drawn.iterrows()]] for k in lines}
        # lines that ran out of memory at the same T: crosses spread a little sideways, so each shows
        oom_at: dict[int, list] = {}
        for k in lines:
            for t in points[k].loc[points[k]["word"] == OOM, "T"]:
                oom_at.setdefault(int(t), []).append(k)

        fig, ax = plt.subplots(figsize=(7.0, 4.4))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        for k in lines:
            mine = points[k]
            if mine.empty:
                continue
            backend, lean, precision = k[:3]
            words = [("ANN twin" if backend == ANN_BACKEND else backend) + (" lean" if lean else ""), precision]
            words += [str(mine[c].iloc[0]) for c in details if not (backend == ANN_BACKEND and c == "neuron")]
            colour = colours[series.index(k[:2] + k[3:]) % len(colours)]
            style = PRECISION_LINES.get(precision, "-.")
            fits = mine[mine["word"] == OK].sort_values("T")
            ax.plot(fits["T"], fits["peak_mem_mib"] / scale, marker="o", markersize=4, color=colour,
                    linestyle=style, label=" ".join(words))
            ooms = sorted(int(t) for t in mine.loc[mine["word"] == OOM, "T"])
            xs = [t * 2 ** (OOM_SPREAD * (oom_at[t].index(k) - (len(oom_at[t]) - 1) / 2)) for t in ooms]
            ax.plot(xs, [oom_y] * len(xs), linestyle="none", marker="x", markersize=9, markeredgewidth=2,
                    color=colour)
            if len(fits) and ooms and ooms[0] > fits["T"].iloc[-1]:   # last run that fitted to the first that did not
                ax.plot([fits["T"].iloc[-1], xs[0]], [fits["peak_mem_mib"].iloc[-1] / scale, oom_y], color=colour,
                        linestyle=style, linewidth=0.8, alpha=0.5)
        handles, labels = ax.get_legend_handles_labels()
        if device_mib is not None:
            handles.append(ax.axhline(device_mib / scale, color="gray", linestyle=":", linewidth=1))
            labels.append(f"device memory ({device_mib / scale:,.0f} {unit})")
        if (drawn["word"] == OOM).any():
            handles.append(Line2D([], [], color="black", marker="x", markersize=8, markeredgewidth=2,
                                  linestyle="none"))
            labels.append("out of memory" + ("" if device_mib is not None else " (device memory not recorded)"))
        ax.set_ylim(top=max(ax.get_ylim()[1], oom_y * 1.3))
        ax.set_xticks(sorted(set(drawn["T"])))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("T (time steps)")
        ax.set_ylabel(f"peak device memory, steady training ({unit})")
        family, dataset, batch, device = group
        arch = next((a for a in sub["arch"] if a != family), family)   # the spiking arch's name when present
        ax.set_title(f"{arch} training step, {dataset}, batch {batch} ({device})", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        note = _left_out(sub)
        if note:
            fig.text(0.01, 0.0, note, fontsize=7, ha="left", va="top", transform=fig.transFigure)
        stem = name if len(groups) == 1 else f"{name}_" + _slug(dataset, family, f"B{batch}",
                                                               *([device] if several_devices else []))
        made += _save(fig, Path(out_dir) / stem)
    if not made:
        peaks = rows["peak_mem_mib"].notna().any() or rows["device_memory"].notna().any()
        raise ValueError("no (arch, dataset, batch size) group has training runs with a peak memory at more than "
                         "one T" + ("" if peaks else " (peak memory is measured on CUDA devices only)"))
    return made


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
