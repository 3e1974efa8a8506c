"""``tfbench layer``: one LIF layer timed alone over T, N, precision and direction (the paper's Fig. 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .common import (
    DEFAULT_BASELINE,
    DIRECTIONS,
    LAYER_MODES,
    backend_list,
    choose,
    choose_list,
    console,
    device_option,
    err_console,
    explicit,
    fail,
    int_list,
    output_folder,
    pick_device,
    read_sweep,
)

LAYER_KEYS = ("backends", "baseline", "time_steps", "neurons", "precision", "direction", "mode", "device", "neuron")


class LayerProgress:
    """The progress callable handed to ``run_layer_sweep``: prints one line per finished record."""

    def __init__(self, console: Console, total: int):
        self.console = console
        self.total = total
        self.done = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        item = args[-1] if args else next(iter(kwargs.values()), None)
        if item is None or not hasattr(item, "backend"):
            return
        self.done += 1
        t = f"{item.median_ms:.4g} ms" if getattr(item, "median_ms", None) is not None else ""
        from ..report import tables

        self.console.print(f"[{self.done}/{self.total}] {item.backend} {item.precision} T={item.T} N={item.N} "
                           f"{item.direction} {item.mode}: {tables.shown_status(item.status)} {t}".rstrip(),
                           highlight=False, soft_wrap=True)


def sweep_layers(values: dict[str, Any], out: Path, force: bool, stem: str | None) -> "pd.DataFrame":
    """Validate ``values`` (option name -> value), run ``run_layer_sweep``, print the table and return it;
    saved as OUT/<stem>.csv and .md unless ``stem`` is None."""
    from ..bench.config import NEURONS
    from ..report import tables
    from ..results.store import Store, load

    names = backend_list(values.get("backends"))
    baseline = values.get("baseline") or (DEFAULT_BASELINE if DEFAULT_BASELINE in names else names[0])
    baseline = choose("baseline", baseline, names)
    Ts = int_list("T", values.get("time_steps"))
    Ns = int_list("N", values.get("neurons"))
    precisions = choose_list("precision", values.get("precision"), ["fp32", "bf16", "fp16"])
    directions = choose_list("direction", values.get("direction"), list(DIRECTIONS))
    modes = choose_list("mode", values.get("mode"), list(LAYER_MODES))
    neuron = choose("neuron", values.get("neuron") or "LIF", list(NEURONS))
    raw_device = values.get("device")
    device = pick_device(device_option(raw_device) if raw_device is not None else None)

    from ..bench.layer import (
        run_layer_sweep,  # the lead's sweep; imported here so --help stays fast
    )

    store = Store(out)
    err = err_console()
    total = len(names) * len(Ts) * len(Ns) * len(precisions) * len(directions) * len(modes)
    err.print(f"tfbench layer: {total} cells on {device}; results in {store.layer.path}", highlight=False,
              soft_wrap=True)
    records = run_layer_sweep(backends=names, Ts=Ts, Ns=Ns, precisions=precisions, directions=directions,
                              device=device, modes=modes, params=NEURONS[neuron], store_path=store.layer.path,
                              force=force, progress=LayerProgress(err, total))
    df = load(store.layer.path, kind="layer") if store.layer.path.exists() else None
    if df is None or df.empty:
        fail(f"the layer sweep wrote no records to {store.layer.path}", 1)
    # this sweep's cells, run now or earlier (a resumed sweep returns only the cells it ran)
    mine = (df["backend"].isin(names) & df["T"].isin(Ts) & df["N"].isin(Ns) & df["precision"].isin(precisions)
            & df["direction"].isin(directions) & df["mode"].isin(modes) & (df["device"] == device)
            & (df["neuron"] == repr(NEURONS[neuron].validate())))   # as bench/layer.py records the neuron
    mine |= df["key"].isin([r.key for r in records])
    table = tables.layer_table(df[mine], baseline)
    tables.render(table, title=f"tfbench layer (speed-up over {baseline})", console=console())
    if stem is not None:
        paths = tables.write(table, Path(out) / stem)
        err.print("saved " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)
    return table


def run_layer_grid(sweep: dict[str, Any], cli_overrides: dict[str, Any], out: Path, force: bool, stem: str) -> None:
    """A ``kind = "layer"`` sweep file: each ``[[grid]]`` entry over the file's defaults, CLI options last;
    one table of every entry's rows (each entry's speed-ups over its own baseline) saved as OUT/<stem>."""
    import pandas as pd

    from ..report import tables

    parts = []
    for entry in sweep["grid"] or [{}]:
        values: dict[str, Any] = {}
        for layer in (sweep["defaults"], entry):
            for k, v in layer.items():
                k2 = {"T": "time_steps", "N": "neurons"}.get(k, k.replace("-", "_"))
                if k2 not in LAYER_KEYS:
                    fail(f"layer sweep file: unknown key {k!r}; choose from: {', '.join(LAYER_KEYS)}")
                values[k2] = v
        values.update({k: v for k, v in cli_overrides.items() if k in LAYER_KEYS})
        parts.append(sweep_layers(values, out, force, None))
    table = pd.concat([t for t in parts if not t.empty], ignore_index=True) if any(not t.empty for t in parts) \
        else pd.DataFrame()
    paths = tables.write(table, Path(out) / stem)
    err_console().print("saved " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)


def layer(
    ctx: typer.Context,
    backends: Annotated[str | None, typer.Option(show_default="every installed backend", help=(
        "Backends, comma-separated: tfbench, torch, spikingjelly, spikingjelly-torch, snntorch, norse."))] = None,
    time_steps: Annotated[str, typer.Option("-T", "--time-steps", help="Time steps, comma-separated.")]
    = "8,16,32,64,128",
    neurons: Annotated[str, typer.Option("-N", "--neurons", help="Neurons per layer, comma-separated.")] = "1000000",
    precision: Annotated[str, typer.Option(help="Precisions, comma-separated: fp32, bf16, fp16.")] = "fp32",
    direction: Annotated[str, typer.Option(help="What is timed, comma-separated: forward, backward, both.")]
    = "both",
    mode: Annotated[str, typer.Option(help=(
        "How it is launched, comma-separated: eager, graph (replayed from a CUDA graph)."))] = "eager",
    neuron: Annotated[str, typer.Option(help="LIF (the paper's preset) or IF.")] = "LIF",
    device: Annotated[str | None, typer.Option(show_default="the best device present",
                                               help="cpu, cuda or cuda:N.")] = None,
    baseline: Annotated[str | None, typer.Option(show_default=f"{DEFAULT_BASELINE} if swept, else the first",
                                                 help="Backend the table's speed-ups are taken against.")] = None,
    config: Annotated[Path | None, typer.Option(help=(
        "A sweep file (TOML, kind = \"layer\", e.g. configs/fig5.toml); command-line options override it."))]
    = None,
    out: Annotated[Path, typer.Option(help=(
        "Results folder: records go to OUT/layer.jsonl, the table to OUT/<config or 'layer'>.csv and .md."))]
    = Path("results"),
    force: Annotated[bool, typer.Option("--force", help="Time cells again even if OUT already has them.")] = False,
) -> None:
    """Time one LIF layer per backend over T and N (the paper's Fig. 5 sweep): median, spread, floor."""
    out = output_folder(out)
    given = explicit(ctx) - {"config", "out", "force"}
    values = {k: v for k, v in ctx.params.items() if k not in ("config", "out", "force")}
    if config is not None:
        sweep = read_sweep(config)
        if sweep["kind"] != "layer":
            fail(f"config file {str(config)!r} is a {sweep['kind']!r} sweep; run it with tfbench compare --config")
        run_layer_grid(sweep, {k: values[k] for k in given}, out, force, config.stem)
        return
    sweep_layers(values, out, force, "layer")
