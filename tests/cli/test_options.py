"""The commands' run options come from the one schema (results/schema.py RunConfig), nothing restated."""

from __future__ import annotations

import typer

from tfbench.cli.main import app
from tfbench.cli.options import cli_fields, flags
from tfbench.report.tables import RUN_GROUP
from tfbench.results.schema import PARALLEL_FIELDS, RunConfig, RunRecord, config_fields, option


def _options(command: str) -> dict[str, typer.core.click.Option]:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


def test_run_and_compare_have_an_option_per_schema_field() -> None:
    run, compare = _options("run"), _options("compare")
    for name in cli_fields():
        assert name in run, name
        assert set(run[name].opts) == set(flags(name)), name
        assert option(name).help in run[name].help
    for name in cli_fields(exclude=PARALLEL_FIELDS):
        assert name in compare, name
        assert set(compare[name].opts) == set(flags(name, grid=True)), name
    assert compare["backend"].opts == ["--backends"]
    assert "world_size" not in run           # set by the launcher, not a user option


def test_records_carry_every_config_field_and_the_key_uses_the_schema() -> None:
    record_fields = set(RunRecord.__dataclass_fields__)
    assert set(config_fields()) <= record_fields
    keyed = set(RunRecord.CONFIG_FIELDS) | set(RunRecord.OPTIONAL_CONFIG)
    assert keyed == {n for n in config_fields() if option(n).key} | {"kind", "neuron_params", "device_name"}
    assert {"data_root", "download"}.isdisjoint(keyed)     # where the data is, not what ran


def test_table_groups_follow_the_key() -> None:
    """A speed-up is taken between rows that differ only in backend (or in lean, how tfbench runs the same
    network): every other key field is part of the group (arch as its family, device as its name, the
    speed options as one word without lean)."""
    grouped = (set(RUN_GROUP) | {"backend", "lean", "arch", "device", "kind", "neuron_params"}
               | set(RunRecord.OPTIONAL_CONFIG))
    assert set(RunRecord.CONFIG_FIELDS) <= grouped and {"family", "group_options"} <= set(RUN_GROUP)
    assert "lean" not in RUN_GROUP


def test_schema_defaults_are_the_papers() -> None:
    cfg = RunConfig()
    assert (cfg.T, cfg.batch_size, cfg.epochs, cfg.lr, cfg.arch, cfg.neuron) == (32, 100, 5, 1e-3,
                                                                                   "Spiking-ResNet18", "LIF")


def test_help_and_refusals_import_nothing_heavy() -> None:
    """`tfbench --help`, every command's --help and a refused option import neither torch nor pandas,
    matplotlib, numpy or a peer library: what a newcomer types first answers at once."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "from tfbench.cli.main import main\n"
            "for argv in ([], ['run'], ['compare'], ['layer'], ['plot'], ['scale'], ['profile'], ['peers'],\n"
            "             ['run', '--dataset', 'ImageNet']):\n"
            "    sys.argv = ['tfbench', *argv] + ([] if 'ImageNet' in argv else ['--help'])\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        try:\n"
            "            main()\n"
            "        except SystemExit:\n"
            "            pass\n"
            "heavy = [m for m in ('torch', 'pandas', 'matplotlib', 'numpy', 'spikingjelly') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
