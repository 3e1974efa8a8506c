"""Tiny N-MNIST and DVS128 Gesture datasets in their real raw formats, with the frames they must give.

N-MNIST: Orchard's ``.bin`` (5 bytes an event: x, y, then polarity in the top bit and a 23-bit
microsecond timestamp, big-endian) in ``Train.zip`` / ``Test.zip`` as ``Train/<digit>/<id>.bin``.
DVS128 Gesture: ``DvsGesture.tar.gz`` holding AEDAT 3.1 recordings (text header, then packets of a
28-byte little-endian header and 8-byte polarity events), ``<recording>_labels.csv`` and the
``trials_to_{train,test}.txt`` lists.

Every sample is designed frame by frame: frame ``f`` holds ``EVENTS_PER_FRAME`` events with times in
``[f, f + 1) * FRAME_US`` (the last event of the sample sits exactly at ``T * FRAME_US``), so that
SpikingJelly's ``split_by="number"`` and ``split_by="time"`` both put each event in the frame it was
designed for; ``expected_frames`` is the plain count of the design, independent of SpikingJelly.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

T = 4                  # frames every designed sample is made of; load with frames_number=T
EVENTS_PER_FRAME = 4   # equal per frame, so split_by="number" cuts exactly at the designed frame edges
FRAME_US = 1000        # microseconds a frame spans in the designed timestamps


@dataclass(frozen=True)
class Sample:
    split: str                                  # "train" | "test"
    label: int                                  # the class, 0-based
    stem: str                                   # the name of SpikingJelly's cached file, without .npz
    events: tuple[tuple[int, int, int, int], ...]  # (frame, x, y, polarity), in time order

    def timed(self, t0: int = 0) -> list[tuple[int, int, int, int]]:
        """``(x, y, p, t)`` with t in microseconds from ``t0``; the last event at ``t0 + T * FRAME_US``."""
        out = []
        for i, (f, x, y, p) in enumerate(self.events):
            t = t0 + f * FRAME_US + (i % EVENTS_PER_FRAME) * 10
            out.append((x, y, p, t))
        x, y, p, _ = out[-1]
        out[-1] = (x, y, p, t0 + T * FRAME_US)
        return out

    def expected_frames(self, H: int, W: int) -> np.ndarray:
        frames = np.zeros((T, 2, H, W), dtype=np.float32)
        for f, x, y, p in self.events:
            frames[f, p, y, x] += 1
        return frames


def design(label: int, variant: int, H: int, W: int) -> tuple[tuple[int, int, int, int], ...]:
    """Events that tell labels, samples, frames, polarities and the x/y axes apart; one pixel gets 2 events."""
    events = []
    for f in range(T):
        x = (3 * label + 7 * f + 5 * variant) % W
        y = (5 * label + 2 * f + 11 * variant + 1) % H
        events += [(f, x, y, 1), (f, x, y, 1), (f, W - 1 - f, y, 0), (f, W - 1, H - 1 - f, f % 2)]
    assert len(events) == T * EVENTS_PER_FRAME
    return tuple(events)


# ---------------------------------------------------------------------------------------------- N-MNIST

def nmnist_bin(events: list[tuple[int, int, int, int]]) -> bytes:
    """Orchard's ATIS format: x, y (8 bits each), polarity (1 bit) and timestamp (23 bits), big-endian."""
    out = bytearray()
    for x, y, p, t in events:
        assert 0 <= t < 2**23 and p in (0, 1)
        out += bytes([x, y]) + ((p << 23) | t).to_bytes(3, "big")
    return bytes(out)


def nmnist_samples() -> list[Sample]:
    H, W = 34, 34
    samples = []
    for split, variant in (("train", 0), ("test", 1)):
        for label in range(10):
            samples.append(Sample(split, label, f"{10 * label + variant:05d}", design(label, variant, H, W)))
    samples.append(Sample("train", 3, "00099", design(3, 2, H, W)))  # a second sample in one class
    return samples


