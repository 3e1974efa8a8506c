"""The run configuration's values: strict parsing, grid expansion and validation, done once.

:class:`~tfbench.results.schema.RunConfig` declares the fields; this module knows the registries
that name their valid choices (``CHOICES``) and checks values from every source the same way:

- ``parse_value(name, value, where)``: one value (or, where the field is a grid field, a list of
  them) from the command line (text) or a sweep file (TOML values), typed strictly: a TOML string is
  not a boolean (``synthetic = "false"`` is refused, not read as true), ``seed = 1.5`` is not a whole
  number, ``epochs = [1, 2]`` is refused where the field takes one value, ``-T 4,,8`` has an empty item.
- ``expand(values, where)``: the configurations of one grid (every combination of the listed values).
- ``normalize(cfg)``: registry spellings, defaults that depend on the dataset, the device resolved,
  cross-field checks; ValueError naming the bad value and the valid choices.

Everything here runs before any training, timing or download.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from .. import backends, data, models
from ..ops.neurons import PLIF_PRESETS, PRESETS, LIFParams, PLIFParams
from ..results.schema import RunConfig, config_fields, field_type, option

# The neurons ``--neuron`` names: the paper's LIF preset (docs/neurons.md, "The paper's preset"), IF,
# and PLIF: the paper's neuron with its time constant learned (init_tau 1.25, docs/neurons.md "PLIF").
NEURONS: dict[str, LIFParams | PLIFParams] = {"LIF": PRESETS["paper"], "IF": PRESETS["if"],
                                             "PLIF": PLIF_PRESETS["paper"]}
ANN_BACKEND = "ann"   # the backend name recorded for an ANN arch (ReLU: no neuron library involved)


def _devices() -> list[str]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + (["cuda"] if count else []) + [f"cuda:{i}" for i in range(count)]


def _event_choices(attr: str) -> list[Any]:
    return list(dict.fromkeys(c for spec in data.DATASETS.values() for c in getattr(spec, attr)))


# The registries behind the choices a field names (results/schema.py Option.choices).
CHOICES: dict[str, Callable[[], Sequence[Any]]] = {
    "dataset": lambda: list(data.DATASETS),
    "arch": lambda: list(models.ARCHS),
    "backend": lambda: list(backends.BACKENDS),
    "neuron": lambda: list(NEURONS),
    "device": _devices,
    "split_by": lambda: _event_choices("split_by_choices"),
    "in_channels": lambda: sorted(_event_choices("channel_choices")),
}


def choices(name: str) -> list[Any] | None:
    """The valid values of the RunConfig field ``name`` (None: any value of its type)."""
    c = option(name).choices
    if c is None:
        return None
    return list(CHOICES[c]()) if isinstance(c, str) else list(c)


# ------------------------------------------------------------------------------------------------
# Parsing one value, strictly
# ------------------------------------------------------------------------------------------------
_WHOLE = re.compile(r"[+-]?\d+(_\d+)*")


def base_type(name: str) -> tuple[type, bool]:
    """(the field's type, whether None is allowed) for RunConfig field ``name``."""
    t = field_type(name)
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return args[0], True
    return t, False


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "a whole number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _scalar(name: str, value: Any, label: str, text: bool) -> Any:
    typ, optional = base_type(name)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{label} needs a value")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if text and str(value).strip().lower() in ("true", "false"):
            return str(value).strip().lower() == "true"
        raise ValueError(f"{label} must be true or false, got {value!r} ({_kind(value)})")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            out = value
        elif text and isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            out = int(value.strip().replace("_", ""))
        else:
            raise ValueError(f"{label} must be a whole number, got {value!r} ({_kind(value)})")
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        else:
            try:
                out = float(str(value).strip()) if text and isinstance(value, str) else None
            except ValueError:
                out = None
            if out is None:
                raise ValueError(f"{label} must be a number, got {value!r} ({_kind(value)})")
        if not math.isfinite(out):
            raise ValueError(f"{label} must be a finite number, got {value!r}")
    else:   # str
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label} must be a name, got {value!r} ({_kind(value)})")
        out = value.strip()
    opt = option(name)
    if opt.minimum is not None and out < opt.minimum:
        raise ValueError(f"{label} must be >= {opt.minimum:g}, got {out!r}")
    if opt.positive and not out > 0:
        raise ValueError(f"{label} must be > 0, got {out!r}")
    valid = choices(name)
    if valid is not None:
        for c in valid:
            if str(c).lower() == str(out).lower():
                return c
        raise ValueError(f"unknown {label} {value!r}; choose from: {', '.join(map(str, valid))}")
    return out


