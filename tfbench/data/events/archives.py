"""The fetched archives of N-MNIST and DvsGesture: checked, extracted, their formats checked, converted.

``prepare_events`` makes ``<root>/<dataset>/events_np`` (SpikingJelly's event arrays) the first
time: it extracts ``download/``'s archives into ``extract/`` (unless the user put the extracted
files there), checks every extracted file in its raw format (N-MNIST: Orchard ``.bin`` files of 5
bytes an event; DvsGesture: AEDAT 3.1 recordings with label CSVs and the trial lists), and has
SpikingJelly's ``create_raw_from_extracted`` convert them. Extraction and conversion write to a
temporary folder renamed when complete, so an interrupted run leaves nothing half-made; a damaged
file is named, with the remedy, in one line.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import DatasetCorrupted, DatasetMissing, one_line
from .progress import PROGRESS_EVERY_S, Progress, watch
from .specs import DOWNLOAD, EVENTS, EXTRACT, EventSpec

MAX_PROBLEMS_SHOWN = 5         # a damaged extraction can have thousands of bad files; the first few say enough


def prepare_events(spec: EventSpec, ds_root: Path, sj_datasets, say: Progress) -> None:
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
        convert_extracted(spec, ds_root, getattr(sj_datasets, spec.sj_class), total, say)
    _check_events(spec, events)


def _missing_message(spec: EventSpec, ds_root: Path, absent: list[str]) -> str:
    download, extract = ds_root / DOWNLOAD, ds_root / EXTRACT
    where = " and ".join(str(download / f) for f in absent)
    layout = ", ".join(spec.extracted[:-1]) + f" and {spec.extracted[-1]}"
    return (f"{spec.name} was not found under {ds_root} (its licence forbids automatic download). "
            f"Fetch {' and '.join(absent)} from {' or '.join(spec.sources)} and put "
            f"{'it' if len(absent) == 1 else 'them'} at {where}; if you have the extracted files instead, "
            f"put them in {extract}{os.sep} as {layout}.")


def _extract_archives(spec: EventSpec, ds_root: Path, say: Progress) -> None:
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


def _extract_one(spec: EventSpec, archive: Path, into: Path, say: Progress) -> int:
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
        raise DatasetCorrupted(f"{spec.name}: {archive} is truncated or damaged ({one_line(exc)}); "
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
                                f"({one_line(exc)})")
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


def convert_extracted(spec: EventSpec, ds_root: Path, sj_class, total: int, say: Progress) -> None:
    """SpikingJelly's ``create_raw_from_extracted`` into a staging folder, then renamed to ``events_np``."""
    extract, events = ds_root / EXTRACT, ds_root / EVENTS
    staging = Path(tempfile.mkdtemp(dir=ds_root, prefix=f"{EVENTS}.partial-"))
    say(f"{spec.name}: converting {total} samples from {extract} to event arrays in {events} "
        f"(first time only) ...")
    start = time.monotonic()
    try:
        with watch(say, f"{spec.name}: converting", staging, total):
            sj_class.create_raw_from_extracted(extract, staging)
        _publish(staging, events)
    except Exception as exc:
        raise DatasetCorrupted(
            f"{spec.name}: SpikingJelly could not convert the extracted files in {extract} "
            f"({one_line(exc)}); {_extracted_remedy(spec, extract)}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"{spec.name}: converted {total} samples in {time.monotonic() - start:.1f} s")


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
