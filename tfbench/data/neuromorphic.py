"""N-MNIST and DVS128 Gesture as frames, read through SpikingJelly 2.0's dataset classes, as the paper did.

Neither dataset may be downloaded automatically (licences): the user fetches the archives, and this
module checks them, extracts them and hands the rest to SpikingJelly (``spikingjelly.datasets``:
``NMNIST`` and ``DVS128Gesture``, ``data_type="frame"``, ``frames_number=T``, ``split_by``). Every
folder below is SpikingJelly's own layout, one folder per dataset under the data root:

    <root>/N-MNIST/download/Train.zip, Test.zip                 what the user fetches
    <root>/N-MNIST/extract/Train/<digit>/<id>.bin, Test/...     the archives extracted (or put there by hand)
    <root>/DvsGesture/download/DvsGesture.tar.gz                what the user fetches
    <root>/DvsGesture/extract/DvsGesture/userXX_<lighting>.aedat, userXX_<lighting>_labels.csv,
                                         trials_to_train.txt, trials_to_test.txt
    <root>/<dataset>/events_np/{train,test}/<class>/*.npz       events as arrays (SpikingJelly converts)
    <root>/<dataset>/frames_number_<T>_split_by_<s>/{train,test}/<class>/*.npz
                                                                the frame cache, one per (T, split_by)

The first use of a (T, split_by) integrates every sample of both splits to disk (minutes); later runs
read that cache. Each stage reports progress and the cache's path. Extraction and conversion write to a
temporary folder that is renamed when complete, so an interrupted run leaves nothing half-made.

Frames are event counts per pixel, polarity and time bin: float32 ``[T, 2, H, W]``, channel 0 the OFF
events (polarity 0) and channel 1 the ON events, as SpikingJelly integrates them.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataError, DatasetCorrupted, DatasetMissing

_log = logging.getLogger("tfbench.data")

SPLIT_BY = ("number", "time")  # SpikingJelly's two ways to cut a sample's events into T frames
IN_CHANNELS = (2, 3)           # the 2 polarities as they are, or plus a zero channel for the 3-channel stem
PROGRESS_EVERY_S = 10.0        # a long stage logs a line this often: alive in a CI log without flooding it
MAX_PROBLEMS_SHOWN = 5         # a damaged extraction can have thousands of bad files; the first few say enough

# SpikingJelly's folder names under a dataset's root (``NeuromorphicDatasetFolder.prepare_raw_dataset``).
DOWNLOAD, EXTRACT, EVENTS = "download", "extract", "events_np"


@dataclass(frozen=True)
class EventSpec:
    """One event-camera dataset: its sensor, its classes, and what a user must fetch and where it goes."""

    name: str                        # the name tfbench uses ("N-MNIST", "DvsGesture")
    sensor_size: tuple[int, int]     # (H, W) in pixels
    num_classes: int
    raw_files: tuple[str, ...]       # the archives to fetch, put under <root>/<dirname>/download/
    sources: tuple[str, ...]         # the official pages they come from
    extracted: tuple[str, ...]       # the extracted layout SpikingJelly reads, under <root>/<dirname>/extract/
    dirname: str                     # the dataset's folder under the data root
    sj_class: str                    # the SpikingJelly class in ``spikingjelly.datasets``
    mean_events: int                 # the order of a real sample's event count: the synthetic data's density
    polarities: int = 2

    def dataset_root(self, root: Path | str) -> Path:
        """``<root>/<dirname>``: the folder SpikingJelly is given as the dataset's root."""
        return Path(root) / self.dirname

    def frame_cache(self, root: Path | str, T: int, split_by: str) -> Path:
        """The frame cache for (T, split_by): SpikingJelly's ``FrameFixedNumberBuilder.processed_root``."""
        return self.dataset_root(root) / f"frames_number_{T}_split_by_{split_by}"


