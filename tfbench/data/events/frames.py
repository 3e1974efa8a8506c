"""Event frames: SpikingJelly's frame cache for a (T, split_by), and the dataset and loader over it.

``load_event_frames`` is the whole path of a real event dataset: the archives are made into event
arrays the first time (``archives.py``), then SpikingJelly's ``NMNIST`` / ``DVS128Gesture`` with
``data_type="frame"``, ``frames_number=T`` and ``split_by`` integrates every sample of both splits
into ``<root>/<dataset>/frames_number_<T>_split_by_<s>/`` (minutes; once per (T, split_by)), and
later runs read that cache. Each stage reports progress and the cache's path; an interrupted or
damaged cache is named in one line, with the remedy.
"""

from __future__ import annotations

import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..batches import DatasetBatches
from ..errors import DataError, DatasetCorrupted, one_line
from ..spec import DataRequest
from .archives import prepare_events
from .progress import Progress, count_files, watch
from .specs import EVENTS, SPLIT_BY, EventSpec, check_frame_count, check_split_by, event_spec


def load_event_frames(name: str, root: Path | str, T: int, train: bool, split_by: str = "number",
                      progress: bool = True) -> EventFrames:
    """An event dataset as frames, through SpikingJelly's ``NMNIST`` / ``DVS128Gesture``.

    ``root`` is the data root; the dataset lives in ``root/<name>/`` (see ``EventSpec.dataset_root``).
    Each item is ``(frames, label)``: ``frames`` float32 ``[T, 2, H, W]`` (event counts; channel 0 OFF,
    channel 1 ON), ``label`` an int in ``[0, num_classes)``; a DataLoader batches them to
    ``[B, T, 2, H, W]`` (``encoding.to_model_input`` makes that ``[T, B, C, H, W]``).

    The first call for a (T, split_by) extracts and converts what is missing and integrates the frame
    cache (``EventFrames.cache_dir``); later calls reuse it. ``progress`` logs each stage to the
    ``tfbench.data`` logger (to stderr when logging is not configured).

    Raises ``ValueError`` for an unknown ``name``/``split_by`` or a bad ``T``; ``DatasetMissing`` when
    the files are not there (the message says which, from where, and where to put them);
    ``DatasetCorrupted`` for a damaged archive, extraction or cache; ``DataError`` without SpikingJelly.
    """
    spec = event_spec(name)
    check_split_by(split_by)
    check_frame_count(T)
    if not isinstance(train, bool):
        raise ValueError(f"train={train!r} must be True (the training split) or False (the test split)")
    sj_datasets = spikingjelly_datasets()
    say = Progress(progress)
    ds_root = spec.dataset_root(root)
    prepare_events(spec, ds_root, sj_datasets, say)
    sj_dataset, cache_dir = frame_dataset(spec, Path(root), sj_datasets, T, train, split_by, say)
    return EventFrames(sj_dataset, spec, cache_dir, T, split_by, train)


def load(name: str, request: DataRequest) -> DatasetBatches:
    """The event datasets' ``load``: the split ``request.train`` of ``name``'s frames, through a DataLoader."""
    frames = load_event_frames(name, request.root, request.T, request.train, split_by=request.split_by or SPLIT_BY[0])
    return DatasetBatches(frames, request.batch_size, shuffle=request.train, seed=request.seed, device=request.device)


def spikingjelly_datasets():
    """``spikingjelly.datasets``, or a DataError saying how to install it."""
    try:
        import spikingjelly.datasets as sj_datasets
    except ImportError as exc:
        raise DataError(f"N-MNIST and DvsGesture are read through SpikingJelly 2.0, which is not installed "
                        f"({exc}); pip install 'tfbench[peers]'") from exc
    return sj_datasets


def frame_dataset(spec: EventSpec, root: Path, sj_datasets, T: int, train: bool, split_by: str,
                  say: Progress) -> tuple[object, Path]:
    """SpikingJelly's dataset for (T, split_by): integrates the cache the first time, reuses it after."""
    ds_root, cache = spec.dataset_root(root), spec.frame_cache(root, T, split_by)
    marker = cache.with_name(f"{cache.name}.building")  # SpikingJelly's, present while it integrates
    if marker.exists():
        raise DatasetCorrupted(
            f"{spec.name}: the frame cache {cache} is unfinished ({marker} exists: a run was interrupted, "
            f"or another one is integrating it now); when none is running, delete {cache} and {marker} "
            f"and run again")
    events = ds_root / EVENTS
    total = count_files(events)
    fresh = not cache.exists()
    if fresh:
        say(f"{spec.name}: integrating {total} samples (train and test) into T={T} frames, "
            f"split_by={split_by}, cached in {cache} (first time only) ...")
    else:
        cached = count_files(cache)
        if cached != total:
            raise DatasetCorrupted(
                f"{spec.name}: the frame cache {cache} holds {cached} samples, not the {total} in {events} "
                f"(an interrupted older run?); delete {cache} and run again to integrate the frames anew")
        say(f"{spec.name}: reusing the frame cache {cache} (T={T}, split_by={split_by})")
    start = time.monotonic()
    sj_class = getattr(sj_datasets, spec.sj_class)
    try:
        with watch(say, f"{spec.name}: integrating", cache, total) if fresh else nullcontext():
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
            f"({one_line(exc)}).{hint} If the event arrays are damaged, delete {events} "
            f"and run again to convert the extracted files anew.") from exc
    if fresh:
        say(f"{spec.name}: integrated {total} samples in {time.monotonic() - start:.1f} s; cache: {cache}")
    return dataset, cache


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
                f"{self.spec.name}: cannot read the cached frames {path} ({one_line(exc)}); "
                f"delete {self.cache_dir} and run again to integrate the frames anew") from exc
        if frames.shape != expected:
            raise DatasetCorrupted(
                f"{self.spec.name}: the cached frames {path} have shape {list(frames.shape)}, not "
                f"{list(expected)}; delete {self.cache_dir} and run again to integrate the frames anew")
        return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)), self._label_of[target]
