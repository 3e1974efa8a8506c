"""N-MNIST and DvsGesture through SpikingJelly, end to end on tiny datasets in their real raw formats.

The tiny datasets (``raw_event_files``) are written as the user fetches them (zip of Orchard ``.bin``
files; tar.gz of AEDAT 3.1 recordings with label CSVs), then loaded through the real path: checks,
extraction, SpikingJelly's conversion and frame integration, the cache. Every frame is compared with
the plain count of the events written. CPU only; SpikingJelly is imported once (about 8 s).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from tfbench.data import neuromorphic
from tfbench.data.errors import DataError, DatasetCorrupted, DatasetMissing
from tfbench.data.neuromorphic import (
    EVENT_DATASETS,
    load_event_frames,
    synthetic_event_frames,
    to_model_input,
)

from . import raw_event_files as raw

needs_spikingjelly = pytest.mark.skipif(importlib.util.find_spec("spikingjelly") is None,
                                        reason="SpikingJelly is not installed (pip install 'tfbench[peers]')")
SPLITS = {True: "train", False: "test"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> tuple[Path, dict[str, list[raw.Sample]]]:
    """Both datasets as fetched: archives under ``<root>/<name>/download/``."""
    root = tmp_path_factory.mktemp("data")
    return root, {"N-MNIST": raw.write_nmnist(root), "DvsGesture": raw.write_dvsgesture(root)}


@pytest.fixture
def nmnist_extracted(tmp_path) -> Path:
    """N-MNIST already extracted (``<root>/N-MNIST/extract/{Train,Test}/<digit>/*.bin``), no archives."""
    raw.write_nmnist(tmp_path, archives=False)
    return tmp_path


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
    monkeypatch.setattr(neuromorphic, "_convert_extracted", integrate_again)
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
    monkeypatch.setattr(neuromorphic._log, "hasHandlers", lambda: False)
    dataset = load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True)
    assert f"reusing the frame cache {dataset.cache_dir}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- missing

@needs_spikingjelly
@pytest.mark.parametrize("name", ["N-MNIST", "DvsGesture"])
def test_missing_dataset_says_what_to_fetch_from_where_and_where_to_put_it(tmp_path, name):
    spec = EVENT_DATASETS[name]
    with pytest.raises(DatasetMissing) as info:
        load_event_frames(name, tmp_path, raw.T, train=True, progress=False)
    message = str(info.value)
    assert "\n" not in message
    for file_name in spec.raw_files:
        assert str(tmp_path / name / "download" / file_name) in message
    assert spec.sources[0] in message
    assert f"{tmp_path / name / 'extract'}/ as {spec.extracted[0]}" in message
    assert list(tmp_path.iterdir()) == []  # nothing created on the way


@needs_spikingjelly
def test_partly_fetched_names_only_the_missing_archive(tmp_path):
    raw.write_nmnist(tmp_path)
    (tmp_path / "N-MNIST" / "download" / "Test.zip").unlink()
    with pytest.raises(DatasetMissing) as info:
        load_event_frames("N-MNIST", tmp_path, raw.T, train=True, progress=False)
    message = str(info.value)
    assert str(tmp_path / "N-MNIST" / "download" / "Test.zip") in message
    assert "Train.zip" not in message


# ---------------------------------------------------------------------------------------------- damaged

def _not_a_zip(archive: Path) -> None:
    archive.write_bytes(b"<html>Sign in to download</html>")


def _cut_in_half(archive: Path) -> None:
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])


def _flip_bytes_in_the_middle(archive: Path) -> None:
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0x55 for b in data[middle:middle + 4])
    archive.write_bytes(bytes(data))


def _wrong_gzip_crc(archive: Path) -> None:
    """Intact deflate data, a wrong CRC in the gzip trailer: only reading the stream to its end sees it."""
    data = bytearray(archive.read_bytes())
    data[-8] ^= 0xFF
    archive.write_bytes(bytes(data))


@needs_spikingjelly
@pytest.mark.parametrize("name, archive, damage, says", [
    ("N-MNIST", "Train.zip", _not_a_zip, "is not a zip archive, or is cut short"),
    ("N-MNIST", "Test.zip", _cut_in_half, "is not a zip archive, or is cut short"),
    ("N-MNIST", "Train.zip", _flip_bytes_in_the_middle, "truncated or damaged"),
    ("DvsGesture", "DvsGesture.tar.gz", _cut_in_half, "truncated or damaged"),
    ("DvsGesture", "DvsGesture.tar.gz", _wrong_gzip_crc, "truncated or damaged (BadGzipFile: CRC check failed"),
])
def test_damaged_archive_is_named_and_leaves_no_extraction(data_root, tmp_path, name, archive, damage, says):
    shutil.copytree(data_root[0] / name / "download", tmp_path / name / "download")
    damage(tmp_path / name / "download" / archive)
    with pytest.raises(DatasetCorrupted) as info:
        load_event_frames(name, tmp_path, raw.T, train=True, progress=False)
    message = str(info.value)
    assert says in message and str(tmp_path / name / "download" / archive) in message
    assert "\n" not in message
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["download"]


def _extract_dvsgesture(root: Path) -> Path:
    raw.write_dvsgesture(root)
    with tarfile.open(root / "DvsGesture" / "download" / "DvsGesture.tar.gz") as tf:
        tf.extractall(root / "DvsGesture" / "extract", filter="data")
    return root / "DvsGesture" / "extract" / "DvsGesture"


@needs_spikingjelly
def test_incomplete_nmnist_extraction_names_every_problem(nmnist_extracted):
    extract = nmnist_extracted / "N-MNIST" / "extract"
    shutil.rmtree(extract / "Train" / "7")
    truncated = extract / "Test" / "2" / "00021.bin"
    truncated.write_bytes(truncated.read_bytes()[:-2])
    (extract / "Train" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(DatasetCorrupted) as info:
        load_event_frames("N-MNIST", nmnist_extracted, raw.T, train=True, progress=False)
    message = str(info.value)
    assert f"{extract / 'Train' / '7'} is missing" in message
    assert f"{truncated} is 78 bytes, not a positive multiple of 5" in message
    assert f"{extract / 'Train' / '.DS_Store'} is unexpected" in message
    assert f"delete {extract}" in message
    assert not (nmnist_extracted / "N-MNIST" / "events_np").exists()


@needs_spikingjelly
@pytest.mark.parametrize("damage, says", [
    ("truncate", "user01_fluorescent.aedat ends inside packet"),
    ("no labels", "user24_led_labels.csv is missing"),
    ("no header end", "user01_fluorescent.aedat has no #!END-HEADER line"),
])
def test_damaged_dvsgesture_extraction_is_named(tmp_path, damage, says):
    folder = _extract_dvsgesture(tmp_path)
    recording = folder / "user01_fluorescent.aedat"
    if damage == "truncate":
        recording.write_bytes(recording.read_bytes()[:-3])
    elif damage == "no labels":
        (folder / "user24_led_labels.csv").unlink()
    else:
        recording.write_bytes(recording.read_bytes().replace(b"#!END-HEADER\r\n", b"#!END-HEADER\n"))
    with pytest.raises(DatasetCorrupted) as info:
        load_event_frames("DvsGesture", tmp_path, raw.T, train=True, progress=False)
    assert says in str(info.value) and str(folder) in str(info.value)
    assert not (tmp_path / "DvsGesture" / "events_np").exists()


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


# ------------------------------------------------------------------------------------------ specs, synthetic

def test_specs_are_the_real_sensors():
    assert {n: (s.sensor_size, s.num_classes, s.polarities) for n, s in EVENT_DATASETS.items()} == {
        "N-MNIST": ((34, 34), 10, 2), "DvsGesture": ((128, 128), 11, 2)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVENT_DATASETS["N-MNIST"].num_classes = 11


@pytest.mark.parametrize("name", ["N-MNIST", "DvsGesture"])
def test_synthetic_frames_have_the_real_shape_and_classes(name):
    spec = EVENT_DATASETS[name]
    H, W = spec.sensor_size
    dataset = synthetic_event_frames(name, T=8, num_samples=2 * spec.num_classes, seed=3)
    assert len(dataset) == 2 * spec.num_classes
    assert sorted(set(dataset.targets)) == list(range(spec.num_classes))
    frames, labels = next(iter(DataLoader(dataset, batch_size=spec.num_classes)))
    assert frames.shape == (spec.num_classes, 8, 2, H, W) and frames.dtype == torch.float32
    assert labels.tolist() == list(range(spec.num_classes))
    assert torch.all(frames >= 0) and torch.equal(frames, frames.round())
    per_sample = frames.sum(dim=(1, 2, 3, 4))
    assert torch.allclose(per_sample, torch.full_like(per_sample, spec.mean_events), rtol=0.1)
    per_frame = frames.sum(dim=(2, 3, 4))  # split_by="number": n // T events a frame, the rest in the last
    torch.testing.assert_close(per_frame[:, :-1], (per_sample // 8)[:, None].expand(-1, 7), rtol=0, atol=0)
    torch.testing.assert_close(per_frame[:, -1], per_sample - 7 * (per_sample // 8), rtol=0, atol=0)
    for label in range(spec.num_classes):  # the label's band of rows fires more: learnable
        rows = frames[label].sum(dim=(0, 1, 3))
        band = torch.zeros(H, dtype=torch.bool)
        band[label * H // spec.num_classes:(label + 1) * H // spec.num_classes] = True
        assert rows[band].mean() > 2 * rows[~band].mean()


def test_synthetic_frames_are_deterministic_by_seed_and_index():
    a = synthetic_event_frames("N-MNIST", T=4, num_samples=6, seed=7)
    b = synthetic_event_frames("N-MNIST", T=4, num_samples=6, seed=7)
    later_first = [b[i][0] for i in reversed(range(6))][::-1]
    for i in range(6):
        assert torch.equal(a[i][0], later_first[i])
    assert not torch.equal(a[0][0], synthetic_event_frames("N-MNIST", T=4, num_samples=6, seed=8)[0][0])
    assert not torch.equal(a[0][0], a[1][0])
    with pytest.raises(IndexError):
        a[6]


# ---------------------------------------------------------------------------------------------- to_model_input

def test_to_model_input_is_time_first_with_an_optional_zero_channel():
    frames = torch.rand(3, 5, 2, 6, 7, dtype=torch.float64)
    three = to_model_input(frames)
    assert three.shape == (5, 3, 3, 6, 7) and three.dtype == torch.float64 and three.is_contiguous()
    for t in range(5):
        for b in range(3):
            torch.testing.assert_close(three[t, b, :2], frames[b, t], rtol=0, atol=0)
    assert torch.count_nonzero(three[:, :, 2]) == 0
    two = to_model_input(frames, in_channels=2)
    assert two.shape == (5, 3, 2, 6, 7) and two.is_contiguous()
    torch.testing.assert_close(two, three[:, :, :2], rtol=0, atol=0)


@pytest.mark.parametrize("in_channels", [1, 4])
def test_to_model_input_names_the_valid_channel_counts(in_channels):
    with pytest.raises(ValueError, match="not one of 2, 3"):
        to_model_input(torch.zeros(1, 2, 2, 4, 4), in_channels=in_channels)


def test_to_model_input_rejects_frames_without_two_polarities():
    with pytest.raises(ValueError, match=r"\[B, T, 2, H, W\]"):
        to_model_input(torch.zeros(1, 2, 3, 4, 4))
