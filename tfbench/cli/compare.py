"""``tfbench compare``: every backend on the same training config(s); one table of time, speed-up,
accuracy and memory. A sweep file (``--config configs/table1.toml``) gives a grid of configs."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import data, models
from ..bench.progress import RichReporter
from ..bench.train import (
    ANN_BACKEND,
    NEURONS,
    PRECISIONS,
    STEP_MODES,
    RunConfig,
    check_data,
    event_dataset_names,
    run_sweep,
)
from ..data import POOL_BATCHES
from ..report import tables
from ..results.store import Store, load
from .common import (
    DEFAULT_BASELINE,
    ChannelsLastFlag,
    CompileFlag,
    CudaGraphsFlag,
    backend_list,
    choose,
    choose_list,
    console,
    device_option,
    err_console,
    explicit,
    fail,
    guarded,
    int_list,
    pick_device,
    read_sweep,
    split_list,
)

# Keys a sweep file may set (the options' long names with underscores; "T" for --time-steps).
RUN_KEYS = ("dataset", "arch", "neuron", "backends", "baseline", "device", "time_steps", "batch_size", "epochs",
            "max_steps", "lr", "seed", "precision", "step_mode", "data_root", "download", "synthetic", "ann_floor",
            "split_by", "in_channels", "compile", "cuda_graphs", "channels_last")
GRID_KEYS = ("dataset", "arch", "neuron", "time_steps", "batch_size", "precision", "step_mode", "split_by",
             "in_channels", "compile", "cuda_graphs", "channels_last")
FLAGS = ("compile", "cuda_graphs", "channels_last")   # on/off options; a sweep file may list both


def _key(name: str) -> str:
    name = name.replace("-", "_")
    return "time_steps" if name == "T" else name


def sweep_values(cli: dict[str, Any], given: set[str], defaults: dict[str, Any], grid: list[dict[str, Any]],
                 allowed: tuple[str, ...], source: str) -> list[dict[str, Any]]:
    """One dict of option values per ``[[grid]]`` entry: CLI defaults < file defaults < entry < CLI given."""
    out = []
    for entry in grid or [{}]:
        merged = dict(cli)
        for layer in (defaults, entry):
            for k, v in layer.items():
                k2 = _key(k)
                if k2 not in allowed:
                    fail(f"{source}: unknown key {k!r}; choose from: {', '.join(allowed)}")
                merged[k2] = v
        merged.update({k: cli[k] for k in given if k in cli})
        out.append(merged)
    return out


def run_configs(values: dict[str, Any]) -> tuple[list[RunConfig], list[str], str]:
    """The RunConfigs of one grid entry (every combination x every backend, + the ANN floor), the
    backends and the baseline."""
    names = backend_list(values["backends"])
    baseline = choose("baseline", values["baseline"] or (DEFAULT_BASELINE if DEFAULT_BASELINE in names else names[0]),
                      names)
    datasets = choose_list("dataset", values["dataset"], list(data.DATASETS))
    archs = choose_list("arch", values["arch"], list(models.ARCHS))
    neurons = choose_list("neuron", values["neuron"], list(NEURONS))
    precisions = choose_list("precision", values["precision"], list(PRECISIONS))
    step_modes = choose_list("step mode", values["step_mode"], list(STEP_MODES))
    Ts = int_list("T", values["time_steps"])
    batch_sizes = int_list("batch size", values["batch_size"])
    epochs = int_list("epochs", values["epochs"])[0]
    max_steps = None if values["max_steps"] in (None, 0, "") else int_list("max steps", values["max_steps"])[0]
    device = pick_device(device_option(values["device"]) if values["device"] is not None else None)
    split_bys, channels = _event_options(values, datasets)
    flags = [dict(zip(FLAGS, combo)) for combo in itertools.product(*(bool_list(f, values.get(f)) for f in FLAGS))]
    configs: list[RunConfig] = []
    for ds, arch, neuron, T, B, prec, mode, flag in itertools.product(datasets, archs, neurons, Ts, batch_sizes,
                                                                      precisions, step_modes, flags):
        # --split-by and --in-channels apply to the event datasets of the grid; an image dataset keeps its own
        events = data.get(ds).events
        for split_by, in_channels in itertools.product(split_bys if events else [None],
                                                       channels if events else [None]):
            common = dict(dataset=ds, neuron=neuron, device=device, T=T, batch_size=B, epochs=epochs,
                          max_steps=max_steps, lr=float(values["lr"]), seed=int(values["seed"]), precision=prec,
                          synthetic=bool(values["synthetic"]), step_mode=mode, data_root=str(values["data_root"]),
                          download=bool(values["download"]), split_by=split_by, in_channels=in_channels, **flag)
            if models.get(arch).spiking:
                configs += [RunConfig(arch=arch, backend=b, **common) for b in names]
            if values["ann_floor"] or not models.get(arch).spiking:
                configs.append(RunConfig(arch=models.ann_twin(arch), backend=ANN_BACKEND, **common))
    for cfg in configs:
        try:
            cfg.normalized()
        except ValueError as e:
            fail(str(e))
    return configs, names, baseline


def bool_list(what: str, value: Any) -> list[bool]:
    """An on/off option as a list: a bool, or a list of them from a sweep file (both: compare on and off)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        if isinstance(v, bool) or v is None:
            out.append(bool(v))
        elif str(v).strip().lower() in ("true", "on", "yes", "1", "false", "off", "no", "0"):
            out.append(str(v).strip().lower() in ("true", "on", "yes", "1"))
        else:
            fail(f"{what.replace('_', '-')} must be true or false (or a list of them), got {v!r}")
    return list(dict.fromkeys(out)) or [False]


