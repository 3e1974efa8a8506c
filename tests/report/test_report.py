"""Tables and plots made from a small store written here (no benchmark runs)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from tfbench.report import plots, tables
from tfbench.results.schema import LayerRecord, RunRecord
from tfbench.results.store import Store, load

MIB = 1 << 20


def run(backend: str, step_ms: float | None, *, T: int = 4, status: str = "ok", arch: str = "Spiking-ResNet18",
        neuron: str = "LIF", peak: int | None = 100 * MIB, acc: float = 0.5) -> RunRecord:
    return RunRecord(dataset="CIFAR-10", arch=arch, backend=backend, neuron=neuron, neuron_params="", device="cuda:0",
                     device_name="NVIDIA H100", T=T, batch_size=100, epochs=1, max_steps=10, lr=1e-3, seed=0,
                     precision="fp32", synthetic=True, step_mode="multi", status=status, step_ms=step_ms,
                     train_time_s=[9.0, 3.0], test_accuracy=[0.1, acc], peak_mem_bytes=peak,
                     checked=status == "ok" and backend != "ann",
                     differences="reset late" if backend == "snntorch" else "")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = Store(tmp_path)
    for rec in (run("torch", 40.0), run("tfbench", 10.0, peak=50 * MIB), run("snntorch", 80.0, acc=0.4),
                run("ann", 8.0, arch="ResNet18", neuron="ReLU", acc=0.6),
                run("norse", None, status="unavailable: no IF neuron"),
                run("torch", 400.0, T=32), run("tfbench", 50.0, T=32)):
        s.append(rec)
    for backend, times in (("tfbench", (0.1, 0.2, 0.4)), ("snntorch", (1.0, 2.5, 6.0))):
        for T, ms in zip((8, 16, 32), times):
            s.append(LayerRecord(backend=backend, precision="fp32", T=T, N=1_000_000, direction="both",
                                 mode="eager", device="cuda:0", neuron="p", status="ok", checked=True,
                                 median_ms=ms, p10_ms=ms * 0.9, p90_ms=ms * 1.1, floor_ms=T * 0.01))
    s.append(LayerRecord(backend="norse", precision="fp32", T=8, N=1_000_000, direction="both", mode="eager",
                         device="cuda:0", neuron="p", status="oom", checked=False))
    return tmp_path


def test_run_table_speedups_floor_and_status(store: Path) -> None:
    t = tables.run_table(load(store, kind="run"), baseline="torch").set_index(["backend", "T"])
    assert t.loc[("tfbench", 4), "speedup"] == pytest.approx(4.0)
    assert t.loc[("snntorch", 4), "speedup"] == pytest.approx(0.5)
    assert t.loc[("torch", 4), "speedup"] == pytest.approx(1.0)
    assert t.loc[("ann", 4), "speedup"] == pytest.approx(5.0)
    assert t.loc[("tfbench", 4), "x_floor"] == pytest.approx(10.0 / 8.0)
    assert t.loc[("tfbench", 32), "speedup"] == pytest.approx(8.0)      # compared within its own T only
    assert pd.isna(t.loc[("tfbench", 32), "x_floor"])                   # no ANN row at T=32
    assert t.loc[("tfbench", 4), "peak_mem_mib"] == pytest.approx(50.0)
    assert t.loc[("snntorch", 4), "test_accuracy"] == pytest.approx(0.4)  # the last epoch's
    assert t.loc[("tfbench", 4), "train_s_per_epoch"] == pytest.approx(6.0)   # the mean of the steady epochs
    norse = t.loc[("norse", 4)]
    assert norse["status"] == "n/a: no IF neuron" and pd.isna(norse["step_ms"]) and pd.isna(norse["speedup"])


@pytest.mark.parametrize("lean_first", [True, False], ids=["lean-first", "default-first"])
def test_a_baseline_that_ran_both_ways_is_its_default_row(tmp_path: Path, lean_first: bool) -> None:
    """--lean beside the default, tfbench its own baseline: both rows are compared with the default one
    (written in either order), and each with the ANN twin of the same other options."""
    s = Store(tmp_path)
    rows = [dataclasses.replace(run("tfbench", 12.0), lean=True), run("tfbench", 9.0)]
    for rec in (rows if lean_first else rows[::-1]) + [run("ann", 8.0, arch="ResNet18", neuron="ReLU")]:
        s.append(rec)
    t = tables.run_table(load(tmp_path, kind="run"), baseline="tfbench").set_index(["backend", "options"])
    assert t.loc[("tfbench", "lean"), "speedup"] == pytest.approx(9.0 / 12.0)
    assert t.loc[("tfbench", "eager"), "speedup"] == pytest.approx(1.0)
    assert t.loc[("tfbench", "lean"), "x_floor"] == pytest.approx(12.0 / 8.0)


def test_a_pipeline_whose_ranks_shared_a_gpu_says_so(tmp_path: Path) -> None:
    """TFBENCH_SHARE_GPUS=1 runs are told apart from the multi-GPU runs of the same options (their times are
    not a multi-GPU run's)."""
    s = Store(tmp_path)
    base = dataclasses.replace(run("tfbench", 80.0), parallel="temporal", world_size=2, lean=True)
    shared_env = {"device": "NVIDIA H200", "device_count": 1}
    s.append(dataclasses.replace(base, shared_gpus=True, env=shared_env))
    s.append(dataclasses.replace(base, T=8, env={"device": "NVIDIA H200", "device_count": 2}))
    t = tables.run_table(load(tmp_path, kind="run"), baseline="tfbench").set_index("T")
    assert t.loc[4, "options"] == "lean, temporal x2 on 1 GPU"
    assert t.loc[8, "options"] == "lean, temporal x2"


def test_a_backend_without_differences_says_so() -> None:
    table = pd.DataFrame([{"backend": "spikingjelly", "status": "ok", "differences": "none (its Sigmoid is ours)"},
                          {"backend": "snntorch", "status": "ok", "differences": "reset late"}])
    assert tables.differences_notes(table) == [
        "spikingjelly: the same neuron as tfbench's (docs/neurons.md) (its Sigmoid is ours)",
        "snntorch differs from tfbench's neuron (docs/neurons.md): reset late"]


def test_markdown_csv_and_terminal(store: Path, tmp_path: Path) -> None:
    df = load(store, kind="run")
    t = tables.run_table(df[df["T"] == 4], baseline="torch")
    md = tables.to_markdown(t)
    lines = md.splitlines()
    assert lines[0].startswith("dataset CIFAR-10") and "T 4" in lines[0] and "B 100" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("| arch | backend"))
    assert "speed-up" in lines[header] and "x floor" in lines[header] and "peak MiB" in lines[header]
    assert "| Spiking-ResNet18 | tfbench | LIF | ok | 10.00 | 6.00 | 4.00x | 1.25x | 50.00% | 50 | yes |" in md
    assert "- norse: n/a: no IF neuron" in md
    assert "- snntorch differs from tfbench's neuron (docs/neurons.md): reset late" in md
    paths = tables.write(t, tmp_path / "out" / "compare")
    assert [p.name for p in paths] == ["compare.csv", "compare.md"]
    back = pd.read_csv(paths[0])
    assert set(back["backend"]) == {"torch", "tfbench", "snntorch", "ann", "norse"}
    assert "differences" in back.columns
    console = Console(record=True, width=160)
    tables.render(t, title="compare", console=console)
    text = console.export_text()
    assert "4.00x" in text and "norse: n/a: no IF neuron" in text


