"""The ``tfbench`` command: composes the app from one module per command."""

from __future__ import annotations

import typer

from .common import OneLineErrors
from .compare import compare
from .layer import layer
from .peers import app as peers_app
from .plot import plot
from .profile import profile
from .run import HELP as RUN_HELP
from .run import run
from .scale import scale

app = typer.Typer(
    cls=OneLineErrors,
    name="tfbench",
    help="Train spiking networks and compare SNN libraries honestly: the same network, data and timing for "
         "every neuron backend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("run", help=RUN_HELP)(run)
app.command("compare")(compare)
app.command("layer")(layer)
app.command("plot")(plot)
app.command("scale")(scale)
app.command("profile")(profile)
app.add_typer(peers_app, name="peers")


def main() -> None:
    """Console-script entry point."""
    import sys

    from .common import INTERRUPTED_EXIT

    try:
        app()
    except KeyboardInterrupt:        # before the app's own handler is in place (while it starts)
        print("Interrupted: stopped before anything was recorded", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
