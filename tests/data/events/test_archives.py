"""The fetched archives and extracted files of N-MNIST and DvsGesture: missing or damaged ones are named.

Each test writes the tiny datasets of ``raw_event_files`` in their real formats, damages or removes a
part, and checks the one-line message names the file and the remedy, and that nothing half-made is left.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from tfbench.data.errors import DatasetCorrupted, DatasetMissing
from tfbench.data.events.frames import load_event_frames
from tfbench.data.events.specs import EVENT_DATASETS

from .. import raw_event_files as raw
from .conftest import needs_spikingjelly


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
