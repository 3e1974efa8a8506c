"""The JSON Lines store: whole-line atomic appends, a torn last line skipped, resume, upsert on --force."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfbench.results import store as store_module
from tfbench.results.schema import LayerRecord, RunRecord
from tfbench.results.store import JsonlStore, Store, load


def run_record(backend: str = "tfbench", status: str = "ok", step_ms: float | None = 10.0, **kw) -> RunRecord:
    base = dict(dataset="MNIST", arch="Spiking-ResNet18", backend=backend, neuron="LIF", neuron_params="p",
                device="cpu", device_name="x86_64", T=4, batch_size=16, epochs=1, max_steps=2, lr=1e-3, seed=0,
                precision="fp32", synthetic=True, step_mode="multi", status=status, step_ms=step_ms,
                train_time_s=[1.0], test_accuracy=[0.5])
    base.update(kw)
    return RunRecord(**base)


def layer_record(backend: str = "tfbench", T: int = 8, median_ms: float = 1.0) -> LayerRecord:
    return LayerRecord(backend=backend, precision="fp32", T=T, N=1000, direction="both", mode="eager",
                       device="cpu", neuron="p", status="ok", checked=True, median_ms=median_ms)


def test_run_record_round_trip_and_key() -> None:
    r = run_record()
    d = json.loads(json.dumps(r.as_dict()))
    assert RunRecord.from_dict(d) == r
    assert d["key"] == r.key
    assert run_record(step_ms=99.0).key == r.key            # a measurement is not part of the key
    assert run_record(backend="torch").key != r.key
    assert run_record(device_name="NVIDIA H100").key != r.key
    for name in ("train_time_s", "test_time_s", "samples_per_s", "test_accuracy", "peak_mem_bytes", "status",
                 "env"):
        assert name in d


def test_append_and_load(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.append(run_record("tfbench"))
    s.append(run_record("torch", step_ms=20.0))
    s.append(layer_record())
    runs = load(tmp_path, kind="run")
    assert list(runs["backend"]) == ["tfbench", "torch"]
    assert list(runs["step_ms"]) == [10.0, 20.0]
    assert list(load(tmp_path / "layer.jsonl")["backend"]) == ["tfbench"]
    assert len(load(tmp_path)) == 3
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["kind"] == "run" for line in lines)


def test_nan_is_stored_as_null(tmp_path: Path) -> None:
    s = JsonlStore(tmp_path / "runs.jsonl")
    s.append(run_record(step_ms=math.nan))
    assert s.records()[0]["step_ms"] is None


def test_torn_last_line_is_skipped_and_the_next_append_survives(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    s = JsonlStore(path)
    s.append(run_record("tfbench"))
    whole = json.dumps(run_record("torch").as_dict())
    with open(path, "a") as f:
        f.write(whole[: len(whole) // 2])                   # a crash in the middle of a write
    with pytest.warns(UserWarning, match="torn"):
        assert [d["backend"] for d in s.records()] == ["tfbench"]
    s.append(run_record("norse"))
    with pytest.warns(UserWarning, match="torn"):
        assert [d["backend"] for d in s.records()] == ["tfbench", "norse"]


def test_killed_writer_never_corrupts_finished_records(tmp_path: Path) -> None:
    """A process killed while appending in a loop leaves only whole records (and at worst a torn tail)."""
    path = tmp_path / "runs.jsonl"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tfbench.results.store import JsonlStore
        from tests.results.test_store import run_record
        s = JsonlStore({str(path)!r})
        for i in range(40):
            s.append(run_record(backend=f"b{{i}}"))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    records = JsonlStore(path).records()
    assert [d["backend"] for d in records] == [f"b{i}" for i in range(40)]


def test_has_for_resume(tmp_path: Path) -> None:
    s = Store(tmp_path)
    ok, err, na, oom = (run_record("a"), run_record("b", status="error: RuntimeError: boom"),
                        run_record("c", status="unavailable: not installed"), run_record("d", status="oom"))
    for r in (ok, err, na, oom):
        s.append(r)
    assert s.has(ok.key) and s.has(na.key) and s.has(oom.key)
    assert not s.has(err.key)                                # errors are retried on a re-run
    assert not s.has(run_record("zzz").key)
    assert store_module.has(tmp_path, ok.key) and store_module.has(tmp_path / "runs.jsonl", ok.key)
    assert not Store(tmp_path / "empty").has(ok.key)


def test_force_upsert_newest_wins(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.append(run_record("tfbench", step_ms=10.0))
    s.append(run_record("torch", step_ms=30.0))
    s.append(run_record("tfbench", step_ms=7.0))             # --force: the same config again
    df = load(tmp_path, kind="run")
    assert len(df) == 2
    assert df.set_index("backend")["step_ms"].to_dict() == {"tfbench": 7.0, "torch": 30.0}
    assert len(JsonlStore(tmp_path / "runs.jsonl").records(history=True)) == 3


def test_module_level_api_used_by_the_layer_sweep(tmp_path: Path) -> None:
    path = tmp_path / "layer.jsonl"
    rec = layer_record()
    store_module.append(path, rec.as_dict())
    assert store_module.has(path, rec.key)
    store_module.append(tmp_path, layer_record(T=16))      # a folder: the record's kind picks the file
    assert len(load(path)) == 2
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing")


def test_concurrent_appends_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tfbench.results.store import JsonlStore
        from tests.results.test_store import run_record
        s = JsonlStore({str(path)!r})
        for i in range(25):
            s.append(run_record(backend=sys.argv[1] + str(i), neuron_params="x" * 5000))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, tag]) for tag in ("p", "q")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = path.read_text().splitlines()
    assert len(lines) == 50
    assert all(json.loads(line)["neuron_params"] == "x" * 5000 for line in lines)
    assert os.path.getsize(path) == sum(len(line) + 1 for line in lines)


def test_status_words_are_one_set() -> None:
    from tfbench.results import schema

    assert schema.normalize_status("unavailable: not installed") == "n/a: not installed"
    assert schema.status_word("unavailable: x") == schema.NA and schema.status_word("error: boom") == schema.ERROR
    assert [schema.is_finished(s) for s in ("ok", "oom", "n/a: x", "unavailable: x", "error: y", "pending")] == [
        True, True, True, True, False, False]
    assert schema.na("why") == "n/a: why" and schema.error("what") == "error: what"


def test_committed_records_keep_their_keys() -> None:
    """The schema's key derivation gives every committed record the key it was written with, so a
    resumed sweep over committed results still skips them."""
    import glob
    import json

    from tfbench.results.schema import RECORD_KINDS

    root = Path(__file__).resolve().parents[2]
    files = glob.glob(str(root / "results" / "**" / "*.jsonl"), recursive=True)
    assert files
    for path in files:
        for line in open(path):
            d = json.loads(line)
            assert RECORD_KINDS[d["kind"]].from_dict(d).key == d["key"], (path, d.get("backend"))
