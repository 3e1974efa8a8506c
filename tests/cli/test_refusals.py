"""Issue 11's refusals: every bad input gets one line before any work; Ctrl-C leaves one line and keeps
what finished; peers that cannot run are n/a rows; plot reads a store it did not write alone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tfbench import backends
from tfbench.backends import base as backend_base
from tfbench.bench import step as step_module
from tfbench.bench import train as train_module
from tfbench.cli import compare as compare_module
from tfbench.cli import main as main_module
from tfbench.results.schema import RunConfig
from tfbench.results.store import Store

from .conftest import assert_one_line_error

TINY = ("--synthetic", "-T", "2", "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--device", "cpu")
COMMANDS = {
    "run": ("run", *TINY),
    "compare": ("compare", *TINY, "--backends", "torch"),
    "layer": ("layer", "--backends", "torch", "-T", "2", "-N", "8", "--device", "cpu"),
    "plot": ("plot",),
    "scale": ("scale", "-T", "4", "--gpus", "1", "-N", "8", "--device", "cpu"),
    "profile": ("profile", "--backend", "torch", "-T", "2", "--batch-size", "2", "--device", "cpu"),
}


@pytest.fixture
def no_work(monkeypatch):
    """Any training or timing fails the test: a refusal must come before it."""

    def forbidden(*_a, **_k):
        raise AssertionError("work started before the bad input was refused")

    monkeypatch.setattr(train_module, "train", forbidden)
    from tfbench.bench import layer as layer_module

    monkeypatch.setattr(layer_module, "run_layer_sweep", forbidden)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_out_is_refused_before_any_work(cli, tmp_path: Path, command: str, no_work) -> None:
    args = COMMANDS[command]
    results = ("--results", tmp_path) if command == "plot" else ()
    if command == "plot":
        Store(tmp_path).append(dataclasses.replace(_record(), status="ok"))
    assert_one_line_error(cli(*args, *results, "--out", "/proc/x"), "--out '/proc/x' cannot be written",
                          "give a folder you can write to", codes=(2,))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert_one_line_error(cli(*args, *results, "--out", a_file), f"--out '{a_file}' is a file, not a folder",
                          codes=(2,))


def _record():
    from tfbench.bench.records import pending_record

    return pending_record(RunConfig(backend="torch", dataset="MNIST", synthetic=True, T=2, batch_size=2, epochs=1,
                                    max_steps=2, device="cpu"))


def test_every_registered_backend_is_in_a_default_compare() -> None:
    """Without --backends a compare runs every registered backend: one that cannot run here is an n/a row."""
    configs, baseline = compare_module.plan({"synthetic": True, "device": "cpu"}, {}, None)
    assert [c.backend for c in configs] == list(backends.BACKENDS) and baseline == "torch"


def test_a_peer_that_is_not_installed_is_an_na_row(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(backends.Backend, "version",
                        lambda self: None if self.name == "snntorch" else "1.0")
    result = cli("compare", *TINY, "--backends", "snntorch,torch", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    statuses = {r["backend"]: r["status"] for r in map(json.loads, (tmp_path / "runs.jsonl").read_text().splitlines())}
    assert statuses["snntorch"] == "n/a: snntorch is not installed (pip install 'tfbench[peers]')"
    assert "snntorch: n/a: snntorch is not installed" in result.output


def test_a_peer_that_fails_to_import_is_na_and_not_retried(cli, tmp_path: Path, monkeypatch) -> None:
    real = backend_base.quiet_import

    def broken(name: str):
        if name.startswith("norse"):
            raise ImportError("libfoo.so: cannot open shared object file")
        return real(name)

    backend_base._import_failure.cache_clear()
    monkeypatch.setattr(backend_base, "quiet_import", broken)
    try:
        result = cli("compare", *TINY, "--backends", "norse", "--out", tmp_path)
        assert result.exit_code == 0, result.output
        status = json.loads((tmp_path / "runs.jsonl").read_text())["status"]
        assert status.startswith("n/a: norse ") and "is installed but norse.torch fails to import" in status
        assert "libfoo.so" in status
        again = cli("compare", *TINY, "--backends", "norse", "--out", tmp_path)
        assert "skip (done)" in again.output               # n/a is final: not retried on every re-run
    finally:
        backend_base._import_failure.cache_clear()


def test_ctrl_c_during_training_is_one_line_and_records_nothing(cli, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = step_module.TrainingStep.__call__

    def interrupted(self, x, y):
        calls.append(1)
        if len(calls) == step_module.WARMUP_STEPS + 2:
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(step_module.TrainingStep, "__call__", interrupted)
    result = cli("run", *TINY, "--backend", "torch", "--out", tmp_path)
    assert result.exit_code == 130 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Interrupted")]
    assert len(lines) == 1 and "nothing recorded" in lines[0], result.output
    assert not (tmp_path / "runs.jsonl").exists()


def test_ctrl_c_after_the_last_epoch_keeps_the_record(cli, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C while the run cleans up after its last epoch: every epoch ran, so the record is kept."""
    import gc

    real_collect, hits = gc.collect, []

    def collect(*a):
        if not hits:
            hits.append(1)
            raise KeyboardInterrupt
        return real_collect(*a)

    monkeypatch.setattr(train_module.gc, "collect", collect)
    result = cli("run", *TINY, "--backend", "torch", "--out", tmp_path)
    assert result.exit_code == 130 and "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if line.startswith("Interrupted"))
    assert "every epoch had run; recorded in" in line
    rec = json.loads((tmp_path / "runs.jsonl").read_text())
    assert rec["status"] == "ok" and rec["step_ms"] > 0