EVENT_DATASETS: dict[str, EventSpec] = {
    "N-MNIST": EventSpec(
        name="N-MNIST",
        sensor_size=(34, 34),
        num_classes=10,
        raw_files=("Train.zip", "Test.zip"),
        sources=("https://www.garrickorchard.com/datasets/n-mnist",
                 "Mendeley Data https://data.mendeley.com/datasets/468j46mzdv/1 (doi:10.17632/468j46mzdv.1)"),
        extracted=("Train/<digit>/<id>.bin", "Test/<digit>/<id>.bin"),
        dirname="N-MNIST",
        sj_class="NMNIST",
        mean_events=4_200,
    ),
    "DvsGesture": EventSpec(
        name="DvsGesture",
        sensor_size=(128, 128),
        num_classes=11,
        raw_files=("DvsGesture.tar.gz",),
        sources=("https://research.ibm.com/interactive/dvsgesture/",),
        extracted=("DvsGesture/userXX_<lighting>.aedat", "DvsGesture/userXX_<lighting>_labels.csv",
                   "DvsGesture/trials_to_train.txt", "DvsGesture/trials_to_test.txt"),
        dirname="DvsGesture",
        sj_class="DVS128Gesture",
        mean_events=200_000,
    ),
}


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------

def load_event_frames(name: str, root: Path | str, T: int, train: bool, split_by: str = "number",
                      progress: bool = True) -> EventFrames:
    """An event dataset as frames, through SpikingJelly's ``NMNIST`` / ``DVS128Gesture``.

    ``root`` is the data root; the dataset lives in ``root/<name>/`` (see ``EventSpec.dataset_root``).
    Each item is ``(frames, label)``: ``frames`` float32 ``[T, 2, H, W]`` (event counts; channel 0 OFF,
    channel 1 ON), ``label`` an int in ``[0, num_classes)``; a DataLoader batches them to
    ``[B, T, 2, H, W]`` (``to_model_input`` makes that ``[T, B, C, H, W]``).

    The first call for a (T, split_by) extracts and converts what is missing and integrates the frame
    cache (``EventFrames.cache_dir``); later calls reuse it. ``progress`` logs each stage to the
    ``tfbench.data`` logger (to stderr when logging is not configured).

    Raises ``ValueError`` for an unknown ``name``/``split_by`` or a bad ``T``; ``DatasetMissing`` when
    the files are not there (the message says which, from where, and where to put them);
    ``DatasetCorrupted`` for a damaged archive, extraction or cache; ``DataError`` without SpikingJelly.
    """
    spec = _spec(name)
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by={split_by!r} is not one of {', '.join(SPLIT_BY)}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T={T!r}: the number of frames must be a positive int")
    if not isinstance(train, bool):
        raise ValueError(f"train={train!r} must be True (the training split) or False (the test split)")
    sj_datasets = _import_spikingjelly_datasets()
    say = _Progress(progress)
    ds_root = spec.dataset_root(root)
    _prepare_events(spec, ds_root, sj_datasets, say)
    sj_dataset, cache_dir = _frames(spec, Path(root), sj_datasets, T, train, split_by, say)
    return EventFrames(sj_dataset, spec, cache_dir, T, split_by, train)


def synthetic_event_frames(name: str, T: int, num_samples: int, seed: int) -> SyntheticEventFrames:
    """Random event frames of a dataset's real shape and class count: no disk, no SpikingJelly.

    Item ``i`` is ``(frames float32 [T, 2, H, W], label int)``, ``label = i % num_classes``. A sample
    is a Poisson number (mean ``EventSpec.mean_events``) of random events, x and polarity uniform, y
    more often in a band of rows that depends on the label (so that a model can learn it), integrated
    into T frames as SpikingJelly's ``split_by="number"`` does: event counts per pixel, polarity and
    frame, each frame taking an equal share of the events in order. Deterministic in ``(seed, i)``,
    whatever order items are read in.
    """
    spec = _spec(name)
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T={T!r}: the number of frames must be a positive int")
    if num_samples < 0 or seed < 0:
        raise ValueError(f"num_samples={num_samples} and seed={seed} must both be >= 0")
    return SyntheticEventFrames(spec, T, num_samples, seed)


