"""``tfbench run`` / ``compare`` on N-MNIST and DvsGesture, end to end on the CPU: synthetic frames, a
tiny N-MNIST written in its real raw format (``tests/data/raw_event_files.py``), missing and damaged data."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

from ..data import raw_event_files as raw
from .conftest import assert_one_line_error

TINY = ("-T", "2", "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--device", "cpu")
needs_spikingjelly = pytest.mark.skipif(importlib.util.find_spec("spikingjelly") is None,
                                        reason="SpikingJelly is not installed (pip install 'tfbench[peers]')")


def _record(out: Path) -> dict:
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_synthetic_nmnist_trains(cli, tmp_path: Path) -> None:
    result = cli("run", "--dataset", "N-MNIST", "--synthetic", *TINY, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    rec = _record(tmp_path)
    assert (rec["status"], rec["dataset"], rec["split_by"], rec["in_channels"]) == ("ok", "N-MNIST", "number", 3)
    assert rec["steps_per_epoch"] == 2 and rec["timed_steps"] == 2 and rec["step_ms"] > 0
    assert rec["n_params"] == 11_181_642                     # the 3-channel stem, 10 classes
    assert "frames split by number, 3 input channels" in result.output


def test_synthetic_dvsgesture_with_a_two_channel_stem_trains(cli, tmp_path: Path) -> None:
    result = cli("run", "--dataset", "DvsGesture", "--synthetic", "--in-channels", "2", "--backend", "torch",
                 *TINY, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    rec = _record(tmp_path)
    assert (rec["status"], rec["dataset"], rec["split_by"], rec["in_channels"]) == ("ok", "DvsGesture", "number", 2)
    assert rec["n_params"] == 11_181_642 - 64 * 7 * 7 + 513   # a 2-channel stem; 11 classes


@needs_spikingjelly
def test_real_format_nmnist_from_the_data_root(cli, tmp_path: Path, caplog) -> None:
    """Orchard .bin files zipped as fetched: extracted, converted and integrated by SpikingJelly with
    --split-by time, then trained on; the frame cache for (T, time) is the one made, and its place is shown
    (on stderr; to the ``tfbench.data`` logger when logging is configured, as under pytest)."""
    caplog.set_level(logging.INFO, logger="tfbench.data")
    root = tmp_path / "data"
    raw.write_nmnist(root)
    result = cli("run", "--dataset", "N-MNIST", "--data-root", root, "--split-by", "time", "-T", raw.T,
                 "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--device", "cpu", "--backend", "torch",
                 "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rec = _record(tmp_path / "out")
    assert (rec["status"], rec["dataset"], rec["synthetic"], rec["split_by"], rec["in_channels"], rec["T"]) == (
        "ok", "N-MNIST", False, "time", 3, raw.T)
    assert rec["steps_per_epoch"] == 2 and rec["test_batches"] == 2
    caches = sorted(p.name for p in (root / "N-MNIST").glob("frames_number_*"))
    assert caches == [f"frames_number_{raw.T}_split_by_time"]
    assert len(list((root / "N-MNIST" / caches[0]).rglob("*.npz"))) == len(raw.nmnist_samples())
    assert any(str(root / "N-MNIST" / caches[0]) in m for m in caplog.messages)


def test_missing_event_data_is_one_line(cli, tmp_path: Path) -> None:
    line = assert_one_line_error(cli("run", "--dataset", "N-MNIST", "--data-root", tmp_path / "none", *TINY,
                                     "--out", tmp_path), "N-MNIST was not found", "Train.zip",
                                 str(tmp_path / "none" / "N-MNIST" / "download"), codes=(1,))
    assert line.startswith("Error: ")
    assert_one_line_error(cli("compare", "--dataset", "DvsGesture", "--backends", "torch", "--data-root",
                              tmp_path / "none", *TINY, "--out", tmp_path), "DvsGesture was not found",
                          "DvsGesture.tar.gz", codes=(1,))
    assert not (tmp_path / "runs.jsonl").exists()


@needs_spikingjelly
@pytest.mark.parametrize("damage", ["truncated archive", "truncated event file"])
def test_damaged_event_data_is_one_error_line(cli, tmp_path: Path, damage: str) -> None:
    """Progress lines ("[tfbench] ...") may come first; the error is one line, exit 1, no traceback."""
    if damage == "truncated archive":
        raw.write_nmnist(tmp_path)
        archive = tmp_path / "N-MNIST" / "download" / "Train.zip"
        archive.write_bytes(archive.read_bytes()[:600])
        says = (str(archive), "fetch it again")
    else:
        raw.write_nmnist(tmp_path, archives=False)
        sample = next((tmp_path / "N-MNIST" / "extract" / "Test" / "7").glob("*.bin"))
        sample.write_bytes(sample.read_bytes()[:-2])
        says = (sample.name, "truncated", "delete")
    result = cli("run", "--dataset", "N-MNIST", "--data-root", tmp_path, *TINY, "--out", tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert all(line.startswith("[tfbench] ") for line in lines[:-1]), result.output
    assert lines[-1].startswith("Error: N-MNIST: ") and all(s in lines[-1] for s in says), lines[-1]
    assert not (tmp_path / "runs.jsonl").exists()