def parse_value(name: str, value: Any, where: str = "", *, text: bool = False, label: str | None = None) -> Any:
    """The RunConfig field ``name``'s value from ``value``: a list (duplicates dropped) for a grid
    field given several values, else one value. ``text``: ``value`` came from the command line
    (a grid field's items separated by commas); otherwise from a sweep file (TOML types, strictly).
    ``where`` prefixes the field's name in messages ("config file 'x.toml' [defaults]: "); ``label``
    replaces the name there (the command line's spelling, "--max-steps")."""
    opt = option(name)
    label = f"{where}{label or name}"
    if text and isinstance(value, str) and "," in value and not opt.grid and typing.get_origin(field_type(name)) is None \
            and field_type(name) is not str:
        raise ValueError(f"{label} takes one value, got {value!r}")
    if text and isinstance(value, str) and opt.grid:
        items = value.split(",")
        if any(not item.strip() for item in items):
            raise ValueError(f"{label} {value!r} has an empty item; give values separated by single commas")
        value = items if len(items) > 1 else items[0]
    if isinstance(value, (list, tuple)):
        if not opt.grid:
            raise ValueError(f"{label} takes one value, got a list {list(value)!r}")
        if not value:
            raise ValueError(f"{label} is an empty list; give at least one value")
        return list(dict.fromkeys(_scalar(name, v, label, text) for v in value))
    return _scalar(name, value, label, text)


def expand(values: dict[str, Any]) -> list[RunConfig]:
    """Every RunConfig of a grid: ``values`` maps field names to parsed values (lists: one config per
    item, all combinations, in order); fields not given keep their defaults."""
    unknown = set(values) - set(config_fields())
    if unknown:
        raise ValueError(f"unknown run option(s) {', '.join(sorted(unknown))}; choose from: "
                         f"{', '.join(config_fields())}")
    names = list(values)
    lists = [v if isinstance(v, list) else [v] for v in values.values()]
    return [RunConfig(**dict(zip(names, combo))) for combo in itertools.product(*lists)]


# ------------------------------------------------------------------------------------------------
# Validation of a whole configuration
# ------------------------------------------------------------------------------------------------
def normalize(cfg: RunConfig) -> RunConfig:
    """``cfg`` with canonical names and checked values; ValueError naming any bad one.

    ``split_by`` and ``in_channels`` get the dataset's defaults (for an image dataset ``split_by``
    becomes "", not applicable); the ANN twins record backend "ann" and neuron "ReLU"; ``device``
    None becomes the best device present.
    """
    values = {}
    ann = not models.get(cfg.arch).spiking
    for name in config_fields():
        value = getattr(cfg, name)
        if name in ("split_by", "in_channels", "device") and value in (None, ""):
            values[name] = None
            continue
        if ann and name in ("backend", "neuron"):
            continue    # an ANN twin has neither (recorded as "ann" and "ReLU" below)
        values[name] = parse_value(name, value)
        if isinstance(values[name], list):
            raise ValueError(f"{name} takes one value in a RunConfig, got {value!r}")
    arch = models.get(values["arch"])
    spec = data.get(values["dataset"])
    split_by, in_channels = _input_options(spec, values["split_by"], values["in_channels"], values["synthetic"])
    device = resolve_device(values["device"]) if values["device"] is not None else resolve_device(best_device())
    if values["cuda_graphs"] and device.type != "cuda":
        raise ValueError(f"cuda-graphs needs a CUDA device; got device {str(device)!r}")
    if values["cuda_graphs"] and values["precision"] == "fp16":
        raise ValueError("cuda-graphs works with precision fp32 or bf16, not fp16: fp16's gradient scaler "
                         "reads its overflow check on the host every step, which a CUDA graph cannot replay")
    from ..parallel.strategy import check_config

    check_config(values["parallel"], values["world_size"], values["chunks"], T=values["T"],
                 batch_size=values["batch_size"], train_size=spec.train_size, dataset=spec.name,
                 compile=values["compile"], cuda_graphs=values["cuda_graphs"],
                 micro_batches=values["micro_batches"])
    if spec.train_size and values["batch_size"] > spec.train_size:
        raise ValueError(f"batch size {values['batch_size']} is larger than the {spec.name} training set "
                         f"({spec.train_size} samples); choose 1..{spec.train_size}")
    if values["lean"]:
        _check_lean(arch, values)
    if not arch.spiking:
        values.update(backend=ANN_BACKEND, neuron="ReLU")
    return dataclasses.replace(cfg, **{**values, "split_by": split_by, "in_channels": in_channels,
                                       "device": str(device)})