def to_model_input(frames: Tensor, in_channels: int = 3) -> Tensor:
    """Batch-first event frames ``[B, T, 2, H, W]`` to the model's time-first ``[T, B, C, H, W]``.

    ``in_channels=3`` appends a zero third channel (how the paper feeds the 2 polarities to the
    3-channel stem); ``in_channels=2`` keeps the polarities as they are. Same dtype and device as
    ``frames``; the result is contiguous (a copy).
    """
    if in_channels not in IN_CHANNELS:
        raise ValueError(f"in_channels={in_channels!r} is not one of {', '.join(map(str, IN_CHANNELS))}")
    if frames.dim() != 5 or frames.shape[2] != 2:
        raise ValueError(f"frames must be [B, T, 2, H, W] (2 polarities), got {list(frames.shape)}")
    time_first = frames.transpose(0, 1)
    if in_channels == 2:
        return time_first.contiguous()
    return torch.cat([time_first, torch.zeros_like(time_first[:, :, :1])], dim=2)


class EventFrames(Dataset):
    """A SpikingJelly frame dataset, giving torch tensors and the dataset's own class numbers.

    Item ``i``: ``(frames float32 [T, 2, H, W], label int)``. ``cache_dir`` is the frame cache
    (both splits); ``sample_path(i)`` the cached file of item ``i``; ``targets`` every item's label.
    """

    def __init__(self, sj_dataset, spec: EventSpec, cache_dir: Path, T: int, split_by: str, train: bool):
        self._sj = sj_dataset
        self.spec, self.cache_dir, self.T, self.split_by, self.train = spec, cache_dir, T, split_by, train
        # torchvision's DatasetFolder numbers the class folders in string order ("10" before "2");
        # the folder name is the dataset's class number, so map back to it.
        self._label_of = [int(folder) for folder in sj_dataset.classes]
        self.targets = [self._label_of[target] for _, target in sj_dataset.samples]

    def __len__(self) -> int:
        return len(self._sj.samples)

    def sample_path(self, index: int) -> Path:
        """The cached frame file of item ``index``."""
        return Path(self._sj.samples[index][0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, target = self._sj.samples[index]
        H, W = self.spec.sensor_size
        expected = (self.T, self.spec.polarities, H, W)
        try:
            frames = self._sj.loader(path)
        except Exception as exc:
            raise DatasetCorrupted(
                f"{self.spec.name}: cannot read the cached frames {path} ({_why(exc)}); "
                f"delete {self.cache_dir} and run again to integrate the frames anew") from exc
        if frames.shape != expected:
            raise DatasetCorrupted(
                f"{self.spec.name}: the cached frames {path} have shape {list(frames.shape)}, not "
                f"{list(expected)}; delete {self.cache_dir} and run again to integrate the frames anew")
        return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)), self._label_of[target]


