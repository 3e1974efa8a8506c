"""N-MNIST and DvsGesture through SpikingJelly, end to end on tiny datasets in their real raw formats.

The tiny datasets (``raw_event_files``) are written as the user fetches them (zip of Orchard ``.bin``
files; tar.gz of AEDAT 3.1 recordings with label CSVs), then loaded through the real path: checks,
extraction, SpikingJelly's conversion and frame integration, the cache. Every frame is compared with
the plain count of the events written. CPU only; SpikingJelly is imported once (about 8 s).
"""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from tfbench.data.encoding import to_model_input
from tfbench.data.errors import DataError, DatasetCorrupted
from tfbench.data.events import archives, progress
from tfbench.data.events.frames import load_event_frames
from tfbench.data.events.specs import EVENT_DATASETS
from tfbench.data.events.synthetic import synthetic_event_frames

from .. import raw_event_files as raw
from .conftest import needs_spikingjelly

SPLITS = {True: "train", False: "test"}


def _samples_by_file(samples: list[raw.Sample], train: bool) -> dict[tuple[str, str], raw.Sample]:
    return {(str(s.label), s.stem): s for s in samples if s.split == SPLITS[train]}


def _assert_frames_are_the_events(dataset, samples: list[raw.Sample], train: bool, H: int, W: int) -> None:
    expected = _samples_by_file(samples, train)
    assert len(dataset) == len(expected)
    seen = set()
    for i in range(len(dataset)):
        frames, label = dataset[i]
        cached = dataset.sample_path(i)
        sample = expected[(cached.parent.name, cached.stem)]
        seen.add((cached.parent.name, cached.stem))
        assert frames.dtype == torch.float32 and frames.shape == (raw.T, 2, H, W)
        assert type(label) is int and label == sample.label
        torch.testing.assert_close(frames, torch.from_numpy(sample.expected_frames(H, W)), rtol=0, atol=0)
    assert seen == set(expected)
    assert dataset.targets == [dataset[i][1] for i in range(len(dataset))]


# ---------------------------------------------------------------------------------------------- the real path

@needs_spikingjelly
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("name", ["N-MNIST", "DvsGesture"])
def test_frames_hold_the_events_written(data_root, name, split_by, train):
    root, written = data_root
    spec = EVENT_DATASETS[name]
    dataset = load_event_frames(name, root, raw.T, train, split_by, progress=False)
    assert dataset.cache_dir == root / name / f"frames_number_{raw.T}_split_by_{split_by}"
    assert dataset.cache_dir == spec.frame_cache(root, raw.T, split_by)
    _assert_frames_are_the_events(dataset, written[name], train, *spec.sensor_size)
    # DvsGesture has a class "10": DatasetFolder numbers folders in string order, the labels must not follow it
    assert sorted(set(dataset.targets)) == list(range(spec.num_classes))


@needs_spikingjelly
def test_loader_batches_and_model_input(data_root):
    root, _ = data_root
    dataset = load_event_frames("N-MNIST", root, raw.T, train=True, progress=False)
    frames, labels = next(iter(DataLoader(dataset, batch_size=4)))
    assert frames.shape == (4, raw.T, 2, 34, 34) and frames.dtype == torch.float32
    assert labels.tolist() == dataset.targets[:4]
    x = to_model_input(frames, in_channels=3)
    assert x.shape == (raw.T, 4, 3, 34, 34)
    torch.testing.assert_close(x[:, :, :2], frames.transpose(0, 1), rtol=0, atol=0)


@needs_spikingjelly
def test_second_load_reuses_the_cache(data_root, monkeypatch, caplog):
    root, written = data_root
    first = load_event_frames("DvsGesture", root, raw.T, train=True, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in first.cache_dir.rglob("*.npz")}
    assert len(stamps) == len(written["DvsGesture"])

    from spikingjelly.datasets import base

    def integrate_again(*args):
        raise AssertionError("the frame cache was integrated again")

    monkeypatch.setattr(base.FrameFixedNumberBuilder, "build_impl", integrate_again)
    monkeypatch.setattr(archives, "convert_extracted", integrate_again)
    caplog.set_level(logging.INFO, logger="tfbench.data")
    again = load_event_frames("DvsGesture", root, raw.T, train=True)
    assert again.cache_dir == first.cache_dir
    assert {p: p.stat().st_mtime_ns for p in again.cache_dir.rglob("*.npz")} == stamps
    assert any("reusing the frame cache" in m and str(first.cache_dir) in m for m in caplog.messages)
    _assert_frames_are_the_events(again, written["DvsGesture"], True, 128, 128)


