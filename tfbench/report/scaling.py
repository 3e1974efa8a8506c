"""The temporal pipeline's single-layer scaling (``tfbench scale``; the paper's Fig. 6), from the store.

``scaling_table``: one row per (mode, T, GPUs, chunks or runs, direction): time, speed-up over one
GPU, the model beside it (latency: the paper's Eq. 5; throughput: the pipelined runs' fill and
drain), efficiency (speed-up / GPUs), Ts, tseg, Tc and the latency model's best GPU count.
``summary_table``: per mode, direction and T, the speed-up on each GPU count with its model
(latency: the best chunk count and unroll of each cell; throughput: each R).
``scaling_plot``: speed-up against GPUs, one line per T (measured, solid; the model, dashed), forward
and backward side by side, one row per mode, the ideal k dotted. All read only stored
``ScalingRecord`` rows; records written before the throughput mode read as latency, one run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..results.schema import SCALING_MODES  # noqa: E402
from .plots import _device_note, _save  # noqa: E402

COLUMNS = ["mode", "T", "N", "precision", "device_name", "unroll", "direction", "gpus", "chunks", "runs", "status",
           "checked", "median_ms", "p10_ms", "p90_ms", "speedup", "model_speedup", "efficiency", "ts_ms", "tseg_ms",
           "tc_ms", "optimal_gpus", "peak_gb"]


def _round(v, digits: int):
    return None if v is None or pd.isna(v) else round(float(v), digits)


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """The stored scaling records (``kind == "scaling"``) as a table, sorted by mode, T, direction, GPUs,
    chunks and runs."""
    if df.empty or "kind" not in df.columns:
        return pd.DataFrame(columns=COLUMNS)
    rows = df[df["kind"] == "scaling"].copy()
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    for name, default in (("unroll", None), ("mode", "latency"), ("runs", 1), ("tseg_ms", None)):
        if name not in rows.columns:
            rows[name] = default
        elif default is not None:
            rows[name] = rows[name].where(rows[name].notna(), default)
    rows["runs"] = rows["runs"].astype(int)
    rows["peak_gb"] = rows["peak_mem_bytes"].map(lambda b: _round(None if b is None else b / 1e9, 2))
    order = {m: i for i, m in enumerate(SCALING_MODES)}
    rows = rows.assign(_mode=rows["mode"].map(lambda m: order.get(m, len(order))))
    rows = rows.sort_values(["_mode", "T", "direction", "gpus", "chunks", "runs"], kind="stable")
    out = rows[COLUMNS].reset_index(drop=True)
    for c in ("median_ms", "p10_ms", "p90_ms", "ts_ms", "tseg_ms"):
        out[c] = out[c].map(lambda v: _round(v, 3))
    out["tc_ms"] = out["tc_ms"].map(lambda v: _round(v, 4))
    for c in ("speedup", "model_speedup", "efficiency", "optimal_gpus"):
        out[c] = out[c].map(lambda v: _round(v, 2))
    return out


def _best(table: pd.DataFrame) -> pd.DataFrame:
    """The measured rows, one per (mode, runs, T, direction, GPUs): latency the best chunk count and
    unroll of each (every row's speed-up is over one GPU with the same unroll, so settings compare by
    speed-up); throughput one row per R already."""
    ok = table[(table["status"] == "ok") & table["speedup"].notna()]
    if ok.empty:
        return ok
    keys = ["mode", "runs", "T", "direction", "gpus"]
    return ok.loc[ok.groupby(keys, dropna=False)["speedup"].idxmax()].sort_values(keys, kind="stable")


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (mode, runs, direction, T): the one-GPU time of one run and, per GPU count, ``measured x
    (model x)``. Empty when nothing was measured."""
    best = _best(scaling_table(df))
    if best.empty:
        return pd.DataFrame()
    ks = sorted(k for k in set(best["gpus"]) if k > 1)
    rows = []
    for (mode, runs, d, T), g in best.groupby(["mode", "runs", "direction", "T"], sort=False):
        what = "latency (best chunks)" if mode == "latency" else f"throughput, R={runs}"
        row = {"mode": what, "direction": d, "T": T,
               "1 GPU ms per run": _round(g["ts_ms"].dropna().iloc[0], 3) if g["ts_ms"].notna().any() else None}
        for k in ks:
            cell = g[g["gpus"] == k]
            if cell.empty:
                row[f"{k} GPUs"] = None
                continue
            r = cell.iloc[0]
            model = "" if pd.isna(r["model_speedup"]) else f" (model {r['model_speedup']:.2f}x)"
            row[f"{k} GPUs"] = f"{r['speedup']:.2f}x{model}"
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table (missing values empty)."""
    if table.empty:
        return "_no records_\n"
    lines = ["| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join("" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                                       for v in row) + " |")
    return "\n".join(lines) + "\n"


def scaling_markdown(df: pd.DataFrame) -> str:
    """The summary, then every record: what ``tfbench scale`` writes to OUT/scaling.md."""
    return ("## Speed-up over one GPU, measured (model)\n\n" + to_markdown(summary_table(df))
            + "\n## Every record\n\n" + to_markdown(scaling_table(df)))


def scaling_plot(df: pd.DataFrame, out_dir: Path | str, name: str = "scaling") -> list[Path]:
    """Speed-up over one GPU against GPUs per T (measured and the model), a row per mode (latency: the
    best chunk count and unroll of each cell; throughput: the largest R measured). ValueError when
    there is nothing measured to plot."""
    best = _best(scaling_table(df))
    if best.empty:
        raise ValueError("no measured scaling records (status ok) to plot")
    top = best[best["mode"] == "throughput"]["runs"].max()
    best = best[(best["mode"] != "throughput") | (best["runs"] == top)]
    modes = [m for m in SCALING_MODES if m in set(best["mode"])]
    directions = [d for d in ("forward", "backward") if d in set(best["direction"])]
    fig, axes = plt.subplots(len(modes), len(directions), figsize=(5.2 * len(directions), 4 * len(modes)),
                             squeeze=False)
    for row, mode in zip(axes, modes):
        for ax, d in zip(row, directions):
            part = best[(best["direction"] == d) & (best["mode"] == mode)]
            ks = sorted(set(part["gpus"]))
            ax.plot(ks, ks, ":", color="grey", label="ideal")
            for i, (T, g) in enumerate(part.groupby("T")):
                g = g.sort_values("gpus")
                color = f"C{i}"
                ax.plot(g["gpus"], g["speedup"], "o-", color=color, label=f"T={T} measured")
                if g["model_speedup"].notna().any():
                    ax.plot(g["gpus"], g["model_speedup"], "--", color=color, label=f"T={T} model")
            ax.set_xlabel("GPUs (k)")
            ax.set_ylabel("speed-up over one GPU")
            ax.set_xticks(ks)
            what = "one run, neurons in chunks" if mode == "latency" else f"{int(top)} runs pipelined"
            ax.set_title(f"LIF layer {d}, N={int(part['N'].iloc[0]):,}: {what}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"temporal pipeline, {_device_note(best['device_name'])}", fontsize=10)
    return _save(fig, Path(out_dir) / name)
