"""The memory-vs-T figure from hand-written run records: ok lines, out-of-memory crosses, n/a and error
runs counted, tfbench's lean rows apart (and records older than ``lean`` read as not lean)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from tfbench.report import plots
from tfbench.results.schema import RunRecord, config_key
from tfbench.results.store import Store, load

MIB, GIB = 1 << 20, 1 << 30
H200 = 141 * GIB    # the device's memory as the records say it (env.device_memory_bytes)


def record(backend: str, T: int, peak_gib: float | None = None, *, status: str = "ok", precision: str = "fp32",
           lean: bool | None = None, batch: int = 100, device_memory: int | None = H200, **kw) -> dict:
    """A stored run record as ``tfbench compare`` writes it; ``lean`` None: written before that field existed."""
    ann = backend == "ann"
    rec = RunRecord(dataset="CIFAR-10", arch="ResNet18" if ann else "Spiking-ResNet18", backend=backend,
                    neuron="ReLU" if ann else "LIF", device="cuda:0", device_name="NVIDIA H200", T=T,
                    batch_size=batch, epochs=1, max_steps=3, precision=precision, synthetic=True, status=status,
                    step_ms=1.0 if status == "ok" else None,
                    peak_mem_bytes=int(peak_gib * GIB) if peak_gib is not None else None,
                    env={} if device_memory is None else {"device_memory_bytes": device_memory},
                    timestamp="2026-12-02T00:00:00+00:00", **kw)
    d = rec.as_dict()
    if lean is not None:   # as the field will be: in the key only when on
        d["lean"] = lean
        d["key"] = config_key({**rec.config(), **({"lean": True} if lean else {})})
    return d


def records() -> list[dict]:
    """tfbench (old records, no lean field) and tfbench lean, SpikingJelly running out at T=256, the ANN
    twin at 4096; one n/a and one error."""
    return [record("tfbench", 4, 0.5), record("tfbench", 32, 2.2), record("tfbench", 256, 17.0),
            record("tfbench", 4096, status="oom"),
            record("tfbench", 4, 0.3, lean=True), record("tfbench", 32, 1.0, lean=True),
            record("tfbench", 256, 7.0, lean=True), record("tfbench", 4096, 100.0, lean=True),
            record("tfbench", 32, 1.3, precision="bf16", lean=False),
            record("spikingjelly", 4, 0.6), record("spikingjelly", 32, 2.8), record("spikingjelly", 256, status="oom"),
            record("ann", 4, 0.4), record("ann", 32, 1.6), record("ann", 256, 13.0), record("ann", 4096, status="oom"),
            record("spikingjelly", 32, precision="bf16", status="n/a: spikingjelly-torch refuses bf16"),
            record("tfbench", 32, precision="fp16", status="error: RuntimeError: boom")]


def store_of(tmp_path: Path, recs: list[dict]) -> Path:
    s = Store(tmp_path / "store")
    for d in recs:
        s.runs.append(d)
    return s.root


@pytest.fixture
def figures(monkeypatch) -> list:
    """Each figure memory_vs_T saves, kept open for the test to read its lines and texts."""
    kept, save, close = [], plots._save, plots.plt.close

    def keep(fig, stem):
        kept.append(fig)
        return save(fig, stem)

    monkeypatch.setattr(plots.plt, "close", lambda fig=None: None)
    monkeypatch.setattr(plots, "_save", keep)
    yield kept
    for fig in kept:
        close(fig)


def _lines(fig) -> dict[str, tuple[list, list]]:
    """The figure's labelled lines: label -> (T, y)."""
    ax = fig.axes[0]
    return {ln.get_label(): (list(ln.get_xdata()), [float(y) for y in ln.get_ydata()]) for ln in ax.lines
            if not ln.get_label().startswith("_")}


def _crosses(fig) -> list[tuple[float, float, str]]:
    """(x, y, colour) of every out-of-memory cross."""
    out = []
    for ln in fig.axes[0].lines:
        if ln.get_marker() == "x":
            out += [(float(x), float(y), matplotlib.colors.to_hex(ln.get_color()))
                    for x, y in zip(ln.get_xdata(), ln.get_ydata())]
    return out


