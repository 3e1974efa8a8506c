"""``tfbench compare``: several backends on one config, the ANN floor, resume, --force, sweep files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tfbench.bench import config as config_module
from tfbench.bench import train as train_module
from tfbench.bench.config import normalize
from tfbench.bench.records import pending_record
from tfbench.cli import compare as compare_module

from .conftest import assert_one_line_error

TINY = ("--synthetic", "-T", "2", "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--device", "cpu")
ROOT = Path(__file__).resolve().parents[2]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]


def test_compare_resume_and_force(cli, tmp_path: Path) -> None:
    result = cli("compare", *TINY, "--backends", "torch,Norse", "--ann-floor", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert [(r["backend"], r["status"]) for r in _records(tmp_path)] == [("torch", "ok"), ("norse", "ok"),
                                                                         ("ann", "ok")]
    table = pd.read_csv(tmp_path / "compare.csv")
    assert list(table["backend"]) == ["torch", "norse", "ann"]
    assert table.set_index("backend").loc["torch", "speedup"] == pytest.approx(1.0)
    assert table.set_index("backend").loc["ann", "x_floor"] == pytest.approx(1.0)
    md = (tmp_path / "compare.md").read_text()
    assert "speed-up" in md and "| norse |" in md and "norse differs from tfbench's neuron" in md
    assert "setup s" in md and "train s/epoch" in md
    assert "speed-up over torch" in result.output

    again = cli("compare", *TINY, "--backends", "torch,norse", "--ann-floor", "--out", tmp_path)
    assert again.exit_code == 0
    assert again.output.count("skip (done)") == 3
    assert len(_records(tmp_path)) == 3
    assert len(pd.read_csv(tmp_path / "compare.csv")) == 3     # the table still shows the done configs

    forced = cli("compare", *TINY, "--backends", "norse", "--out", tmp_path, "--force")
    assert forced.exit_code == 0 and "skip" not in forced.output
    assert [r["backend"] for r in _records(tmp_path)] == ["torch", "norse", "ann", "norse"]


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(cli, tmp_path: Path) -> None:
    result = cli("compare", *TINY, "--backends", "norse,torch", "--neuron", "IF", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    statuses = {r["backend"]: r["status"] for r in _records(tmp_path)}
    assert statuses["norse"].startswith("n/a: ") and statuses["torch"] == "ok"
    assert "norse: n/a:" in result.output


def test_sweep_file_with_grid_and_overrides(cli, tmp_path: Path) -> None:
    config = tmp_path / "small.toml"
    config.write_text('kind = "run"\n[defaults]\nbackends = ["torch"]\nbatch_size = 2\nepochs = 3\n'
                      '[[grid]]\nT = [1, 2]\n')
    result = cli("compare", "--config", config, "--synthetic", "--epochs", "1", "--max-steps", "1",
                 "--device", "cpu", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    recs = _records(tmp_path)
    assert sorted(r["T"] for r in recs) == [1, 2]
    assert all(r["epochs"] == 1 and r["batch_size"] == 2 for r in recs)   # the command line wins over the file
    assert (tmp_path / "small.csv").exists() and (tmp_path / "small.md").exists()


def test_the_shipped_sweep_files_expand() -> None:
    """configs/table1.toml is the paper's Table 1 grid; configs/fig5.toml the Fig. 5 layer grid."""
    configs, baseline = compare_module.plan({"synthetic": True, "device": "cpu"}, {},
                                            compare_module.read_sweep(ROOT / "configs" / "table1.toml"))
    assert baseline == "spikingjelly014"                  # SJ-CuPy, the paper's strongest baseline
    spiking = [c for c in configs if c.backend != "ann"]
    assert {c.backend for c in spiking} == {"spikingjelly014-torch", "spikingjelly014", "tfbench", "spikingjelly"}
    assert len(spiking) == 3 * 4 * 4 and len(configs) - len(spiking) == 3 * 4
    assert {c.T for c in configs} == {32} and {c.epochs for c in configs} == {5}
    assert {c.batch_size for c in configs if c.dataset == "DvsGesture"} == {10}
    assert {c.batch_size for c in configs if c.dataset != "DvsGesture"} == {100}
    fig5 = compare_module.read_sweep(ROOT / "configs" / "fig5.toml")
    assert fig5["kind"] == "layer"
    assert fig5["defaults"]["T"] == [8, 16, 32, 64, 128] and fig5["defaults"]["N"] == [1_000_000]