def _event_options(values: dict[str, Any], datasets: list[str]) -> tuple[list[str | None], list[int | None]]:
    """``--split-by`` and ``--in-channels`` as lists ([None]: the default); an error if given for a grid
    without an event dataset (``--in-channels 3`` is every dataset's default and always fine)."""
    split_bys = split_list(values.get("split_by"))
    channels = [] if values.get("in_channels") in (None, "") else int_list("in-channels", values["in_channels"])
    events = [d for d in datasets if data.get(d).events]
    if not events:
        valid = ", ".join(event_dataset_names())
        if split_bys:
            fail(f"--split-by applies only to the event-camera datasets ({valid}); the datasets here: "
                 f"{', '.join(datasets)}")
        if set(channels) - {3}:
            fail(f"--in-channels {','.join(map(str, channels))} applies only to the event-camera datasets ({valid}); "
                 f"{', '.join(datasets)} feed the 3-channel stem (in-channels 3)")
    return list(dict.fromkeys(split_bys)) or [None], channels or [None]


def unique(configs: list[RunConfig]) -> list[RunConfig]:
    """Configs without repeats (the ANN floor is the same run for every neuron), first seen first."""
    seen: dict[tuple, RunConfig] = {}
    for cfg in configs:
        n = cfg.normalized()
        seen.setdefault((n.dataset, n.arch, n.backend, n.neuron, n.T, n.batch_size, n.precision, n.step_mode,
                         n.split_by, n.in_channels, n.options), cfg)
    return list(seen.values())


def _preflight(configs: list[RunConfig]) -> None:
    """Open each real dataset once before anything runs, so missing files stop the sweep at once."""
    seen = set()
    for cfg in configs:
        key = (cfg.dataset, cfg.data_root, cfg.T, cfg.synthetic, cfg.split_by)
        if key not in seen:
            seen.add(key)
            check_data(cfg)