def test_memory_figure_lines_crosses_and_note(tmp_path: Path, figures) -> None:
    made = plots.memory_vs_T(load(store_of(tmp_path, records()), kind="run"), tmp_path / "figs")
    assert sorted(p.name for p in made) == ["memory_vs_T.png", "memory_vs_T.svg"]
    assert made[0].read_bytes().startswith(b"\x89PNG")
    (fig,) = figures
    lines = _lines(fig)
    # old records (no lean field) and lean=False are the same "tfbench" line; lean=True its own
    assert list(lines) == ["tfbench fp32", "tfbench bf16", "tfbench lean fp32", "spikingjelly fp32", "ANN twin fp32"]
    assert lines["tfbench fp32"] == ([4, 32, 256], pytest.approx([0.5, 2.2, 17.0]))     # GiB
    assert lines["tfbench lean fp32"] == ([4, 32, 256, 4096], pytest.approx([0.3, 1.0, 7.0, 100.0]))
    assert lines["tfbench bf16"] == ([32], pytest.approx([1.3]))
    assert lines["ANN twin fp32"][0] == [4, 32, 256]
    colour = {label: matplotlib.colors.to_hex(ln.get_color()) for ln in fig.axes[0].lines
              if not (label := ln.get_label()).startswith("_")}
    assert colour["tfbench fp32"] == colour["tfbench bf16"] != colour["tfbench lean fp32"]   # precision: the style
    crosses = _crosses(fig)
    assert all(y == pytest.approx(141.0) for _, y, _ in crosses)          # at the device's memory
    near = {c: next(T for T in (4, 32, 256, 4096) if T / 1.5 < x < T * 1.5) for x, _, c in crosses}
    assert near == {colour["tfbench fp32"]: 4096, colour["ANN twin fp32"]: 4096, colour["spikingjelly fp32"]: 256}
    at_4096 = [x for x, _, _ in crosses if 2048 < x < 8192]
    assert len(set(at_4096)) == 2                                          # side by side, both visible
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[-2:] == ["device memory (141 GiB)", "out of memory"]
    texts = [t.get_text() for t in fig.texts]
    assert texts == ["left out: 1 n/a, 1 error (the compare table gives the reasons)"]
    assert fig.axes[0].get_yaxis().get_label().get_text() == "peak device memory, steady training (GiB)"
    assert [int(t) for t in fig.axes[0].get_xticks()] == [4, 32, 256, 4096]


def test_out_of_memory_without_the_device_memory_sits_above_every_line(tmp_path: Path, figures) -> None:
    recs = [record("tfbench", 4, 0.5, device_memory=None), record("tfbench", 8, 0.9, device_memory=None),
            record("tfbench", 16, status="oom", device_memory=None)]
    plots.memory_vs_T(load(store_of(tmp_path, recs), kind="run"), tmp_path / "figs")
    (fig,) = figures
    ((x, y, _),) = _crosses(fig)
    assert x == 16 and y > 0.9 and fig.axes[0].get_ylim()[1] > y
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["tfbench fp32", "out of memory (device memory not recorded)"]


def test_small_peaks_in_mib_and_options_in_the_label_when_they_differ(tmp_path: Path, figures) -> None:
    recs = [record("tfbench", T, T * 10 / 1024, device_memory=None) for T in (4, 8)]
    recs += [record("tfbench", T, T * 5 / 1024, cuda_graphs=True, device_memory=None) for T in (4, 8)]
    plots.memory_vs_T(load(store_of(tmp_path, recs), kind="run"), tmp_path / "figs")
    (fig,) = figures
    lines = _lines(fig)
    assert set(lines) == {"tfbench fp32 eager", "tfbench fp32 graphs"}
    assert lines["tfbench fp32 graphs"][1] == pytest.approx([20.0, 40.0])      # MiB: every peak under 1 GiB
    assert fig.axes[0].get_yaxis().get_label().get_text().endswith("(MiB)")
    assert fig.texts == []                                                   # nothing left out


def test_one_figure_per_arch_dataset_and_batch(tmp_path: Path, figures) -> None:
    recs = [record("tfbench", T, 1.0, batch=b) for b in (50, 100) for T in (4, 8)]
    recs.append(record("tfbench", 4, 1.0, batch=10))    # one T only: no figure of its own
    made = plots.memory_vs_T(load(store_of(tmp_path, recs), kind="run"), tmp_path / "figs")
    assert sorted(p.name for p in made) == ["memory_vs_T_CIFAR-10_ResNet18_B100.png",
                                            "memory_vs_T_CIFAR-10_ResNet18_B100.svg",
                                            "memory_vs_T_CIFAR-10_ResNet18_B50.png",
                                            "memory_vs_T_CIFAR-10_ResNet18_B50.svg"]
    assert [fig.axes[0].get_title() for fig in figures] == [
        "Spiking-ResNet18 training step, CIFAR-10, batch 50 (NVIDIA H200)",
        "Spiking-ResNet18 training step, CIFAR-10, batch 100 (NVIDIA H200)"]


def test_nothing_to_draw_says_why(tmp_path: Path) -> None:
    cpu = [record("tfbench", T, None, device_memory=None) for T in (4, 8)]       # ok, but no peak: a CPU run
    with pytest.raises(ValueError, match="at more than one T \\(peak memory is measured on CUDA devices only\\)"):
        plots.memory_vs_T(load(store_of(tmp_path / "cpu", cpu), kind="run"), tmp_path)
    one_t = [record("tfbench", 4, 1.0), record("spikingjelly", 4, 1.2)]
    with pytest.raises(ValueError, match="no \\(arch, dataset, batch size\\) group has training runs with a peak"):
        plots.memory_vs_T(load(store_of(tmp_path / "one", one_t), kind="run"), tmp_path)
