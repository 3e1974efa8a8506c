"""The temporal pipeline's single-layer scaling (``tfbench scale``; the paper's Fig. 6), from the store.

``scaling_table``: one row per (T, GPUs, chunks, direction): time, speed-up over one GPU, the paper's
model beside it, efficiency (speed-up / GPUs), Ts, Tc and the model's best GPU count.
``scaling_plot``: speed-up against GPUs, one line per T (measured, solid; the model, dashed), forward
and backward side by side, the ideal k dotted. Both read only stored ``ScalingRecord`` rows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .plots import _device_note, _save  # noqa: E402

COLUMNS = ["T", "N", "precision", "device_name", "unroll", "direction", "gpus", "chunks", "status", "checked",
           "median_ms", "p10_ms", "p90_ms", "speedup", "model_speedup", "efficiency", "ts_ms", "tc_ms",
           "optimal_gpus", "peak_gb"]


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """The stored scaling records (``kind == "scaling"``) as a table, sorted by T, direction, GPUs, chunks."""
    if df.empty or "kind" not in df.columns:
        return pd.DataFrame(columns=COLUMNS)
    rows = df[df["kind"] == "scaling"].copy()
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows["peak_gb"] = rows["peak_mem_bytes"].map(lambda b: None if b is None or pd.isna(b) else round(b / 1e9, 2))
    if "unroll" not in rows.columns:
        rows["unroll"] = None
    rows = rows.sort_values(["T", "direction", "gpus", "chunks"], kind="stable")
    out = rows[COLUMNS].reset_index(drop=True)
    for c in ("median_ms", "p10_ms", "p90_ms", "ts_ms"):
        out[c] = out[c].map(lambda v: None if v is None or pd.isna(v) else round(float(v), 3))
    for c in ("tc_ms",):
        out[c] = out[c].map(lambda v: None if v is None or pd.isna(v) else round(float(v), 4))
    for c in ("speedup", "model_speedup", "efficiency", "optimal_gpus"):
        out[c] = out[c].map(lambda v: None if v is None or pd.isna(v) else round(float(v), 2))
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table (missing values empty)."""
    if table.empty:
        return "_no records_\n"
    lines = ["| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join("" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                                       for v in row) + " |")
    return "\n".join(lines) + "\n"


def scaling_plot(df: pd.DataFrame, out_dir: Path | str, name: str = "scaling") -> list[Path]:
    """Speed-up over one GPU against GPUs per T (measured and the paper's model); the best chunk count
    and unroll of each (T, GPUs) is shown. ValueError when there is nothing measured to plot."""
    table = scaling_table(df)
    ok = table[(table["status"] == "ok") & table["speedup"].notna()]
    if ok.empty:
        raise ValueError("no measured scaling records (status ok) to plot")
    # the best setting (chunks, unroll) of each (T, direction, GPUs): each row's speed-up is over one
    # GPU with the same unroll, so settings compare by speed-up
    best = ok.loc[ok.groupby(["T", "direction", "gpus"], dropna=False)["speedup"].idxmax()]
    directions = [d for d in ("forward", "backward") if d in set(best["direction"])]
    fig, axes = plt.subplots(1, len(directions), figsize=(5.2 * len(directions), 4), squeeze=False)
    for ax, d in zip(axes[0], directions):
        part = best[best["direction"] == d]
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
        ax.set_title(f"LIF layer {d}, N={int(part['N'].iloc[0]):,}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"temporal pipeline, {_device_note(best['device_name'])}", fontsize=10)
    return _save(fig, Path(out_dir) / name)
