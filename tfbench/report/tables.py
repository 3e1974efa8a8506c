"""Tables from the store: training runs (time, speed-up, accuracy, memory) and LIF-layer timings.

Each builder takes the DataFrame ``tfbench.results.store.load`` gives and returns a plain table
(a DataFrame of display strings and numbers); ``render`` prints it with rich, ``write`` saves it as
CSV and markdown. Nothing here runs a benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results.schema import OK, RunRecord, normalize_status, options_text

MIB = 1 << 20
ANN_BACKEND = "ann"
# Columns that make rows comparable, derived from the run schema's key: every configuration field but
# the backend (what a table compares), the arch as its family (an ANN twin joins its spiking arch),
# the device as its name, and the speed options and parallelism as one "options" word. A speed-up is
# only taken within a group. ``lean`` is, like the backend, how a row runs the same network: a lean
# row is compared with the baseline and the ANN twin run with the same other options.
_NOT_GROUPED = ("kind", "backend", "arch", "neuron_params", "device", "lean")
RUN_GROUP = tuple(f for f in RunRecord.CONFIG_FIELDS if f not in _NOT_GROUPED) + ("family", "group_options")
LAYER_GROUP = ("T", "N", "precision", "direction", "mode", "device", "neuron")


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _last(v):
    if isinstance(v, (list, tuple)) and v:
        return v[-1]
    return None


def shown_status(s) -> str:
    """A status in today's words (records of schema 1 said 'unavailable: why' for 'n/a: why')."""
    return normalize_status(s)


def _mean(v) -> float | None:
    if isinstance(v, (list, tuple)) and v:
        nums = [_num(x) for x in v]
        nums = [x for x in nums if x is not None]
        return sum(nums) / len(nums) if nums else None
    return None


def _options(r, lean: bool = True) -> str:
    """A run's speed options and parallelism as one word: "graphs+channels-last", "eager", "temporal x2",
    "temporal x4 c16 m4" (16 neuron chunks, 4 micro-batches), "temporal x2 on 1 GPU" (its ranks sharing the
    node's GPUs); "lean" among them unless ``lean=False``."""
    text = options_text(*(bool(_flag(r.get(f))) for f in ("compile", "cuda_graphs", "channels_last")),
                        lean and bool(_flag(r.get("lean"))))
    parallel = _text(r.get("parallel")) or "none"
    if parallel != "none":
        size = int(_num(r.get("world_size")) or 1)
        split = "".join(f" {letter}{int(n)}" for letter, n in (("c", _num(r.get("chunks"))),
                                                              ("m", _num(r.get("micro_batches")))) if n and n > 1)
        text = f"{parallel} x{size}{split}" if text == "eager" else f"{text}, {parallel} x{size}{split}"
        if _flag(r.get("shared_gpus")):   # TFBENCH_SHARE_GPUS=1: not a multi-GPU run's times
            env = r.get("env")
            gpus = int((env.get("device_count") if isinstance(env, dict) else None) or 1)
            text += f" on {gpus} GPU" + ("s" if gpus > 1 else "")
    return text


def _flag(v) -> bool:
    """An on/off cell: False for a missing one (records older than the option)."""
    return False if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)