def _check_lean(arch, values: dict[str, Any]) -> None:
    """ValueError when --lean cannot apply to this configuration (before any work)."""
    spiking = ", ".join(a for a, x in models.ARCHS.items() if x.spiking and not x.builder)
    if not arch.spiking:
        raise ValueError(f"lean folds BatchNorm into the spiking neurons; {arch.name} is an ANN (no neuron to fold "
                         f"into; --ann-floor runs the twin of a lean run as it is): choose from: {spiking}")
    if arch.builder is not None:
        raise ValueError(f"lean applies to tfbench's Spiking-ResNets, not {arch.name} (built by SpikingJelly); "
                         f"choose from: {spiking}")
    if values["step_mode"] != "multi":
        raise ValueError(f"lean runs all T steps of a layer at once: it needs step-mode multi, got "
                         f"{values['step_mode']!r}")
    if values["parallel"] == "temporal" and values["chunks"] != 1:
        raise ValueError(f"lean runs each layer's conv -> BatchNorm -> neuron as one node, its neurons in one chunk: "
                         f"got chunks {values['chunks']}; choose --chunks 1 (or leave --lean off)")


def lean_unavailable(backend) -> str | None:
    """Why --lean cannot run with ``backend`` here (its run is n/a: reason), or None."""
    if not backend.folds_norm:
        folding = ", ".join(n for n, b in backends.BACKENDS.items() if b.folds_norm)
        return f"lean folds BatchNorm into tfbench's neuron; {backend.name} cannot take it in (only {folding})"
    from ..ops import norm

    return norm.available()


def event_dataset_names() -> list[str]:
    """The registered datasets that are event-camera frames (``split_by`` and ``in_channels 2`` apply)."""
    return [name for name, spec in data.DATASETS.items() if spec.events]


def _input_options(spec, split_by: str | None, in_channels: int | None, synthetic: bool) -> tuple[str, int]:
    """``(split_by, in_channels)`` for ``spec``: defaults filled in, choices checked (ValueError naming them)."""
    events = ", ".join(event_dataset_names()) or "none registered"
    channels = spec.in_channels if in_channels is None else in_channels
    if not spec.events:
        if split_by is not None:
            raise ValueError(f"split-by {split_by!r} applies only to the event-camera datasets ({events}); "
                             f"{spec.name} has no events to cut into frames")
        if channels not in spec.channel_choices:
            raise ValueError(f"in-channels {channels} applies only to the event-camera datasets ({events}); "
                             f"{spec.name} feeds the {spec.in_channels}-channel stem "
                             f"(in-channels {spec.in_channels})")
        return "", channels
    split = split_by if split_by is not None else spec.split_by_choices[0]
    if split not in spec.split_by_choices:
        raise ValueError(f"unknown split-by {split!r} for {spec.name}; choose from: {', '.join(spec.split_by_choices)}")
    if synthetic and split != spec.split_by_choices[0]:
        raise ValueError(f"split-by {split!r} needs the real {spec.name} data: synthetic event frames are cut "
                         f"one way only (split-by {spec.split_by_choices[0]}, equal event counts per frame)")
    if channels not in spec.channel_choices:
        raise ValueError(f"in-channels {channels} is not possible for {spec.name}; "
                         f"choose from: {', '.join(map(str, spec.channel_choices))}")
    return split, channels


def resolve_device(name: str):
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch.device that exists here; ValueError naming the choices."""
    import torch

    name = str(name).strip().lower()
    available = ["cpu"] + ([f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [])
    choices_text = ", ".join(available[:1] + (["cuda"] if len(available) > 1 else []) + available[1:])
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; choose from: {choices_text}") from None
    if device.type == "cpu" and name == "cpu":
        return device
    if device.type == "cuda" and len(available) > 1:
        index = 0 if device.index is None else device.index
        if index < len(available) - 1:
            return torch.device("cuda", index)
        raise ValueError(f"device {name!r} does not exist here; choose from: {choices_text}")
    if device.type == "cuda":
        raise ValueError(f"device {name!r} is not available (no CUDA GPU here); choose from: {choices_text}")
    raise ValueError(f"unknown device {name!r}; choose from: {choices_text}")


def best_device() -> str:
    """The best device present: the first CUDA GPU, else the CPU."""
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def neuron_params(cfg: RunConfig) -> LIFParams | None:
    """The neuron of a normalized ``cfg`` (None for an ANN)."""
    return NEURONS.get(cfg.neuron)


def neuron_text(p: LIFParams | None) -> str:
    """The neuron's parameters as one line (recorded beside every run)."""
    if p is None:
        return ""
    return ", ".join(f"{k}={v}" for k, v in p.as_kwargs().items())
