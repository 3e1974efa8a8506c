"""The commands' run options, derived from the one schema (``tfbench.results.schema.RunConfig``).

``config_options(grid=...)`` decorates a command: the command's own parameters (``ctx``, ``out``, ...)
stay, and one option per RunConfig field is added, with the field's help, spelling and default
(``grid=True``: a grid field takes a comma-separated list, as ``compare`` sweeps them). The command
receives ``values``: the fields the user gave, parsed strictly (``bench.config.parse_value``);
fields not given are left to the schema's defaults (or a sweep file's). Nothing heavy is imported to
build the options, so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..results.schema import RunConfig, config_fields, field_type, option
from .common import explicit, fail

# Registries whose names --help lists; "device" is not listed (reading it would initialise CUDA).
_LISTED = ("dataset", "arch", "backend", "neuron", "split_by", "in_channels")


def flags(name: str, grid: bool = False) -> tuple[str, ...]:
    """The command-line spellings of RunConfig field ``name``."""
    opt = option(name)
    if grid and opt.grid_flags:
        return opt.grid_flags
    return opt.flags or (f"--{name.replace('_', '-')}",)


def _choices_text(name: str) -> str:
    c = option(name).choices
    if c is None or c == "device":
        return ""
    if isinstance(c, str):
        from ..bench.config import CHOICES

        values = CHOICES[c]()
    else:
        values = c
    return "One of: " + ", ".join(map(str, values)) + "."


def _default(name: str, defaults: dict[str, Any]) -> tuple[str | None, str | bool]:
    """(the default typer is given, its show_default): the value itself where it is one, else a phrase.
    The command never reads a default from typer: only the options given count (``explicit``)."""
    opt = option(name)
    value = defaults[name] if name in defaults else RunConfig.__dataclass_fields__[name].default
    if opt.show_default is not None and name not in defaults:
        return None, opt.show_default
    return (None, "none") if value is None else (str(value), True)


def _base(name: str) -> Any:
    from ..bench.config import base_type

    return base_type(name)[0]


def _is_bool(name: str) -> bool:
    return field_type(name) is bool


def _parameter(name: str, grid: bool, defaults: dict[str, Any], config_file: bool) -> inspect.Parameter:
    opt = option(name)
    listed = grid and opt.grid
    if listed and _is_bool(name):   # a flag: both values are a config file's list (--config)
        help_text = opt.help + " Both (a sweep): a list in a --config file."
    else:
        help_text = opt.help + (" Comma-separated for several." if listed else "")
    extra = _choices_text(name)
    if extra:
        help_text += " " + extra
    if _is_bool(name):
        off_text = f" {_off(name, grid)} turns it off{_whose(config_file)}"
        annotation: Any = Annotated[bool, typer.Option(*flags(name, grid), help=help_text + off_text)]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=False)
    # every value arrives as text and is parsed by the schema (strictly, with its one-line messages)
    metavar = "LIST" if listed else {int: "INTEGER", float: "NUMBER"}.get(_base(name), "TEXT")
    default, shown = _default(name, defaults)
    annotation = Annotated[str | None, typer.Option(*flags(name, grid), help=help_text, metavar=metavar,
                                                     show_default=shown)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _off(name: str, grid: bool) -> str:
    """The flag that turns boolean field ``name`` off: --no-<its long flag>."""
    return "--no-" + [f for f in flags(name, grid) if f.startswith("--")][0][2:]


def _whose(config_file: bool) -> str:
    """How a flag's ``--no-`` help ends: a --config file's value is what it turns off, where the command reads one."""
    return " (a --config file's)." if config_file else "."


def _off_parameter(name: str, grid: bool, config_file: bool) -> inspect.Parameter:
    """The hidden ``--no-<flag>`` of boolean field ``name`` (hidden: --help names it in the flag's own
    help, without a second column of spellings that would narrow every option's help)."""
    text = f"Turn {flags(name, grid)[-1]} off{_whose(config_file)}"
    annotation = Annotated[bool, typer.Option(_off(name, grid), hidden=True, help=text)]
    return inspect.Parameter(OFF + name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=False)


OFF = "no__"   # the parameter name prefix of the --no-<flag> options


def cli_fields(exclude: tuple[str, ...] = ()) -> list[str]:
    """RunConfig fields that are command-line options."""
    return [n for n in config_fields() if option(n).cli and n not in exclude]


def config_options(*, grid: bool, exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> Callable:
    """Decorate ``command(ctx, values, **own)``: typer sees ``own`` plus the schema's options (but
    ``exclude``); ``defaults`` are the command's own defaults where they differ from the schema's
    (shown in --help; the command applies them)."""
    defaults = defaults or {}

    def decorate(command: Callable) -> Callable:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "values"]
        names = cli_fields(exclude)
        config_file = any(p.name == "config" for p in own)   # the command reads a --config file
        offs = [_off_parameter(n, grid, config_file) for n in names if _is_bool(n)]
        params = own[:1] + [_parameter(n, grid, defaults, config_file) for n in names] + offs + own[1:]
        hints = {p.name: p.annotation for p in params}

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            ctx = kwargs["ctx"]
            given = explicit(ctx)
            values = {}
            for name in names:
                raw = kwargs.pop(name)
                off = kwargs.pop(OFF + name, False)
                if name in given and OFF + name in given:
                    fail(f"{flags(name, grid)[-1]} and {_off(name, grid)} contradict each other: give one")
                if name in given:
                    values[name] = parse_cli(name, raw, grid)
                elif off:
                    values[name] = False
            return command(values=values, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = hints
        del wrapper.__wrapped__
        return wrapper

    return decorate


def parse_cli(name: str, raw: Any, grid: bool) -> Any:
    """A command-line value of RunConfig field ``name``, parsed strictly; one-line error if bad."""
    from ..bench.config import parse_value

    flag = flags(name, grid)[-1]
    try:
        value = parse_value(name, raw, text=isinstance(raw, str), label=flag)
    except ValueError as e:
        fail(str(e))
    if isinstance(value, list) and not grid:
        fail(f"{flag} takes one value, got {raw!r}")
    return value