@pytest.mark.parametrize(("args", "fragments"), [
    (("--backends", "tfbench,brian2"), ("unknown --backends 'brian2'", "tfbench, torch, spikingjelly")),
    (("--backends", "tfbench", "--baseline", "norse"), ("unknown baseline 'norse'", "choose from: tfbench")),
    (("--dataset", "MNIST,ImageNet"), ("unknown --dataset 'ImageNet'", "MNIST, CIFAR-10, N-MNIST, DvsGesture")),
    (("--arch", "VGG"), ("unknown --arch 'VGG'", "Spiking-ResNet18")),
    (("--precision", "fp32,fp8"), ("unknown --precision 'fp8'", "fp32, bf16, fp16")),
    (("--device", "tpu"), ("'tpu'", "choose from: cpu")),
    (("-T", "4,x"), ("--time-steps must be a whole number", "'x'")),
    (("-T", "4,,8"), ("--time-steps '4,,8' has an empty item",)),
    (("--batch-size", "0"), ("--batch-size must be >= 1", "got 0")),
    (("--max-steps", "0"), ("--max-steps must be >= 1", "got 0")),
    (("--epochs", "1,2"), ("--epochs takes one value", "'1,2'")),
    (("--batch-size", "60001", "--synthetic"), ("batch size 60001", "choose 1..60000")),
    (("--config", "configs/none.toml"), ("config file 'configs/none.toml' not found",)),
    (("--split-by", "time"), ("split-by 'time' applies only to the event-camera datasets (N-MNIST, DvsGesture)",
                              "MNIST has no events")),
    (("--dataset", "MNIST,CIFAR-10", "--in-channels", "2"), ("in-channels 2 applies only to the event-camera "
                                                             "datasets", "MNIST feeds the 3-channel stem")),
    (("--dataset", "N-MNIST", "--in-channels", "2,x"), ("--in-channels must be a whole number", "'x'")),
    (("--dataset", "N-MNIST", "--in-channels", "2,5"), ("unknown --in-channels '5'", "choose from: 2, 3")),
    (("--dataset", "MNIST,DvsGesture", "--split-by", "number,frames"), ("unknown --split-by 'frames'",
                                                                        "choose from: number, time")),
    (("--dataset", "N-MNIST", "--synthetic", "--split-by", "number,time"), ("split-by 'time' needs the real",)),
])
def test_bad_input_is_one_line(cli, tmp_path: Path, args, fragments) -> None:
    assert_one_line_error(cli("compare", *args, "--out", tmp_path), *fragments, codes=(2,))
    assert not (tmp_path / "runs.jsonl").exists()


