"""``tfbench compare``: every backend on the same training config(s); one table of time, speed-up,
accuracy, memory and energy. A sweep file (``--config configs/table1.toml``) gives a grid of configs.

Values merge as: the schema's defaults < the file's ``[defaults]`` < one ``[[grid]]`` entry < the
options given on the command line. Every value is parsed strictly by the run schema; a sweep file
may also set ``baseline`` and ``ann_floor`` (this command's own options). All of it is checked, and
every real dataset opened once, before the first run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..results.schema import PARALLEL_FIELDS, RunConfig
from .common import (
    DEFAULT_BASELINE,
    backend_list,
    choose,
    console,
    err_console,
    fail,
    guarded,
    output_folder,
    read_sweep,
)
from .options import config_options

# This command's own options that a sweep file may set, with their types.
SWEEP_OPTIONS = {"baseline": str, "ann_floor": bool}


def _sweep_values(entry: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A sweep file table's values, parsed: ``(run fields, this command's options)``."""
    from ..bench.config import parse_value
    from ..results.schema import config_fields, option

    run_keys = {option(n).grid_key or n: n for n in config_fields() if option(n).cli}
    fields, own = {}, {}
    for key, value in entry.items():
        if key in SWEEP_OPTIONS:
            typ = SWEEP_OPTIONS[key]
            if not isinstance(value, typ) or (typ is str and not value.strip()):
                kind = "true or false" if typ is bool else "a backend name"
                fail(f"{where}{key} must be {kind}, got {value!r}")
            own[key] = value
        elif key in run_keys:
            try:
                fields[run_keys[key]] = parse_value(run_keys[key], value, where, label=key)
            except ValueError as e:
                fail(str(e))
        else:
            fail(f"{where}unknown key {key!r}; choose from: {', '.join([*run_keys, *SWEEP_OPTIONS])}")
    return fields, own


def _configs(fields: dict[str, Any], ann_floor: bool) -> list[RunConfig]:
    """The runs of one grid entry: every combination, with every backend, and each ANN twin.

    ``split_by`` and ``in_channels`` apply to the grid's event-camera datasets; its image datasets
    keep their own (an error only when the grid has no event dataset at all)."""
    import dataclasses

    from .. import data, models
    from ..bench.config import expand

    fields = {**fields, "backend": fields.get("backend", backend_list(None))}
    datasets = fields.get("dataset", RunConfig.dataset)
    has_events = any(data.get(d).events for d in (datasets if isinstance(datasets, list) else [datasets]))
    spiking, twins = [], []
    for cfg in expand(fields):
        if has_events and not data.get(cfg.dataset).events:
            cfg = dataclasses.replace(cfg, split_by=None, in_channels=None)
        arch = models.get(cfg.arch)
        if arch.spiking:
            spiking.append(cfg)
        if ann_floor or not arch.spiking:   # a lean run's twin is the plain ANN (it has nothing to fold)
            twins.append(dataclasses.replace(cfg, arch=models.ann_twin(cfg.arch),
                                             **({"lean": False} if arch.spiking else {})))
    return spiking + twins


def _normalized(configs: list[tuple[RunConfig, str]]) -> list[RunConfig]:
    """Each config checked (one line naming the first bad one, after its ``where``: the sweep file's grid
    entry it came from, or ""), repeats dropped, first seen first."""
    from ..bench.config import normalize

    seen: dict[RunConfig, RunConfig] = {}
    for cfg, where in configs:
        try:
            seen.setdefault(normalize(cfg), cfg)
        except ValueError as e:
            fail(f"{where}{e}")
    return list(seen)


def _preflight(configs: list[RunConfig]) -> None:
    """Open each real dataset once before anything runs, so missing files stop the sweep at once."""
    from ..bench.train import check_data

    seen = set()
    for cfg in configs:
        key = (cfg.dataset, cfg.data_root, cfg.T, cfg.synthetic, cfg.split_by)
        if key not in seen:
            seen.add(key)
            check_data(cfg)


