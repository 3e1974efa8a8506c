"""``tfbench run``: a real tiny run, the quick default, and every kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tfbench.bench import train as train_module
from tfbench.bench.records import pending_record
from tfbench.cli import run as run_module
from tfbench.cli.main import app

from .conftest import assert_one_line_error

TINY = ("--synthetic", "-T", "2", "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--device", "cpu")


def test_a_tiny_run_is_recorded_and_shown(cli, tmp_path: Path) -> None:
    result = cli("run", *TINY, "--backend", "TORCH", "--dataset", "cifar-10", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(records) == 1
    rec = records[0]
    assert (rec["status"], rec["backend"], rec["dataset"], rec["T"], rec["batch_size"]) == ("ok", "torch", "CIFAR-10",
                                                                                          2, 2)
    assert "step ms" in result.output and "recorded in" in result.output
    assert "epoch 1/1" in result.output                    # the per-epoch line (no live bar off a terminal)


def _fake_train(seen: list):
    def fake(cfg, reporter=None, **kw):
        seen.append(cfg)
        return dataclasses.replace(pending_record(cfg), status="ok", step_ms=1.0, train_time_s=[1.0],
                                   test_accuracy=[0.5])

    return fake


def test_no_options_runs_the_quick_demo_on_glyphs(cli, tmp_path: Path, monkeypatch) -> None:
    seen: list = []
    monkeypatch.setattr(train_module, "train", _fake_train(seen))
    monkeypatch.chdir(tmp_path)
    result = cli("run")
    assert result.exit_code == 0, result.output
    cfg = seen[0]
    assert (cfg.dataset, cfg.synthetic, cfg.T, cfg.batch_size, cfg.epochs, cfg.max_steps) == (
        "Glyphs", False, run_module.QUICK["T"], run_module.QUICK["batch_size"], run_module.QUICK["epochs"],
        run_module.QUICK["max_steps"])
    assert "quick demo" in result.output and "Glyphs: built in, no files" in result.output   # says what the data is
    assert (tmp_path / "results" / "runs.jsonl").exists()  # the default --out


def test_any_workload_option_gives_the_paper_defaults(cli, tmp_path: Path, monkeypatch) -> None:
    seen: list = []
    monkeypatch.setattr(train_module, "train", _fake_train(seen))
    assert cli("run", "--synthetic", "--out", tmp_path).exit_code == 0
    cfg = seen[0]
    assert (cfg.T, cfg.batch_size, cfg.epochs, cfg.max_steps, cfg.lr, cfg.neuron, cfg.arch) == (
        32, 100, 5, None, 1e-3, "LIF", "Spiking-ResNet18")
    assert cli("run", "--out", tmp_path, "--device", "cpu").exit_code == 0   # where, not what: still quick
    assert seen[1].T == run_module.QUICK["T"]


def test_a_run_that_cannot_happen_exits_1(cli, tmp_path: Path) -> None:
    result = cli("run", *TINY, "--backend", "norse", "--neuron", "IF", "--out", tmp_path)
    assert result.exit_code == 1
    assert "n/a" in result.output and "IF neuron" in result.output
    assert json.loads((tmp_path / "runs.jsonl").read_text())["status"].startswith("n/a: ")


@pytest.mark.parametrize(("args", "fragments"), [
    (("--dataset", "ImageNet"), ("unknown --dataset 'ImageNet'", "MNIST, CIFAR-10, N-MNIST, DvsGesture")),
    (("--arch", "VGG16"), ("'VGG16'", "Spiking-ResNet18", "Spiking-ResNet50")),
    (("--backend", "brian2"), ("'brian2'", "tfbench", "spikingjelly-torch", "snntorch", "norse")),
    (("--device", "tpu"), ("'tpu'", "choose from: cpu")),
    (("--device", "cuda:7"), ("'cuda:7'", "choose from: cpu")),
    (("--neuron", "Izhikevich"), ("'Izhikevich'", "LIF, IF")),
    (("--precision", "fp8"), ("'fp8'", "fp32, bf16, fp16")),
    (("--step-mode", "both"), ("'both'", "multi, single")),
    (("--batch-size", "0"), ("--batch-size must be >= 1", "got 0")),
    (("--batch-size", "1.5"), ("--batch-size must be a whole number", "'1.5'")),
    (("--batch-size", "70000", "--synthetic"), ("batch size 70000", "60000 samples", "choose 1..60000")),
    (("-T", "0"), ("--time-steps must be >= 1", "got 0")),
    (("-T", "4,8"), ("--time-steps takes one value", "'4,8'")),
    (("--lr", "-1"), ("--lr must be > 0", "-1")),
    (("--lr", "fast"), ("--lr must be a number", "'fast'")),
    (("--seed", "abc"), ("--seed must be a whole number", "'abc'")),
    (("--max-steps", "0"), ("--max-steps must be >= 1", "got 0")),
    (("--split-by", "time"), ("split-by 'time' applies only to the event-camera datasets (N-MNIST, DvsGesture)",
                              "MNIST has no events")),
    (("--dataset", "CIFAR-10", "--split-by", "number"), ("split-by 'number' applies only to", "CIFAR-10")),
    (("--in-channels", "2"), ("in-channels 2 applies only to the event-camera datasets (N-MNIST, DvsGesture)",
                              "MNIST feeds the 3-channel stem")),
    (("--dataset", "N-MNIST", "--split-by", "frames"), ("'frames'", "number, time")),
    (("--dataset", "DvsGesture", "--in-channels", "1"), ("'1'", "2, 3")),
    (("--dataset", "N-MNIST", "--synthetic", "--split-by", "time"), ("split-by 'time' needs the real N-MNIST data",)),
])
def test_bad_input_is_one_line(cli, tmp_path: Path, args, fragments) -> None:
    if args[:2] == ("--device", "cuda:7"):
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    assert_one_line_error(cli("run", *args, "--out", tmp_path), *fragments, codes=(2,))
    assert not (tmp_path / "runs.jsonl").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (("--dataset", "N-MNIST"), ("N-MNIST", "number", 3)),
    (("--dataset", "dvsgesture", "--split-by", "NUMBER", "--in-channels", "2"), ("DvsGesture", "number", 2)),
    (("--dataset", "N-MNIST", "--in-channels", "3"), ("N-MNIST", "number", 3)),
    (("--dataset", "CIFAR-10", "--in-channels", "3"), ("CIFAR-10", "", 3)),
    (("--dataset", "MNIST",), ("MNIST", "", 3)),
])
def test_event_options_reach_the_record(cli, tmp_path: Path, monkeypatch, args, expected) -> None:
    seen: list = []
    monkeypatch.setattr(train_module, "train", _fake_train(seen))
    result = cli("run", "--synthetic", *args, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (seen[0].dataset, seen[0].split_by, seen[0].in_channels) == expected
    rec = json.loads((tmp_path / "runs.jsonl").read_text())
    assert (rec["dataset"], rec["split_by"], rec["in_channels"]) == expected
    if expected[1]:
        assert f"frames split by {expected[1]}, {expected[2]} input channels" in result.output


def test_real_split_by_time_reaches_the_record(cli, tmp_path: Path, monkeypatch) -> None:
    seen: list = []
    monkeypatch.setattr(train_module, "train", _fake_train(seen))
    monkeypatch.setattr(train_module, "check_data", lambda cfg: seen.append(("checked", cfg.split_by)))
    assert cli("run", "--dataset", "N-MNIST", "--split-by", "time", "--out", tmp_path).exit_code == 0
    assert seen[0] == ("checked", "time") and seen[1].split_by == "time"
    assert json.loads((tmp_path / "runs.jsonl").read_text())["split_by"] == "time"


def test_missing_data_root_is_one_line(cli, tmp_path: Path) -> None:
    line = assert_one_line_error(cli("run", "--data-root", tmp_path / "nowhere", "--out", tmp_path),
                                 "MNIST not found", str(tmp_path / "nowhere" / "MNIST" / "raw"),
                                 "train-images-idx3-ubyte", "--download", codes=(1,))
    assert line.startswith("Error: ")


def test_every_option_is_explained() -> None:
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            if param.name in ("help", "ctx"):
                continue
            assert getattr(param, "help", None), f"tfbench {name}: option {param.name} has no help"


def test_python_dash_m_and_help() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "tfbench", "run", "--help"], capture_output=True, text=True,
                         cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    for option in ("--dataset", "--arch", "--neuron", "--backend", "--device", "--time-steps", "--batch-size",
                   "--epochs", "--max-steps", "--lr", "--seed", "--precision", "--data-root", "--download",
                   "--synthetic", "--split-by", "--in-channels", "--out", "quick demo"):
        assert option in out.stdout, option