def test_bad_sweep_file_and_missing_data(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nbackend = 'torch'\n")
    assert_one_line_error(cli("compare", "--config", bad, "--out", tmp_path), "unknown key 'backend'",
                          "backends", codes=(2,))
    for text, fragments in [
        ("[defaults]\nsynthetic = 'false'\n", ("synthetic must be true or false", "'false' (a string)")),
        ("[defaults]\ndownload = 'false'\n", ("download must be true or false",)),
        ("[defaults]\nann_floor = 'false'\n", ("ann_floor must be true or false",)),
        ("[defaults]\nlr = 'fast'\n", ("lr must be a number", "'fast'")),
        ("[defaults]\nseed = 'abc'\n", ("seed must be a whole number", "'abc'")),
        ("[defaults]\nseed = 1.5\n", ("seed must be a whole number", "1.5")),
        ("[defaults]\nepochs = [1, 2]\n", ("epochs takes one value", "[1, 2]")),
        ("[defaults]\nT = []\n", ("T is an empty list",)),
        ("defaults = 5\n", ("defaults must be a table", "5")),
        ("grid = 5\n", ("grid must be a list of tables",)),
        ("colour = 'red'\n", ("unknown top-level key 'colour'", "kind, description, defaults, grid")),
        ("[[grid]]\nmax_steps = 0\n", ("[[grid]] #1 max_steps must be >= 1", "got 0")),
        # a value every field accepts but the entry's combination refuses (here, on a CPU): the entry named
        ("[defaults]\nsynthetic = true\ndevice = 'cpu'\n[[grid]]\n[[grid]]\ncuda_graphs = true\n",
         ("bad.toml': [[grid]] #2: cuda-graphs needs a CUDA device",)),
    ]:
        bad.write_text(text)
        assert_one_line_error(cli("compare", "--config", bad, "--out", tmp_path), *fragments, codes=(2,))
    assert not (tmp_path / "runs.jsonl").exists()
    broken = tmp_path / "broken.toml"
    broken.write_text("[defaults\n")
    assert_one_line_error(cli("compare", "--config", broken), "is not valid TOML", codes=(2,))
    assert_one_line_error(cli("compare", "--dataset", "CIFAR-10", "--data-root", tmp_path / "none", "--out",
                              tmp_path), "CIFAR-10 not found", "cifar-10-batches-py", codes=(1,))


def _fake_sweep(monkeypatch) -> list:
    """Runs record at once (no training) and real data counts as present: what the options reach is checked."""
    ran: list = []

    def fake_train(cfg, reporter=None, **kw):
        ran.append(normalize(cfg))
        return dataclasses.replace(pending_record(cfg), status="ok", step_ms=1.0, train_time_s=[1.0])

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setattr(train_module, "check_data", lambda cfg: None)
    return ran


def test_event_options_make_a_grid_and_each_value_is_its_own_config(cli, tmp_path: Path, monkeypatch) -> None:
    ran = _fake_sweep(monkeypatch)
    base = ("--backends", "torch", "--out", tmp_path)
    assert cli("compare", "--dataset", "N-MNIST", *base).exit_code == 0
    assert [(c.split_by, c.in_channels) for c in ran] == [("number", 3)]
    again = cli("compare", "--dataset", "N-MNIST", "--in-channels", "2", *base)   # not the same config: it runs
    assert again.exit_code == 0 and "skip" not in again.output
    assert cli("compare", "--dataset", "N-MNIST", "--split-by", "time", *base).exit_code == 0
    assert [(c.split_by, c.in_channels) for c in ran] == [("number", 3), ("number", 2), ("time", 3)]

    grid = cli("compare", "--dataset", "MNIST,N-MNIST", "--split-by", "number,TIME", "--in-channels", "2,3", *base)
    assert grid.exit_code == 0, grid.output
    assert grid.output.count("skip (done)") == 3 and "split-by time in-ch 3" in grid.output
    assert [(c.dataset, c.split_by, c.in_channels) for c in ran[3:]] == [("MNIST", "", 3), ("N-MNIST", "time", 2)]
    records = {(r["dataset"], r["split_by"], r["in_channels"]) for r in _records(tmp_path)}
    assert records == {("N-MNIST", s, c) for s in ("number", "time") for c in (2, 3)} | {("MNIST", "", 3)}
    table = pd.read_csv(tmp_path / "compare.csv")
    assert len(table) == 5 and set(table["split_by"].dropna()) == {"number", "time"}
    assert "split by" in grid.output and "in ch" in grid.output


def test_sweep_file_takes_the_event_options(cli, tmp_path: Path, monkeypatch) -> None:
    ran = _fake_sweep(monkeypatch)
    config = tmp_path / "events.toml"
    config.write_text('kind = "run"\n[defaults]\nbackends = ["torch"]\n'
                      '[[grid]]\ndataset = ["CIFAR-10", "DvsGesture"]\nsplit_by = "time"\nin_channels = [2]\n')
    result = cli("compare", "--config", config, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert [(c.dataset, c.split_by, c.in_channels) for c in ran] == [("CIFAR-10", "", 3), ("DvsGesture", "time", 2)]


def test_the_step_sweeps_expand(monkeypatch) -> None:
    """configs/step_targets.toml: eager and graphed rows for tfbench, SpikingJelly and the ANN floor;
    configs/step_options.toml: channels-last (alone and graphed) and compiled rows for tfbench and the ANN.
    Each option combination is its own config (and key)."""
    monkeypatch.setattr(config_module, "resolve_device", lambda name: torch.device("cuda", 0))  # graphs need a GPU
    by_options: dict[str, list] = {}
    for stem in ("step_targets", "step_options"):
        configs, _ = compare_module.plan({}, {}, compare_module.read_sweep(ROOT / "configs" / f"{stem}.toml"))
        assert {c.dataset for c in configs} == {"CIFAR-10"} and all(c.synthetic for c in configs)
        assert {c.batch_size for c in configs} == {100} and {c.max_steps for c in configs} == {25}
        for c in configs:
            by_options.setdefault(c.options, []).append(c)
    # (tfbench, spikingjelly, ann) x T {4, 32} x {fp32, bf16}
    assert len(by_options["eager"]) == len(by_options["graphs"]) == 3 * 2 * 2
    # (tfbench, ann) x T x precision
    assert len(by_options["channels-last"]) == len(by_options["graphs+channels-last"]) == 2 * 2 * 2
    assert len(by_options["compile"]) == len(by_options["compile+channels-last"]) == 2 * 2
    assert {c.T for c in by_options["compile"]} == {4}


MEMORY_TS = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]


def test_the_memory_sweep_expands() -> None:
    """configs/memory_vs_t.toml: Spiking-ResNet18, synthetic CIFAR-10, batch 100, T = 4 .. 4096, fp32 and
    bf16, tfbench and SpikingJelly beside the ANN twin, then tfbench lean; a few steps; each backend's T
    run in turn."""
    configs, baseline = compare_module.plan({"device": "cpu"}, {},
                                            compare_module.read_sweep(ROOT / "configs" / "memory_vs_t.toml"))
    assert baseline == "spikingjelly"
    assert len(configs) == (3 + 1) * 2 * len(MEMORY_TS)
    assert {(c.dataset, c.synthetic, c.batch_size, c.epochs, c.max_steps) for c in configs} == {
        ("CIFAR-10", True, 100, 1, 3)}
    assert {c.arch for c in configs} == {"Spiking-ResNet18", "ResNet18"}
    assert [(c.backend, c.precision, c.lean) for c in configs[::len(MEMORY_TS)]] == [
        ("tfbench", "fp32", False), ("tfbench", "bf16", False), ("spikingjelly", "fp32", False),
        ("spikingjelly", "bf16", False), ("ann", "fp32", False), ("ann", "bf16", False),
        ("tfbench", "fp32", True), ("tfbench", "bf16", True)]
    assert [c.T for c in configs[:len(MEMORY_TS)]] == MEMORY_TS

def test_lean_sweep_with_a_baseline_that_cannot_fold(cli, tmp_path: Path) -> None:
    """--lean with the default baseline (torch, n/a under lean): the table says why there is no speed-up,
    and the ANN floor is the plain twin (lean refused for an ANN named by the user)."""
    result = cli("compare", *TINY, "--backends", "tfbench,torch", "--lean", "--ann-floor", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert [(r["backend"], r["status"][:3], r.get("lean")) for r in _records(tmp_path)] == [
        ("tfbench", "ok", True), ("torch", "n/a", True), ("ann", "ok", False)]
    assert "no speed-up column: the baseline torch has no finished run here (n/a: lean folds" in result.output
    refused = cli("compare", *TINY, "--arch", "ResNet18", "--lean", "--out", tmp_path / "ann")
    assert_one_line_error(refused, "ResNet18 is an ANN")


def test_a_sweep_files_flag_is_turned_off_from_the_command_line(cli, tmp_path: Path, monkeypatch) -> None:
    """--no-<flag> overrides a sweep file's flag (a list of both, or true), as any option overrides it."""
    ran = _fake_sweep(monkeypatch)
    config = tmp_path / "flags.toml"
    config.write_text('kind = "run"\n[defaults]\nbackends = ["torch"]\nsynthetic = true\nchannels_last = [false, true]\n'
                      '[[grid]]\n')
    assert cli("compare", "--config", config, "--out", tmp_path).exit_code == 0
    assert [c.channels_last for c in ran] == [False, True]
    result = cli("compare", "--config", config, "--no-channels-last", "--no-synthetic", "--out", tmp_path / "off")
    assert result.exit_code == 0, result.output
    assert [(c.channels_last, c.synthetic) for c in ran[2:]] == [(False, False)]
    both = cli("compare", "--config", config, "--lean", "--no-lean", "--out", tmp_path / "both")
    assert_one_line_error(both, "--lean and --no-lean contradict each other", codes=(2,))