@config_options(grid=True, exclude=PARALLEL_FIELDS, defaults={"backend": "every registered backend"})
def compare(
    ctx: typer.Context,
    values: dict,
    baseline: Annotated[str | None, typer.Option(show_default=f"{DEFAULT_BASELINE} if compared, else the first",
                                                 help="Backend the speed-ups are taken against.")] = None,
    config: Annotated[Path | None, typer.Option(help=(
        "A sweep file (TOML, e.g. configs/table1.toml): \\[defaults] and \\[\\[grid]] tables of these options "
        "(lists make a grid); options given on the command line override it."))] = None,
    ann_floor: Annotated[bool, typer.Option("--ann-floor/--no-ann-floor", help=(
        "Also train the ANN twin (ResNet with ReLU) at batch T*B: the floor row, where the neuron costs "
        "nothing."))] = False,
    out: Annotated[Path, typer.Option(help=(
        "Results folder: records go to OUT/runs.jsonl, the table to OUT/<config or 'compare'>.csv and .md."))]
    = Path("results"),
    force: Annotated[bool, typer.Option("--force", help="Run configs again even if OUT already has them.")] = False,
) -> None:
    """Train the same network with every backend on the same config(s); print and save one table."""
    out = output_folder(out)
    given_own = {k: v for k, v in {"baseline": baseline, "ann_floor": ann_floor}.items() if _given(ctx, k)}
    sweep = read_sweep(config) if config is not None else None
    if sweep is not None and sweep["kind"] == "layer":
        fail(f"{sweep['where']} is a layer sweep (kind = \"layer\"); run it with tfbench layer --config {config}")
    configs, baseline_name = plan(values, given_own, sweep)
    guarded(lambda: _preflight(configs))
    run_grid(configs, baseline_name, out, force, stem=config.stem if config is not None else "compare")


def plan(values: dict[str, Any], own: dict[str, Any], sweep: dict[str, Any] | None) -> tuple[list[RunConfig], str]:
    """The runs a compare makes, checked, and its baseline: ``values`` are the run fields given on the
    command line, ``own`` this command's options given there (baseline, ann_floor), ``sweep`` a sweep
    file's contents (``read_sweep``) or None. A one-line error names the first bad value."""
    entries: list[tuple[dict, dict, str]] = []
    if sweep is not None:
        where = sweep["where"] + ": "
        defaults = _sweep_values(sweep["defaults"], where + "[defaults] ")
        for i, entry in enumerate(sweep["grid"], 1):
            fields, opts = _sweep_values(entry, f"{where}[[grid]] #{i} ")
            entries.append(({**defaults[0], **fields, **values}, {**defaults[1], **opts, **own},
                            f"{where}[[grid]] #{i}: "))
    else:
        entries.append((values, own, ""))
    from .. import models

    configs, baselines = [], []
    for fields, opts, where in entries:
        entry_configs = _configs(fields, bool(opts.get("ann_floor", False)))
        names = list(dict.fromkeys(c.backend for c in entry_configs if models.get(c.arch).spiking))
        default = DEFAULT_BASELINE if DEFAULT_BASELINE in names else (names[0] if names else DEFAULT_BASELINE)
        baselines.append(choose("baseline", opts.get("baseline") or default, names or [default]))
        configs += [(c, where) for c in entry_configs]
    return _normalized(configs), baselines[0]


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def run_grid(configs: list[RunConfig], baseline: str, out: Path, force: bool, stem: str) -> None:
    """Run ``configs`` (resuming), then print and save the table of every one of them."""
    from ..bench.progress import RichReporter
    from ..bench.sweep import run_sweep
    from ..bench.train import Interrupted
    from ..report import tables
    from ..results.store import Store, load

    store = Store(out)
    err = err_console()
    err.print(f"tfbench compare: {len(configs)} runs on {configs[0].device}; baseline {baseline}; "
              f"results in {store.runs.path}", highlight=False, soft_wrap=True)

    def skipped(r) -> None:
        err.print(f"skip (done): {r.arch} {r.backend} {r.dataset} T={r.T} B={r.batch_size} {r.precision} "
                  f"{r.options}" + (f" split-by {r.split_by} in-ch {r.in_channels}" if r.split_by else ""),
                  highlight=False, soft_wrap=True)

    try:
        records = guarded(lambda: run_sweep(configs, store, force=force, reporter=RichReporter(err),
                                            on_skip=skipped, baseline=baseline))
    except Interrupted as e:
        done = len(getattr(e, "done", []))
        raise KeyboardInterrupt(f"{done} of {len(configs)} runs are recorded in {store.runs.path}; run the same "
                                "command again to resume the rest") from None
    df = load(store.runs.path, kind="run")
    df = df[df["key"].isin([r.key for r in records])]
    table = tables.run_table(df, baseline)
    tables.render(table, title=f"tfbench compare (speed-up over {baseline})", console=console())
    if baseline and not table.empty and not ((table["backend"] == baseline) & (table["status"] == "ok")).any():
        why = sorted({str(s) for s in table.loc[table["backend"] == baseline, "status"]}) or ["not in this sweep"]
        err.print(f"no speed-up column: the baseline {baseline} has no finished run here ({'; '.join(why)}); "
                  f"choose another with --baseline", highlight=False, soft_wrap=True)
    paths = tables.write(table, Path(out) / stem)
    err.print("saved " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)