@needs_spikingjelly
def test_extracted_layout_loads_and_reports_each_stage(nmnist_extracted, caplog):
    caplog.set_level(logging.INFO, logger="tfbench.data")
    dataset = load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=False)
    _assert_frames_are_the_events(dataset, raw.nmnist_samples(), False, 34, 34)
    stages = " | ".join(caplog.messages)
    assert "converting 21 samples" in stages and "integrating 21 samples" in stages
    assert f"cache: {dataset.cache_dir}" in stages
    assert not list(nmnist_extracted.glob("N-MNIST/*.partial-*"))  # staging folders are gone


@needs_spikingjelly
def test_progress_off_is_silent_and_unconfigured_logging_goes_to_stderr(nmnist_extracted, caplog, capsys,
                                                                        monkeypatch):
    caplog.set_level(logging.INFO, logger="tfbench.data")
    load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, progress=False)
    assert caplog.messages == []
    monkeypatch.setattr(progress._log, "hasHandlers", lambda: False)
    dataset = load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True)
    assert f"reusing the frame cache {dataset.cache_dir}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- damaged caches

@needs_spikingjelly
def test_interrupted_frame_cache_is_reported(nmnist_extracted):
    cache = EVENT_DATASETS["N-MNIST"].frame_cache(nmnist_extracted, raw.T, "number")
    load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, split_by="time", progress=False)
    cache.mkdir()
    marker = cache.with_name(cache.name + ".building")
    marker.touch()
    with pytest.raises(DatasetCorrupted) as info:
        load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, progress=False)
    assert f"delete {cache} and {marker}" in str(info.value)


@needs_spikingjelly
def test_incomplete_and_damaged_frame_caches_are_reported(nmnist_extracted):
    dataset = load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, progress=False)
    damaged = dataset.sample_path(0)
    damaged.write_bytes(b"not an npz")
    with pytest.raises(DatasetCorrupted) as info:
        dataset[0]
    assert str(damaged) in str(info.value) and f"delete {dataset.cache_dir}" in str(info.value)
    dataset.sample_path(1).unlink()
    with pytest.raises(DatasetCorrupted) as info:
        load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, progress=False)
    assert f"{dataset.cache_dir} holds 20 samples, not the 21" in str(info.value)


@needs_spikingjelly
def test_failed_integration_leaves_no_half_cache_and_gives_the_cause(nmnist_extracted):
    """An N-MNIST sample with two empty time bins: SpikingJelly's split_by='time' cannot cut it."""
    gap = raw.nmnist_bin([(1, 1, 1, 0), (2, 2, 0, 10), (3, 3, 1, 3 * raw.FRAME_US + 5),
                          (4, 4, 0, 4 * raw.FRAME_US)])
    (nmnist_extracted / "N-MNIST" / "extract" / "Test" / "4" / "00777.bin").write_bytes(gap)
    cache = EVENT_DATASETS["N-MNIST"].frame_cache(nmnist_extracted, raw.T, "time")
    with pytest.raises(DatasetCorrupted) as info:
        load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, split_by="time", progress=False)
    message = str(info.value)
    assert "IndexError" in message and str(cache) in message and "split_by='number' avoids it" in message
    assert not cache.exists() and not cache.with_name(cache.name + ".building").exists()
    dataset = load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, split_by="number",
                                progress=False)
    assert len(dataset) == 11


def test_without_spikingjelly_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "spikingjelly.datasets", None)
    with pytest.raises(DataError) as info:
        load_event_frames("N-MNIST", tmp_path, raw.T, train=True, progress=False)
    assert "pip install 'tfbench[peers]'" in str(info.value)
    frames, label = synthetic_event_frames("N-MNIST", raw.T, num_samples=2, seed=0)[1]  # needs no SpikingJelly
    assert frames.shape == (raw.T, 2, 34, 34) and label == 1


def test_bad_arguments_name_the_valid_choices(tmp_path):
    with pytest.raises(ValueError, match="known: N-MNIST, DvsGesture"):
        load_event_frames("NMNIST", tmp_path, raw.T, train=True)
    with pytest.raises(ValueError, match="not one of number, time"):
        load_event_frames("N-MNIST", tmp_path, raw.T, train=True, split_by="count")
    with pytest.raises(ValueError, match="positive int"):
        load_event_frames("N-MNIST", tmp_path, 0, train=True)
    with pytest.raises(ValueError, match="known: N-MNIST, DvsGesture"):
        synthetic_event_frames("dvsgesture", raw.T, 4, seed=0)