def test_ctrl_c_in_a_compare_says_what_is_kept(cli, tmp_path: Path, monkeypatch) -> None:
    real = train_module.train

    def second_interrupted(cfg, reporter=None, **kw):
        if cfg.backend == "norse":
            raise train_module.Interrupted(None, "norse run")
        return real(cfg, reporter, **kw)

    monkeypatch.setattr(train_module, "train", second_interrupted)
    result = cli("compare", *TINY, "--backends", "torch,norse", "--out", tmp_path)
    assert result.exit_code == 130 and "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if line.startswith("Interrupted"))
    assert "1 of 2 runs are recorded in" in line and "run the same command again to resume" in line


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys) -> None:
    def starting():
        raise KeyboardInterrupt

    monkeypatch.setattr(main_module, "app", starting)
    with pytest.raises(SystemExit) as e:
        main_module.main()
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert err.strip() == "Interrupted: stopped before anything was recorded"


def test_plot_skips_foreign_lines_and_defaults_to_the_compared_baseline(cli, tmp_path: Path, monkeypatch) -> None:
    store = Store(tmp_path)
    for backend, ms in (("torch", 4.0), ("spikingjelly", 2.0), ("tfbench", 1.0)):
        store.append(dataclasses.replace(_record(), backend=backend, status="ok", step_ms=ms, baseline="spikingjelly",
                                         timestamp="2026-12-01T00:00:00+00:00"))
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write('{"a": 1}\n')
    result = cli("plot", "--results", tmp_path, "--out", tmp_path / "figs")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figs" / "speedup.png").exists()
    from tfbench.cli.plot import default_baseline
    from tfbench.results.store import load

    with pytest.warns(UserWarning, match="not a tfbench record"):
        runs = load(tmp_path, kind="run")
    assert default_baseline(runs) == "spikingjelly"
    only_foreign = tmp_path / "foreign.jsonl"
    only_foreign.write_text('{"a": 1}\n')
    assert_one_line_error(cli("plot", "--results", only_foreign, "--out", tmp_path), "no records", codes=(1,))


def test_layer_and_scale_lists_refuse_empty_items(cli, tmp_path: Path, no_work) -> None:
    assert_one_line_error(cli("layer", "-T", "4,,8", "--device", "cpu", "--out", tmp_path), "'4,,8' has an empty item",
                          codes=(2,))
    assert_one_line_error(cli("scale", "-T", "4,,8", "--device", "cpu", "--out", tmp_path), "'4,,8' has an empty item",
                          codes=(2,))