def compare(
    ctx: typer.Context,
    backends: Annotated[str | None, typer.Option(show_default="every installed backend", help=(
        "Backends to compare, comma-separated: tfbench, torch, spikingjelly, spikingjelly-torch, snntorch, "
        "norse."))] = None,
    baseline: Annotated[str | None, typer.Option(show_default=f"{DEFAULT_BASELINE} if compared, else the first",
                                                 help="Backend the speed-ups are taken against.")] = None,
    config: Annotated[Path | None, typer.Option(help=(
        "A sweep file (TOML, e.g. configs/table1.toml): \\[defaults] and \\[\\[grid]] tables of these options "
        "(lists make a grid); options given on the command line override it."))] = None,
    ann_floor: Annotated[bool, typer.Option("--ann-floor", help=(
        "Also train the ANN twin (ResNet with ReLU) at batch T*B: the floor row, where the neuron costs "
        "nothing."))] = False,
    dataset: Annotated[str, typer.Option(help="Datasets, comma-separated: MNIST, CIFAR-10, N-MNIST, DvsGesture.")]
    = "MNIST",
    arch: Annotated[str, typer.Option(help=(
        "Networks, comma-separated: Spiking-ResNet18/34/50 (or ResNet18/34/50: the ANN only)."))]
    = "Spiking-ResNet18",
    neuron: Annotated[str, typer.Option(help="Neurons, comma-separated: LIF (the paper's preset), IF.")] = "LIF",
    device: Annotated[str | None, typer.Option(show_default="the best device present",
                                               help="cpu, cuda or cuda:N.")] = None,
    time_steps: Annotated[str, typer.Option("-T", "--time-steps", help="Time steps, comma-separated (e.g. 4,32).")]
    = "32",
    batch_size: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "100",
    epochs: Annotated[int, typer.Option(help="Epochs per run (>= 1).")] = 5,
    max_steps: Annotated[int | None, typer.Option(show_default="the whole split", help=(
        "Cap on training steps per epoch (>= 1); also caps the test batches."))] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate (> 0).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed (the same initial weights for every backend).")] = 0,
    precision: Annotated[str, typer.Option(help="Precisions, comma-separated: fp32, bf16, fp16 (autocast).")]
    = "fp32",
    step_mode: Annotated[str, typer.Option(help=(
        "Step modes, comma-separated: multi (all T steps per neuron call), single (network stepped per "
        "time step)."))] = "multi",
    split_by: Annotated[str | None, typer.Option(show_default="number", help=(
        "N-MNIST and DvsGesture only: how their events are cut into T frames, comma-separated: number (equal "
        "event counts, the paper's), time (equal durations). Applies to the event datasets of the grid; an "
        "error if there are none."))] = None,
    in_channels: Annotated[str | None, typer.Option(show_default="3", help=(
        "N-MNIST and DvsGesture only: input channels, comma-separated: 3 (the 2 polarities plus a zero channel, "
        "for the 3-channel stem, as the paper) or 2 (a 2-channel stem). MNIST and CIFAR-10 keep 3."))] = None,
    data_root: Annotated[Path, typer.Option(help=(
        "Root folder of the datasets (see tfbench run --help for the layout)."))] = Path("data"),
    download: Annotated[bool, typer.Option("--download", help="Fetch missing MNIST/CIFAR-10 into --data-root.")]
    = False,
    synthetic: Annotated[bool, typer.Option("--synthetic", help=(
        "Random data of the real shapes and class counts: MNIST/CIFAR-10 made on the device per batch; "
        f"N-MNIST/DvsGesture a fixed pool of at most {POOL_BATCHES} batches per split, made once on the device "
        "before each run and cycled through. Step times never include making or loading a batch."))] = False,
    compile: CompileFlag = False,
    cuda_graphs: CudaGraphsFlag = False,
    channels_last: ChannelsLastFlag = False,
    out: Annotated[Path, typer.Option(help=(
        "Results folder: records go to OUT/runs.jsonl, the table to OUT/<config or 'compare'>.csv and .md."))]
    = Path("results"),
    force: Annotated[bool, typer.Option("--force", help="Run configs again even if OUT already has them.")] = False,
) -> None:
    """Train the same network with every backend on the same config(s); print and save one table."""
    cli = {k: v for k, v in ctx.params.items() if k not in ("config", "out", "force")}
    given = explicit(ctx) - {"config", "out", "force"}
    if config is not None:
        sweep = read_sweep(config)
        if sweep["kind"] == "layer":
            from .layer import run_layer_grid

            run_layer_grid(sweep, cli_overrides={k: cli[k] for k in given}, out=out, force=force,
                           stem=config.stem)
            return
        entries = sweep_values(cli, given, sweep["defaults"], sweep["grid"], RUN_KEYS, str(config))
    else:
        entries = [cli]
    configs: list[RunConfig] = []
    baselines = []
    for values in entries:
        c, _, b = run_configs(values)
        configs += c
        baselines.append(b)
    configs = unique(configs)
    baseline_name = baselines[0]
    guarded(lambda: _preflight(configs))
    store = Store(out)
    err = err_console()
    err.print(f"tfbench compare: {len(configs)} runs on {configs[0].device}; baseline {baseline_name}; "
              f"results in {store.runs.path}", highlight=False, soft_wrap=True)
    records = guarded(lambda: run_sweep(configs, store, force=force, reporter=RichReporter(err),
                                        on_skip=lambda r: err.print(f"skip (done): {r.arch} {r.backend} {r.dataset} "
                                                                    f"T={r.T} B={r.batch_size} {r.precision} "
                                                                    f"{r.options}"
                                                                    + (f" split-by {r.split_by} in-ch {r.in_channels}"
                                                                       if r.split_by else ""),
                                                                    highlight=False, soft_wrap=True)))
    keys = [r.key for r in records]
    df = load(store.runs.path, kind="run")
    df = df[df["key"].isin(keys)]
    table = tables.run_table(df, baseline_name)
    tables.render(table, title=f"tfbench compare (speed-up over {baseline_name})", console=console())
    paths = tables.write(table, Path(out) / (config.stem if config is not None else "compare"))
    err.print("saved " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)