def _text(v) -> str:
    """A text cell: "" for a missing one (None, NaN)."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _family(arch: str) -> str:
    """What an arch and its ANN twin share: Spiking-ResNet18 and ResNet18; sj:x and sj:x-ann."""
    return str(arch).removeprefix("Spiking-").removesuffix("-ann")


def run_table(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One row per run: step time, steady epoch time beside the one-time setup, speed-up over
    ``baseline`` (same config), x the ANN floor, accuracy, memory, energy.

    Speed-up is the baseline's median step time over the row's, within rows that differ only in
    backend or ``lean`` (and the ANN floor row, ``backend == 'ann'``, which joins every neuron's group);
    a baseline that ran both ways is its default (not lean) row. ``x floor``
    is the row's step time over the ANN's. ``train s/epoch`` is the mean of the (steady) epochs;
    ``setup s`` the one-time costs before them (kernel builds, autotuning, compile, graph capture).
    Missing measurements are empty cells.
    """
    if df.empty:
        return pd.DataFrame()
    d = df.copy()
    d["family"] = d["arch"].map(_family)
    d["options"] = [_options(r) for _, r in d.iterrows()]
    d["group_options"] = [_options(r, lean=False) for _, r in d.iterrows()]
    d["status"] = d["status"].map(shown_status)
    rows = []
    for _, r in d.iterrows():
        ok = r["status"] == OK
        step = _num(r.get("step_ms")) if ok else None
        same = d[d["status"] == OK]
        for col in RUN_GROUP:
            if col != "neuron" and col in d.columns:    # records older than a column lack it
                same = same[same[col].map(_text) == _text(r[col])]
        base = same[same["backend"] == baseline] if baseline else same.iloc[0:0]
        if r["backend"] != ANN_BACKEND:       # the ANN row is compared with any neuron's baseline
            base = base[base["neuron"] == r["neuron"]]
        if "lean" in base.columns and len(base) > 1:   # the baseline's own way (not lean) when it ran both
            plain = base[~base["lean"].map(_flag).astype(bool)]
            base = plain if len(plain) else base
        ann = same[same["backend"] == ANN_BACKEND]
        base_ms = _num(base["step_ms"].iloc[-1]) if len(base) else None
        ann_ms = _num(ann["step_ms"].iloc[-1]) if len(ann) else None
        peak = _num(r.get("peak_mem_bytes"))
        acc = _num(_last(r.get("test_accuracy")))
        epoch_s = _mean(r.get("train_time_s"))
        rows.append({
            "dataset": r["dataset"], "arch": r["arch"], "backend": r["backend"], "neuron": r["neuron"],
            "T": int(r["T"]), "batch": int(r["batch_size"]), "precision": r["precision"],
            "step_mode": r["step_mode"],
            "options": r["options"],
            # event datasets only (empty for images, so an image-only table has no such columns)
            "split_by": _text(r.get("split_by")) or None,
            "in_channels": int(_num(r.get("in_channels")) or 3) if _text(r.get("split_by")) else None,
            "device": r.get("device_name", r.get("device")),
            "status": r["status"],
            "step_ms": step,
            "step_p10_ms": _num(r.get("step_p10_ms")) if ok else None,
            "step_p90_ms": _num(r.get("step_p90_ms")) if ok else None,
            "train_s_per_epoch": epoch_s if ok else None,
            "setup_s": _num(r.get("setup_time_s")) if ok else None,
            "speedup": (base_ms / step) if (base_ms and step) else None,
            "x_floor": (step / ann_ms) if (ann_ms and step) else None,
            "test_accuracy": acc if ok else None,
            "peak_mem_mib": (peak / MIB) if (peak is not None and ok) else None,
            "energy_per_step_j": _num(r.get("energy_per_step_j")) if ok else None,
            "avg_power_w": _num(r.get("avg_power_w")) if ok else None,
            "energy_note": _text(r.get("energy_note")) if ok else "",
            "checked": bool(r.get("checked", False)),
            "differences": r.get("differences", "") or "",
        })
    return pd.DataFrame(rows)