class SyntheticEventFrames(Dataset):
    """Random event frames of a dataset's shape; see ``synthetic_event_frames``."""

    CLASS_BAND_GAIN = 3.0  # an event lands (1 + gain) times as often in a row of the label's band: learnable

    def __init__(self, spec: EventSpec, T: int, num_samples: int, seed: int):
        self.spec, self.T, self.num_samples, self.seed = spec, T, num_samples, seed
        self.num_classes = spec.num_classes
        self.targets = [i % spec.num_classes for i in range(num_samples)]

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        (H, W), P, T = self.spec.sensor_size, self.spec.polarities, self.T
        label = self.targets[index]
        rng = np.random.default_rng([self.seed, index])  # an independent stream per (seed, item)
        row_weight = np.ones(H)
        row_weight[label * H // self.num_classes:(label + 1) * H // self.num_classes] += self.CLASS_BAND_GAIN
        n = int(rng.poisson(self.spec.mean_events))
        y = rng.choice(H, size=n, p=row_weight / row_weight.sum())
        x = rng.integers(W, size=n)
        p = rng.integers(P, size=n)
        # SpikingJelly's split_by="number": frame k holds events [k * (n // T), (k + 1) * (n // T)), the
        # last frame the rest (all of them when n < T)
        per_frame = n // T
        frame = np.minimum(np.arange(n) // per_frame, T - 1) if per_frame else np.full(n, T - 1)
        counts = np.bincount(((frame * P + p) * H + y) * W + x, minlength=T * P * H * W)
        return torch.from_numpy(counts.astype(np.float32).reshape(T, P, H, W)), label


# --------------------------------------------------------------------------------------------------
# Preparing the events: check, extract, convert (SpikingJelly's create_raw_from_extracted)
# --------------------------------------------------------------------------------------------------

def _why(exc: BaseException) -> str:
    """An exception as one line: its type and message, whitespace collapsed (tarfile's span lines)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _spec(name: str) -> EventSpec:
    try:
        return EVENT_DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown event dataset {name!r}; known: {', '.join(EVENT_DATASETS)}") from None


def _import_spikingjelly_datasets():
    try:
        import spikingjelly.datasets as sj_datasets
    except ImportError as exc:
        raise DataError(f"N-MNIST and DvsGesture are read through SpikingJelly 2.0, which is not installed "
                        f"({exc}); pip install 'tfbench[peers]'") from exc
    return sj_datasets


class _Progress:
    """Stage lines for slow first-time work: to the ``tfbench.data`` logger, or stderr if logging is unset."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if _log.hasHandlers():
            _log.info(message)
        else:
            print(f"[tfbench] {message}", file=sys.stderr, flush=True)


def _prepare_events(spec: EventSpec, ds_root: Path, sj_datasets, say: _Progress) -> None:
    """Make ``ds_root/events_np`` (SpikingJelly's raw events) if missing, and check it."""
    events = ds_root / EVENTS
    sj_marker = events.with_name(f"{EVENTS}.building")  # left by SpikingJelly's own interrupted preparation
    if sj_marker.exists():
        raise DatasetCorrupted(f"{spec.name}: {sj_marker} marks an interrupted SpikingJelly preparation; "
                               f"delete it and {events}, then run again")
    if not events.exists():
        extract = ds_root / EXTRACT
        if not extract.exists():
            _extract_archives(spec, ds_root, say)
        total = _CHECK_EXTRACTED[spec.name](spec, extract)
        _convert_extracted(spec, ds_root, getattr(sj_datasets, spec.sj_class), total, say)
    _check_events(spec, events)


def _missing_message(spec: EventSpec, ds_root: Path, absent: list[str]) -> str:
    download, extract = ds_root / DOWNLOAD, ds_root / EXTRACT
    where = " and ".join(str(download / f) for f in absent)
    layout = ", ".join(spec.extracted[:-1]) + f" and {spec.extracted[-1]}"
    return (f"{spec.name} was not found under {ds_root} (its licence forbids automatic download). "
            f"Fetch {' and '.join(absent)} from {' or '.join(spec.sources)} and put "
            f"{'it' if len(absent) == 1 else 'them'} at {where}; if you have the extracted files instead, "
            f"put them in {extract}{os.sep} as {layout}.")


def _extract_archives(spec: EventSpec, ds_root: Path, say: _Progress) -> None:
    """Extract the fetched archives into ``ds_root/extract``, atomically; ``DatasetMissing`` if absent."""
    download = ds_root / DOWNLOAD
    absent = [f for f in spec.raw_files if not (download / f).is_file()]
    if absent:
        raise DatasetMissing(_missing_message(spec, ds_root, absent))
    staging = Path(tempfile.mkdtemp(dir=ds_root, prefix=f"{EXTRACT}.partial-"))
    try:
        for file_name in spec.raw_files:
            archive = download / file_name
            say(f"{spec.name}: extracting {archive} ({archive.stat().st_size / 2**20:.0f} MiB) ...")
            start = time.monotonic()
            members = _extract_one(spec, archive, staging, say)
            say(f"{spec.name}: extracted {members} files from {archive.name} "
                f"in {time.monotonic() - start:.1f} s")
        _CHECK_EXTRACTED[spec.name](spec, staging, shown_as=ds_root / EXTRACT)
        _publish(staging, ds_root / EXTRACT)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_one(spec: EventSpec, archive: Path, into: Path, say: _Progress) -> int:
    refetch = f"fetch it again from {' or '.join(spec.sources)}"
    if archive.name.endswith(".zip"):
        if not zipfile.is_zipfile(archive):
            raise DatasetCorrupted(f"{spec.name}: {archive} is not a zip archive, or is cut short "
                                   f"({archive.stat().st_size} bytes); {refetch} and put it there again")
        extracted = _extract_zip(archive, into)
    else:
        if not tarfile.is_tarfile(archive):
            raise DatasetCorrupted(f"{spec.name}: {archive} is not a tar.gz archive "
                                   f"({archive.stat().st_size} bytes); {refetch} and put it there again")
        extracted = _extract_tar(archive, into)
    count, last = 0, time.monotonic()
    try:
        for count in extracted:  # a generator: the archive is read, and fails, inside this loop
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                say(f"{spec.name}: {count} files extracted from {archive.name} ...")
                last = time.monotonic()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise DatasetCorrupted(f"{spec.name}: {archive} is truncated or damaged ({_why(exc)}); "
                               f"{refetch} and put it there again") from exc
    return count


def _extract_zip(archive: Path, into: Path) -> Iterator[int]:
    with zipfile.ZipFile(archive) as zf:  # ZipFile.extract sanitises member paths; reading checks each CRC
        for count, member in enumerate(zf.infolist(), 1):
            zf.extract(member, into)
            yield count


def _extract_tar(archive: Path, into: Path) -> Iterator[int]:
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # refuse links/paths out of `into`
    with tarfile.open(archive, "r:*") as tf:
        for count, member in enumerate(tf, 1):
            tf.extract(member, into, **extra)
            yield count
        while tf.fileobj.read(1 << 20):  # tar stops at its end blocks; gzip checks its CRC only at the very end
            pass


def _publish(staging: Path, final: Path) -> None:
    """Rename a completed staging folder into place; if another process got there first, keep theirs."""
    try:
        staging.rename(final)
    except OSError:
        if not final.exists():
            raise


def _problems_message(spec: EventSpec, where: Path, problems: list[str], remedy: str) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
    return f"{spec.name}: the extracted files in {where} are incomplete or damaged: {shown}{more}; {remedy}"


def _extracted_remedy(spec: EventSpec, shown_as: Path) -> str:
    download = shown_as.parent / DOWNLOAD
    return (f"delete {shown_as} and run again to extract {' and '.join(spec.raw_files)} from {download} anew "
            f"(fetch them from {' or '.join(spec.sources)} if they are not there)")


def _check_extracted_nmnist(spec: EventSpec, extract: Path, shown_as: Path | None = None) -> int:
    """Check ``Train|Test/<digit>/*.bin`` (5 bytes an event); return the number of samples."""
    shown_as = shown_as or extract
    problems: list[str] = []
    total = 0
    for split in ("Train", "Test"):
        split_dir = extract / split
        if not split_dir.is_dir():
            problems.append(f"{shown_as / split} is missing")
            continue
        expected = {str(digit) for digit in range(spec.num_classes)}
        entries = {entry.name: entry for entry in os.scandir(split_dir)}
        problems += [f"{shown_as / split / d} is missing" for d in sorted(expected - entries.keys())]
        problems += [f"{shown_as / split / e} is unexpected (SpikingJelly takes every entry there for a class)"
                     for e in sorted(entries.keys() - expected)]
        for digit in sorted(expected & entries.keys()):
            class_dir = split_dir / digit
            if not entries[digit].is_dir():
                problems.append(f"{shown_as / split / digit} is not a folder")
                continue
            files = list(os.scandir(class_dir))
            if not files:
                problems.append(f"{shown_as / split / digit} holds no .bin file")
            for entry in files:
                shown = shown_as / split / digit / entry.name
                size = entry.stat().st_size
                if not entry.name.endswith(".bin"):
                    problems.append(f"{shown} is not a .bin event file")
                elif size == 0 or size % 5:
                    problems.append(f"{shown} is {size} bytes, not a positive multiple of 5 "
                                    f"(5 bytes an event): truncated")
            total += len(files)
    if problems:
        raise DatasetCorrupted(_problems_message(spec, shown_as, problems, _extracted_remedy(spec, shown_as)))
    return total


def _aedat3_problem(path: Path) -> str | None:
    """Why an AEDAT 3.1 file cannot be read whole (header, then 28-byte packet headers and events), or None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if not f.readline().startswith(b"#!AER-DAT3"):
            return "does not start with an AEDAT 3 header (#!AER-DAT3.1)"
        line = f.readline()
        while line.startswith(b"#") and line != b"#!END-HEADER\r\n":
            line = f.readline()
        if line != b"#!END-HEADER\r\n":
            return "has no #!END-HEADER line ending its header"
        position, packets = f.tell(), 0
        while position < size:
            header = f.read(28)
            if len(header) < 28:
                return f"ends inside a packet header at byte {position}: truncated"
            event_size, capacity = struct.unpack("<i", header[4:8])[0], struct.unpack("<i", header[16:20])[0]
            if event_size <= 0 or capacity < 0:
                return f"has a damaged packet header at byte {position} (event size {event_size})"
            position += 28 + event_size * capacity
            if position > size:
                return f"ends inside packet {packets} (needs {position} bytes, has {size}): truncated"
            f.seek(position)
            packets += 1
    return None


def _check_extracted_dvsgesture(spec: EventSpec, extract: Path, shown_as: Path | None = None) -> int:
    """Check ``DvsGesture/`` (trial lists, each listed AEDAT 3.1 file and labels CSV); return the samples."""
    shown_as = shown_as or extract
    folder, shown_folder = extract / "DvsGesture", shown_as / "DvsGesture"
    problems: list[str] = []
    total = 0
    for trials_name in ("trials_to_train.txt", "trials_to_test.txt"):
        trials = folder / trials_name
        if not trials.is_file():
            problems.append(f"{shown_folder / trials_name} is missing")
            continue
        for line in trials.read_text().splitlines():
            recording = line.strip()
            if not recording:
                continue
            aedat = folder / recording
            labels = folder / f"{os.path.splitext(recording)[0]}_labels.csv"
            if not aedat.is_file():
                problems.append(f"{shown_folder / recording} (listed in {trials_name}) is missing")
            elif (why := _aedat3_problem(aedat)) is not None:
                problems.append(f"{shown_folder / recording} {why}")
            if not labels.is_file():
                problems.append(f"{shown_folder / labels.name} is missing")
                continue
            try:
                rows = np.loadtxt(labels, dtype=np.int64, delimiter=",", skiprows=1, ndmin=2)
            except ValueError as exc:
                problems.append(f"{shown_folder / labels.name} is not 'class,startTime_usec,endTime_usec' rows "
                                f"({_why(exc)})")
                continue
            if rows.shape[1] != 3 or not np.all((rows[:, 0] >= 1) & (rows[:, 0] <= spec.num_classes)):
                problems.append(f"{shown_folder / labels.name} needs 3 columns and classes "
                                f"1..{spec.num_classes}")
                continue
            total += rows.shape[0]
    if problems:
        raise DatasetCorrupted(_problems_message(spec, shown_as, problems, _extracted_remedy(spec, shown_as)))
    return total


_CHECK_EXTRACTED: dict[str, Callable[..., int]] = {
    "N-MNIST": _check_extracted_nmnist,
    "DvsGesture": _check_extracted_dvsgesture,
}


def _convert_extracted(spec: EventSpec, ds_root: Path, sj_class, total: int, say: _Progress) -> None:
    """SpikingJelly's ``create_raw_from_extracted`` into a staging folder, then renamed to ``events_np``."""
    extract, events = ds_root / EXTRACT, ds_root / EVENTS
    staging = Path(tempfile.mkdtemp(dir=ds_root, prefix=f"{EVENTS}.partial-"))
    say(f"{spec.name}: converting {total} samples from {extract} to event arrays in {events} "
        f"(first time only) ...")
    start = time.monotonic()
    try:
        with _watch(say, f"{spec.name}: converting", staging, total):
            sj_class.create_raw_from_extracted(extract, staging)
        _publish(staging, events)
    except Exception as exc:
        raise DatasetCorrupted(
            f"{spec.name}: SpikingJelly could not convert the extracted files in {extract} "
            f"({_why(exc)}); {_extracted_remedy(spec, extract)}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"{spec.name}: converted {total} samples in {time.monotonic() - start:.1f} s")


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _check_events(spec: EventSpec, events: Path) -> None:
    expected = {str(c) for c in range(spec.num_classes)}
    problems: list[str] = []
    for split in ("train", "test"):
        split_dir = events / split
        classes = {e.name for e in os.scandir(split_dir) if e.is_dir()} if split_dir.is_dir() else set()
        if classes != expected:
            problems.append(f"{split_dir} has class folders {sorted(classes, key=_numeric)} instead of "
                            f"0..{spec.num_classes - 1}")
            continue
        problems += [f"{split_dir / c} holds no sample" for c in sorted(expected, key=int)
                     if not any(os.scandir(split_dir / c))]
    if problems:
        raise DatasetCorrupted(f"{spec.name}: the event arrays in {events} are incomplete: "
                               f"{'; '.join(problems[:MAX_PROBLEMS_SHOWN])}; delete {events} and run again "
                               f"to convert the extracted files anew")


def _numeric(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (sys.maxsize, name)


@contextmanager
def _watch(say: _Progress, what: str, folder: Path, total: int) -> Iterator[None]:
    """Every ``PROGRESS_EVERY_S``, say how many of ``total`` files ``folder`` holds: SpikingJelly's stages."""
    stop = threading.Event()
    start = time.monotonic()

    def report() -> None:
        while not stop.wait(PROGRESS_EVERY_S):
            say(f"{what}: {_count_files(folder)}/{total} samples ({time.monotonic() - start:.0f} s)")

    thread = threading.Thread(target=report, name="tfbench-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------------------------------
# The frame cache: SpikingJelly's class with data_type="frame"
# --------------------------------------------------------------------------------------------------

def _frames(spec: EventSpec, root: Path, sj_datasets, T: int, train: bool, split_by: str,
            say: _Progress) -> tuple[object, Path]:
    """SpikingJelly's dataset for (T, split_by): integrates the cache the first time, reuses it after."""
    ds_root, cache = spec.dataset_root(root), spec.frame_cache(root, T, split_by)
    marker = cache.with_name(f"{cache.name}.building")  # SpikingJelly's, present while it integrates
    if marker.exists():
        raise DatasetCorrupted(
            f"{spec.name}: the frame cache {cache} is unfinished ({marker} exists: a run was interrupted, "
            f"or another one is integrating it now); when none is running, delete {cache} and {marker} "
            f"and run again")
    events = ds_root / EVENTS
    total = _count_files(events)
    fresh = not cache.exists()
    if fresh:
        say(f"{spec.name}: integrating {total} samples (train and test) into T={T} frames, "
            f"split_by={split_by}, cached in {cache} (first time only) ...")
    else:
        cached = _count_files(cache)
        if cached != total:
            raise DatasetCorrupted(
                f"{spec.name}: the frame cache {cache} holds {cached} samples, not the {total} in {events} "
                f"(an interrupted older run?); delete {cache} and run again to integrate the frames anew")
        say(f"{spec.name}: reusing the frame cache {cache} (T={T}, split_by={split_by})")
    start = time.monotonic()
    sj_class = getattr(sj_datasets, spec.sj_class)
    try:
        with _watch(say, f"{spec.name}: integrating", cache, total) if fresh else nullcontext():
            dataset = sj_class(str(ds_root), train=train, data_type="frame", frames_number=T, split_by=split_by)
    except BaseException as exc:
        if fresh and marker.exists():  # SpikingJelly stopped mid-way: drop the half-made cache it leaves
            shutil.rmtree(cache, ignore_errors=True)
            marker.unlink(missing_ok=True)
        if not isinstance(exc, Exception):
            raise
        hint = (" SpikingJelly's split_by='time' fails when one of the T time bins of a sample holds no event; "
                "a smaller T or split_by='number' avoids it." if split_by == "time" else "")
        raise DatasetCorrupted(
            f"{spec.name}: SpikingJelly failed to make the frames in {cache} from {events} "
            f"({_why(exc)}).{hint} If the event arrays are damaged, delete {events} "
            f"and run again to convert the extracted files anew.") from exc
    if fresh:
        say(f"{spec.name}: integrated {total} samples in {time.monotonic() - start:.1f} s; cache: {cache}")
    return dataset, cache

