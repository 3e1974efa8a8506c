"""What the commands share: option types, one-line errors, list parsing, sweep files, the console.

A user's mistake (an unknown name, an impossible value, missing data) ends the command with exit
code 2 (a bad option) or 1 (the data or the machine), and ONE line on stderr that names the bad
value and the valid choices; never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10: the backport (pyproject pins it there)
    import tomli as tomllib

from .. import backends, data, models
from ..bench.train import NEURONS, PRECISIONS, STEP_MODES, best_device, resolve_device

# Option types: str Enums built from the registries, so --help lists the choices and Typer
# validates them (case-insensitively).
Dataset = Enum("Dataset", {name: name for name in data.DATASETS}, type=str)
Arch = Enum("Arch", {name: name for name in models.ARCHS}, type=str)
BackendName = Enum("BackendName", {name: name for name in backends.BACKENDS}, type=str)
Neuron = Enum("Neuron", {name: name for name in NEURONS}, type=str)
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)
StepMode = Enum("StepMode", {name: name for name in STEP_MODES}, type=str)
# The event datasets' options: every choice any registered dataset offers (each run checks its own).
SPLIT_BY_CHOICES = tuple(dict.fromkeys(c for spec in data.DATASETS.values() for c in spec.split_by_choices))
IN_CHANNELS_CHOICES = tuple(sorted({c for spec in data.DATASETS.values() for c in spec.channel_choices}))
SplitBy = Enum("SplitBy", {name: name for name in SPLIT_BY_CHOICES}, type=str)
InChannels = Enum("InChannels", {str(n): str(n) for n in IN_CHANNELS_CHOICES}, type=str)

# The training step's speed options (bench/train.py RunConfig), the same for run, compare and profile.
CompileFlag = Annotated[bool, typer.Option("--compile", help=(
    "torch.compile the model (default mode); the first steps compile and are not timed."))]
CudaGraphsFlag = Annotated[bool, typer.Option("--cuda-graphs", help=(
    "Capture the whole training step (encode, forward, backward, Adam) in one CUDA graph after two eager "
    "warm-up steps and replay it: no per-op launch cost. GPU only; fp32 or bf16."))]
ChannelsLastFlag = Annotated[bool, typer.Option("--channels-last", help=(
    "Run convs and BN on NHWC (channels-last) tensors; the neurons see the same memory (no copy)."))]

DIRECTIONS = ("forward", "backward", "both")
LAYER_MODES = ("eager", "graph")
DEFAULT_BASELINE = "torch"   # the plain PyTorch loop over T: always installed, the serial baseline


class UserError(TyperException):
    """A mistake the user can fix: printed as one line, exit code 2 (bad option) or 1 (data, machine)."""

    def __init__(self, message: str, exit_code: int = 2):
        self.message = " ".join(str(message).split())
        super().__init__(self.message)
        self.exit_code = exit_code

    def format_message(self) -> str:
        return self.message


def fail(message: str, exit_code: int = 2) -> NoReturn:
    raise UserError(message, exit_code)


# The command line this invocation was given (after the program name): what `--nproc N` re-launches.
RAW_ARGS: list[str] = []


class OneLineErrors(TyperGroup):
    """The app's group: usage errors print as one line ('Error: ...'), without the usage block or box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        RAW_ARGS[:] = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                              **extra)
        except TyperException as e:      # typer's (vendored click's) usage errors, and UserError
            message = e.format_message() if hasattr(e, "format_message") else str(e)
            message = message.replace("Value error, ", "")   # pydantic-style prefix of typer's enum errors
            print(f"Error: {' '.join(message.split())}", file=sys.stderr)
            if not standalone_mode:
                raise
            sys.exit(getattr(e, "exit_code", 1))
        except typer.Abort:
            print("Aborted.", file=sys.stderr)
            if not standalone_mode:
                raise
            sys.exit(130)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


