"""What the commands share: one-line errors, the console, output folders, list parsing, sweep files.

A user's mistake (an unknown name, an impossible value, an unwritable folder, missing data) ends the
command with exit code 2 (a bad option) or 1 (the data or the machine), and ONE line on stderr that
names the bad value and the valid choices, before any training, timing or download; never a
traceback. Ctrl-C ends it with one line and exit code 130.

Nothing here imports torch: ``tfbench --help`` must stay fast.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10: the backport (pyproject pins it there)
    import tomli as tomllib

DIRECTIONS = ("forward", "backward", "both")
LAYER_MODES = ("eager", "graph")
DEFAULT_BASELINE = "torch"   # the plain PyTorch loop over T: always installed, the serial baseline
INTERRUPTED_EXIT = 130       # the shell's code for a command ended by Ctrl-C


class UserError(TyperException):
    """A mistake the user can fix: printed as one line, exit code 2 (bad option) or 1 (data, machine)."""

    def __init__(self, message: str, exit_code: int = 2):
        self.message = " ".join(str(message).split())
        super().__init__(self.message)
        self.exit_code = exit_code

    def format_message(self) -> str:
        return self.message


def workload(cfg, per_process: bool = False) -> str:
    """A run's T, batch, epochs (and steps), precision and speed options (a RunConfig): the part of its one-line
    header that ``tfbench run`` and its parallel form share."""
    steps = f"{cfg.max_steps} steps" if cfg.max_steps else "full"
    epochs = f"{cfg.epochs} epoch{'' if cfg.epochs == 1 else 's'}"
    options = "" if cfg.options == "eager" else ", " + cfg.options
    return (f"T={cfg.T}, batch {cfg.batch_size}{' per process' if per_process else ''}, {epochs} ({steps}), "
            f"{cfg.precision}{options}")


def fail(message: str, exit_code: int = 2) -> NoReturn:
    raise UserError(message, exit_code)


# The command line this invocation was given (after the program name): what `--nproc N` re-launches.
RAW_ARGS: list[str] = []


class OneLineErrors(TyperGroup):
    """The app's group: usage errors print as one line ('Error: ...'), without the usage block or box;
    Ctrl-C prints one line ("Interrupted: ...") and exits with 130."""

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
        except (typer.Abort, KeyboardInterrupt) as e:
            print(f"Interrupted: {interrupted_message(e)}", file=sys.stderr)
            if not standalone_mode:
                raise
            sys.exit(INTERRUPTED_EXIT)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


    def invoke(self, ctx: Any) -> Any:
        """The command; Ctrl-C inside it prints one line saying what was kept (typer would exit silently)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:
            print(f"Interrupted: {interrupted_message(e)}", file=sys.stderr)
            raise typer.Exit(INTERRUPTED_EXIT) from None


def interrupted_message(e: BaseException) -> str:
    """What an interruption left behind (the commands raise a KeyboardInterrupt whose text says it)."""
    cause = e if isinstance(e, KeyboardInterrupt) else (e.__cause__ or e.__context__)
    text = str(cause).strip() if isinstance(cause, KeyboardInterrupt) else ""
    return text or "stopped before anything was recorded"


# Width of tables when stdout is not a terminal (CI logs, files): wide enough for a compare table.
PIPE_WIDTH = 200


def console() -> Console:
    """Where tables go (stdout); progress and notes go to stderr."""
    c = Console(markup=False)
    return c if c.is_terminal else Console(width=PIPE_WIDTH, markup=False)


def err_console() -> Console:
    """Progress and notes (stderr), plain text: a bracket in a message is not rich markup."""
    return Console(stderr=True, markup=False, highlight=False)


def say(text: str) -> None:
    """One note on stderr."""
    err_console().print(text, highlight=False, soft_wrap=True)