def layer_table(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One row per LIF-layer record: median time, spread, floor, x floor, speed-up over ``baseline``."""
    if df.empty:
        return pd.DataFrame()
    rows = []
    ok_rows = df[df["status"] == "ok"]
    for _, r in df.iterrows():
        ok = r["status"] == "ok"
        med = _num(r.get("median_ms")) if ok else None
        floor = _num(r.get("floor_ms"))
        base_ms = None
        if baseline:
            same = ok_rows[ok_rows["backend"] == baseline]
            for col in LAYER_GROUP:
                if col in df.columns:
                    same = same[same[col].map(_text) == _text(r[col])]
            base_ms = _num(same["median_ms"].iloc[-1]) if len(same) else None
        rows.append({
            "backend": r["backend"], "implementation": r.get("implementation", "") or "",
            "precision": r["precision"], "T": int(r["T"]), "N": int(r["N"]), "direction": r["direction"],
            "mode": r["mode"], "device": r.get("device"),
            "status": shown_status(r["status"]),
            "median_ms": med, "p10_ms": _num(r.get("p10_ms")) if ok else None,
            "p90_ms": _num(r.get("p90_ms")) if ok else None,
            "floor_ms": floor, "x_floor": (med / floor) if (med and floor) else None,
            "bytes_per_element": _num(r.get("bytes_per_element")),   # per backend: what its floor assumes
            "speedup": (base_ms / med) if (base_ms and med) else None,
            "checked": bool(r.get("checked", False)),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------
_FORMATS = {
    "step_ms": "{:.2f}", "step_p10_ms": "{:.2f}", "step_p90_ms": "{:.2f}", "train_s_per_epoch": "{:.2f}",
    "setup_s": "{:.2f}", "energy_per_step_j": "{:.3g}", "avg_power_w": "{:.0f}",
    "speedup": "{:.2f}x", "x_floor": "{:.2f}x", "test_accuracy": "{:.2%}", "peak_mem_mib": "{:,.0f}",
    "median_ms": "{:.4g}", "p10_ms": "{:.4g}", "p90_ms": "{:.4g}", "floor_ms": "{:.4g}", "in_channels": "{:.0f}",
    "bytes_per_element": "{:.4g}",
}
_HEADERS = {
    "step_ms": "step ms", "step_p10_ms": "p10", "step_p90_ms": "p90", "train_s_per_epoch": "train s/epoch",
    "setup_s": "setup s", "energy_per_step_j": "J/step", "avg_power_w": "W",
    "speedup": "speed-up", "x_floor": "x floor", "test_accuracy": "test acc", "peak_mem_mib": "peak MiB",
    "median_ms": "median ms", "p10_ms": "p10", "p90_ms": "p90", "floor_ms": "floor ms", "batch": "B", "bytes_per_element": "B/elem",
    "step_mode": "steps", "split_by": "split by", "in_channels": "in ch",
}
# Shown on the terminal and in markdown; the CSV keeps every column.
_HIDDEN = ("differences", "step_p10_ms", "step_p90_ms", "device", "implementation", "energy_note")


def format_cell(column: str, value) -> str:
    """One cell as text: empty for a missing number, the column's format otherwise; a status without
    its reason (the reasons are listed under the table)."""
    if column == "status" and isinstance(value, str):
        return value.split(":", 1)[0]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    fmt = _FORMATS.get(column)
    if fmt is not None:
        try:
            return fmt.format(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _shown(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in _HIDDEN]


# Columns that describe the config; when every row has the same value they move to the caption.
_CONFIG_COLUMNS = ("dataset", "arch", "neuron", "T", "batch", "precision", "step_mode", "options", "split_by",
                   "in_channels",
                   "device", "N", "direction", "mode")


def split_constant(table: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The columns to show, and the config columns equal in every row (shown once, as a caption)."""
    cols = _shown(table)
    constant = {}
    if len(table) > 1:
        for c in cols:
            shown = {format_cell(c, v) for v in table[c]}   # a missing cell ("") differs from any value
            if c in _CONFIG_COLUMNS and len(shown) == 1 and "" not in shown:
                constant[c] = shown.pop()
    empty = [c for c in cols if all(format_cell(c, v) == "" for v in table[c])]
    return [c for c in cols if c not in constant and c not in empty], constant


def _caption(constant: dict[str, str]) -> str:
    return ", ".join(f"{_HEADERS.get(k, k)} {v}" for k, v in constant.items())


def render(table: pd.DataFrame, title: str = "", console: Console | None = None) -> None:
    """Print ``table`` with rich: config columns equal in every row go to the caption; one row prints
    as a two-column (field, value) table; missing values are empty cells."""
    console = console or Console()
    if table.empty:
        console.print(f"{title}: no records" if title else "no records", markup=False)
        return
    if len(table) == 1:
        t = Table(title=title or None, show_header=False)
        t.add_column("field", style="bold")
        t.add_column("value", overflow="fold")
        row = table.iloc[0]
        for c in _shown(table):
            text = format_cell(c, row[c])
            if text:
                t.add_row(_HEADERS.get(c, c), Text(text))
    else:
        cols, constant = split_constant(table)
        t = Table(title=title or None, caption=_caption(constant) or None, box=box.SIMPLE_HEAD, padding=(0, 1))
        for c in cols:
            numeric = c in _FORMATS or c in ("T", "N", "batch")
            t.add_column(_HEADERS.get(c, c), justify="right" if numeric else "left",
                         overflow="fold", no_wrap=c != "status")
        for _, row in table.iterrows():
            t.add_row(*(Text(format_cell(c, row[c])) for c in cols))
    console.print(t)
    for line in differences_notes(table):
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def differences_notes(table: pd.DataFrame) -> list[str]:
    """Lines for under the table: each status's reason (n/a, error), each backend whose neuron
    differs from tfbench's and how, and why energy is missing where it is."""
    notes: dict[str, None] = {}
    for _, row in table.iterrows():
        status = str(row.get("status") or "")
        if ":" in status:
            notes[f"{row['backend']}: {status}"] = None
    seen: dict[str, str] = {}
    if "differences" in table.columns:
        for _, row in table.iterrows():
            diff = str(row.get("differences") or "")
            if diff and diff.lower() != "none" and row["backend"] not in seen:
                seen[row["backend"]] = diff
    energy = {str(n) for n in table.get("energy_note", []) if isinstance(n, str) and n}
    return (list(notes) + [_difference_note(backend, diff) for backend, diff in seen.items()]
            + [f"energy: {n}" for n in sorted(energy)])


def _difference_note(backend: str, diff: str) -> str:
    if backend == ANN_BACKEND:
        return f"{backend}: {diff}"
    if diff.lower().startswith("none ("):   # no difference, and how its options map onto tfbench's
        return f"{backend}: the same neuron as tfbench's (docs/neurons.md) {diff[len('none '):]}"
    return f"{backend} differs from tfbench's neuron (docs/neurons.md): {diff}"


def to_markdown(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table, with the backends' differences as notes below it."""
    if table.empty:
        return "_no records_\n"
    cols, constant = split_constant(table)
    numeric = [c in _FORMATS or c in ("T", "N", "batch") for c in cols]
    lines = [_caption(constant), ""] if constant else []
    lines += ["| " + " | ".join(_HEADERS.get(c, c) for c in cols) + " |",
              "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    for _, row in table.iterrows():
        cells = [format_cell(c, row[c]).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    notes = differences_notes(table)
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


def write(table: pd.DataFrame, stem: Path | str) -> list[Path]:
    """Save ``table`` as ``<stem>.csv`` (every column, raw numbers) and ``<stem>.md``; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv, index=False)
    md.write_text(to_markdown(table))
    return [csv, md]