# Width of tables when stdout is not a terminal (CI logs, files): wide enough for a compare table.
PIPE_WIDTH = 200


def console() -> Console:
    """Where tables go (stdout); progress and notes go to stderr."""
    c = Console(markup=False)
    return c if c.is_terminal else Console(width=PIPE_WIDTH, markup=False)


def err_console() -> Console:
    """Progress and notes (stderr), plain text: a bracket in a message is not rich markup."""
    return Console(stderr=True, markup=False, highlight=False)


def device_option(value: str | None) -> str | None:
    """Typer callback: ``cpu``, ``cuda`` or ``cuda:N`` that exists here (None: the best device present)."""
    if value is None:
        return None
    try:
        return str(resolve_device(value))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def pick_device(value: str | None) -> str:
    return value if value is not None else best_device()


def split_list(value: str | Sequence[Any] | None) -> list[str]:
    """``"a,b, c"`` (or a list from a sweep file) -> ``["a", "b", "c"]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def choose(what: str, value: str, choices: Sequence[str]) -> str:
    """The registry spelling of ``value`` among ``choices`` (case-insensitive); else a one-line error."""
    for c in choices:
        if c.lower() == str(value).strip().lower():
            return c
    fail(f"unknown {what} {value!r}; choose from: {', '.join(choices)}")


def choose_list(what: str, value: str | Sequence[Any] | None, choices: Sequence[str]) -> list[str]:
    items = split_list(value)
    if not items:
        fail(f"no {what} given; choose from: {', '.join(choices)}")
    return list(dict.fromkeys(choose(what, v, choices) for v in items))


def int_list(what: str, value: str | int | Sequence[Any] | None, minimum: int = 1) -> list[int]:
    items = [value] if isinstance(value, int) else split_list(value)
    out = []
    for v in items:
        try:
            n = int(str(v).replace("_", ""))
        except ValueError:
            fail(f"{what} must be whole numbers separated by commas, got {v!r}")
        if n < minimum:
            fail(f"{what} must be >= {minimum}, got {n}")
        out.append(n)
    if not out:
        fail(f"no {what} given")
    return list(dict.fromkeys(out))


def installed_backends() -> list[str]:
    """Every registered backend whose library is installed."""
    return [name for name, b in backends.BACKENDS.items() if b.distribution is None or b.version() is not None]


def backend_list(value: str | Sequence[Any] | None) -> list[str]:
    """``--backends a,b,c`` checked against the registry; default every installed backend."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return installed_backends()
    return choose_list("backend", value, list(backends.BACKENDS))


def explicit(ctx: typer.Context) -> set[str]:
    """Names of the options the user gave on the command line (not defaults)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.add(name)
    return given


def read_sweep(path: Path) -> dict[str, Any]:
    """A sweep file (TOML): ``kind``, ``[defaults]`` and ``[[grid]]`` tables; one-line error if unreadable."""
    if not path.is_file():
        configs = sorted(p.name for p in Path("configs").glob("*.toml")) if Path("configs").is_dir() else []
        fail(f"config file {str(path)!r} not found" + (f"; found in configs/: {', '.join(configs)}" if configs else ""),
             2)
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        fail(f"config file {str(path)!r} is not valid TOML: {e}", 2)
    kind = doc.get("kind", "run")
    if kind not in ("run", "layer"):
        fail(f"config file {str(path)!r}: unknown kind {kind!r}; choose from: run, layer")
    grid = doc.get("grid", [{}])
    if not isinstance(grid, list) or not all(isinstance(g, dict) for g in grid):
        fail(f"config file {str(path)!r}: [[grid]] must be a list of tables")
    return {"kind": kind, "defaults": dict(doc.get("defaults", {})), "grid": grid,
            "description": doc.get("description", "")}


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a registry ValueError or a data error becomes one line (exit 2 and 1)."""
    try:
        return fn()
    except data.DataError as e:
        fail(str(e), 1)