def test_layer_table(store: Path) -> None:
    t = tables.layer_table(load(store, kind="layer"), baseline="snntorch").set_index(["backend", "T"])
    assert t.loc[("tfbench", 32), "speedup"] == pytest.approx(15.0)
    assert t.loc[("tfbench", 16), "x_floor"] == pytest.approx(0.2 / 0.16)
    assert t.loc[("norse", 8), "status"] == "oom" and pd.isna(t.loc[("norse", 8), "median_ms"])


def test_plots_write_png_and_svg(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    made = plots.speedup_bars(load(store, kind="run"), "torch", out)
    made += plots.layer_time_vs_T(load(store, kind="layer"), out)
    assert sorted(p.name for p in made) == ["layer_time_vs_T.png", "layer_time_vs_T.svg", "speedup.png",
                                            "speedup.svg"]
    for p in made:
        head = p.read_bytes()[:200]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in p.read_bytes()[:2000]
    with pytest.raises(ValueError, match="no run has a speed-up over baseline 'nope'"):
        plots.speedup_bars(load(store, kind="run"), "nope", out)


def test_report_imports_no_benchmark_and_nothing_below_cli_imports_it() -> None:
    code = ("import sys, tfbench.report.plots, tfbench.report.tables, tfbench.bench.train, tfbench.results.store; "
            "assert not [m for m in sys.modules if m.startswith('tfbench.cli')], 'cli imported below cli'; "
            "import tfbench.models, tfbench.data; "
            "peers = [m for m in ('snntorch', 'norse', 'spikingjelly') if m in sys.modules]; "
            "print(peers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    code = "import sys, tfbench.report.plots; assert 'tfbench.bench.train' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