def output_folder(path: Path, option: str = "--out") -> Path:
    """``path`` as a folder this process can write to (created if missing); else a one-line error.

    Checked before any work starts, so that a run's result is never lost at its end.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        fail(f"{option} {str(path)!r} is a file, not a folder; give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tfbench-write-check-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        fail(f"{option} {str(path)!r} cannot be written ({reason}); give a folder you can write to")
    return path


def device_option(value: str | None) -> str | None:
    """Typer callback: ``cpu``, ``cuda`` or ``cuda:N`` that exists here (None: the best device present)."""
    if value is None:
        return None
    from ..bench.config import resolve_device

    try:
        return str(resolve_device(value))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def pick_device(value: str | None) -> str:
    from ..bench.config import best_device

    return value if value is not None else best_device()


def split_list(value: str | Sequence[Any] | None, what: str = "the list") -> list[str]:
    """``"a,b, c"`` (or a list from a sweep file) -> ``["a", "b", "c"]``; an empty item is an error."""
    if value is None:
        return []
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value).split(",")
    if any(not v.strip() for v in items):
        fail(f"{what} {value!r} has an empty item; give values separated by single commas")
    return [v.strip() for v in items]


def choose(what: str, value: str, choices: Sequence[str]) -> str:
    """The registry spelling of ``value`` among ``choices`` (case-insensitive); else a one-line error."""
    for c in choices:
        if c.lower() == str(value).strip().lower():
            return c
    fail(f"unknown {what} {value!r}; choose from: {', '.join(choices)}")


def choose_list(what: str, value: str | Sequence[Any] | None, choices: Sequence[str]) -> list[str]:
    items = split_list(value, what)
    if not items:
        fail(f"no {what} given; choose from: {', '.join(choices)}")
    return list(dict.fromkeys(choose(what, v, choices) for v in items))


def int_list(what: str, value: str | int | Sequence[Any] | None, minimum: int = 1) -> list[int]:
    if isinstance(value, bool):
        fail(f"{what} must be whole numbers, got {value!r}")
    items = [value] if isinstance(value, int) else split_list(value, what)
    out = []
    for v in items:
        if isinstance(v, bool) or isinstance(v, float):
            fail(f"{what} must be whole numbers separated by commas, got {v!r}")
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
    from .. import backends

    return [name for name, b in backends.BACKENDS.items() if b.installed()]


def backend_list(value: str | Sequence[Any] | None) -> list[str]:
    """``--backends a,b,c`` checked against the registry; default every registered backend (the ones
    that cannot run here give n/a rows)."""
    from .. import backends

    if value is None or (isinstance(value, str) and not value.strip()):
        return list(backends.BACKENDS)
    return choose_list("backend", value, list(backends.BACKENDS))


def explicit(ctx: typer.Context) -> set[str]:
    """Names of the options the user gave on the command line (not defaults)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.add(name)
    return given


SWEEP_KEYS = ("kind", "description", "defaults", "grid")   # a sweep file's top-level keys
SWEEP_KINDS = ("run", "layer")


def read_sweep(path: Path) -> dict[str, Any]:
    """A sweep file (TOML): ``kind``, ``description``, a ``[defaults]`` table and ``[[grid]]`` tables;
    one-line error if unreadable or shaped otherwise (the values are checked by the command)."""
    path = Path(path)
    where = f"config file {str(path)!r}"
    if not path.is_file():
        configs = sorted(p.name for p in Path("configs").glob("*.toml")) if Path("configs").is_dir() else []
        fail(f"{where} not found" + (f"; found in configs/: {', '.join(configs)}" if configs else ""), 2)
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        fail(f"{where} is not valid TOML: {e}", 2)
    unknown = [k for k in doc if k not in SWEEP_KEYS]
    if unknown:
        fail(f"{where}: unknown top-level key {unknown[0]!r}; choose from: {', '.join(SWEEP_KEYS)}")
    kind = doc.get("kind", "run")
    if kind not in SWEEP_KINDS:
        fail(f"{where}: unknown kind {kind!r}; choose from: {', '.join(SWEEP_KINDS)}")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        fail(f"{where}: defaults must be a table ([defaults]), got {defaults!r}")
    grid = doc.get("grid", [{}])
    if not isinstance(grid, list) or not all(isinstance(g, dict) for g in grid):
        fail(f"{where}: grid must be a list of tables ([[grid]]), got {grid!r}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        fail(f"{where}: description must be a string, got {description!r}")
    return {"kind": kind, "defaults": dict(defaults), "grid": grid or [{}], "description": description,
            "where": where}


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a data error becomes one line (exit 1)."""
    from .. import data

    try:
        return fn()
    except data.DataError as e:
        fail(str(e), 1)
