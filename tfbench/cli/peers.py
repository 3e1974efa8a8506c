"""``tfbench peers``: the peer libraries that live in environments of their own (SpikingJelly 0.0.0.0.14)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, fail, say

app = typer.Typer(help="Peer libraries installed apart from tfbench's environment (the paper's SpikingJelly "
                       "0.0.0.0.14 baselines): list them, install them ahead of a run.", no_args_is_help=True)


@app.command("list")
def list_environments() -> None:
    """Each peer environment: what it holds, whether it is installed, where, and its backends."""
    from .. import backends
    from ..backends import environments

    rows = []
    for env in environments.ENVIRONMENTS.values():
        names = [b.name for b in backends.BACKENDS.values() if b.environment == env.name]
        state = "installed" if env.installed() else f"not installed ({env.install_command()})"
        rows.append(f"{env.name}: {env.title} [{', '.join(env.requirements)}]: {state}; folder {env.folder()}; "
                    f"backends: {', '.join(names)}")
    for row in rows:
        console().print(row, highlight=False, soft_wrap=True)


@app.command("install")
def install(
    names: Annotated[list[str] | None, typer.Argument(help="Environments to install (default: all of them).",
                                                      show_default=False)] = None,
    find_links: Annotated[Path | None, typer.Option(help=(
        "Install only from the wheels in this folder (no index): for a machine without internet."))] = None,
) -> None:
    """Install peer environments into tfbench's cache (pip --no-deps --target; tfbench's torch is used)."""
    from ..backends import environments

    chosen = names or list(environments.ENVIRONMENTS)
    for name in chosen:
        if name not in environments.ENVIRONMENTS:
            fail(f"unknown peer environment {name!r}; choose from: {', '.join(environments.ENVIRONMENTS)}")
    if find_links is not None and not Path(find_links).is_dir():
        fail(f"--find-links {str(find_links)!r} is not a folder of wheels")
    for name in chosen:
        env = environments.ENVIRONMENTS[name]
        try:
            folder = env.install(find_links=find_links, say=say)
        except RuntimeError as e:
            fail(f"installing {env.title} failed: {e}", 1)
        say(f"{env.title}: installed in {folder}")