def write_nmnist(data_root: Path, *, archives: bool = True) -> list[Sample]:
    """``data_root/N-MNIST/download/{Train,Test}.zip`` (or the extracted folders under ``extract/``)."""
    root = data_root / "N-MNIST"
    samples = nmnist_samples()
    for split in ("Train", "Test"):
        members = {f"{split}/{s.label}/{s.stem}.bin": nmnist_bin(s.timed()) for s in samples
                   if s.split == split.lower()}
        if archives:
            (root / "download").mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(root / "download" / f"{split}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
        else:
            for name, data in members.items():
                path = root / "extract" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    return samples


# ---------------------------------------------------------------------------------------------- DvsGesture

AEDAT_HEADER = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n"
                b"#Start-Time: 2017-01-01 12:00:00 (TZ+0000)\r\n#!END-HEADER\r\n")
PACKET_EVENTS = 7  # events per polarity packet: samples straddle packet boundaries, as in real recordings


def aedat_packet(event_type: int, events: list[tuple[int, int]]) -> bytes:
    """A packet: 28-byte header (type, source, size, ts offset/overflow, capacity, number, valid), events."""
    header = struct.pack("<hhiiiiii", event_type, 1, 8, 4, 0, len(events), len(events), len(events))
    return header + b"".join(struct.pack("<Ii", data, t) for data, t in events)


def aedat31(events: list[tuple[int, int, int, int]]) -> bytes:
    """An AEDAT 3.1 recording of ``(x, y, p, t)`` polarity events, after one special-event packet."""
    body = [aedat_packet(0, [(1 | (2 << 1), 0)])]  # a special event (timestamp reset), which readers skip
    polarity = [((x << 17) | (y << 2) | (p << 1) | 1, t) for x, y, p, t in events]  # bit 0: valid mark
    for i in range(0, len(polarity), PACKET_EVENTS):
        body.append(aedat_packet(1, polarity[i:i + PACKET_EVENTS]))
    return AEDAT_HEADER + b"".join(body)


def dvsgesture_recordings() -> dict[str, tuple[str, list[Sample]]]:
    """``recording -> (split, its samples in recording order)``; SpikingJelly names them ``<recording>_<k>``."""
    H, W = 128, 128
    plan = {
        "user01_fluorescent": ("train", [(label, 0) for label in reversed(range(11))] + [(5, 2)]),
        "user24_led": ("test", [(label, 1) for label in range(11)]),
    }
    recordings = {}
    for recording, (split, gestures) in plan.items():
        seen: dict[int, int] = {}
        samples = []
        for label, variant in gestures:
            k = seen.get(label, 0)
            seen[label] = k + 1
            samples.append(Sample(split, label, f"{recording}_{k}", design(label, variant, H, W)))
        recordings[recording] = (split, samples)
    return recordings


def write_dvsgesture(data_root: Path) -> list[Sample]:
    """``data_root/DvsGesture/download/DvsGesture.tar.gz`` as IBM ships it (``DvsGesture/`` inside)."""
    members: dict[str, bytes] = {}
    trials = {"train": [], "test": []}
    every = []
    for recording, (split, samples) in dvsgesture_recordings().items():
        events, rows = [], ["class,startTime_usec,endTime_usec"]
        for g, sample in enumerate(samples):
            start = 1_000_000 + 20_000 * g
            events.append((64, 64, 1, start - 5_000))  # between gestures: in no sample
            events += sample.timed(start)
            rows.append(f"{sample.label + 1},{start},{start + T * FRAME_US + 1}")
        events.append((64, 64, 0, 1_000_000 + 20_000 * len(samples)))
        members[f"DvsGesture/{recording}.aedat"] = aedat31(events)
        members[f"DvsGesture/{recording}_labels.csv"] = ("\n".join(rows) + "\n").encode()
        trials[split].append(f"{recording}.aedat")
        every += samples
    for split, names in trials.items():
        members[f"DvsGesture/trials_to_{split}.txt"] = ("\n".join(names) + "\n").encode()
    download = data_root / "DvsGesture" / "download"
    download.mkdir(parents=True, exist_ok=True)
    with tarfile.open(download / "DvsGesture.tar.gz", "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return every
