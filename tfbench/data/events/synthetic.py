"""Synthetic event frames: random events of a sensor's shape and class count, integrated as SpikingJelly does.

No disk and no SpikingJelly. A sample is made on the CPU (about 25 ms a DvsGesture sample), far too
slow to make per step for a GPU timing run, so a spec's synthetic split is a fixed pool of batches
made once, before the run, on the run's device (``batches.PooledBatches``), and cycled through.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..batches import DatasetBatches, PooledBatches
from ..spec import DataRequest
from .specs import SPLIT_BY, EventSpec, check_frame_count, event_spec


def synthetic_event_frames(name: str, T: int, num_samples: int, seed: int) -> SyntheticEventFrames:
    """Random event frames of a dataset's real shape and class count: no disk, no SpikingJelly.

    Item ``i`` is ``(frames float32 [T, 2, H, W], label int)``, ``label = i % num_classes``. A sample
    is a Poisson number (mean ``EventSpec.mean_events``) of random events, x and polarity uniform, y
    more often in a band of rows that depends on the label (so that a model can learn it), integrated
    into T frames as SpikingJelly's ``split_by="number"`` does: event counts per pixel, polarity and
    frame, each frame taking an equal share of the events in order. Deterministic in ``(seed, i)``,
    whatever order items are read in.
    """
    spec = event_spec(name)
    check_frame_count(T)
    if num_samples < 0 or seed < 0:
        raise ValueError(f"num_samples={num_samples} and seed={seed} must both be >= 0")
    return SyntheticEventFrames(spec, T, num_samples, seed)


def pooled(name: str, train_size: int, test_size: int, request: DataRequest) -> PooledBatches:
    """The event datasets' ``synthetic``: a pool of batches of ``name``'s synthetic frames, made now on
    ``request.device`` (an epoch as long as the real split: ``train_size`` or ``test_size`` samples)."""
    if request.split_by not in (None, SPLIT_BY[0]):
        raise ValueError(f"synthetic {name} frames are cut as split_by={SPLIT_BY[0]!r} only, "
                         f"not {request.split_by!r}")
    frames = synthetic_event_frames(name, request.T, train_size if request.train else test_size,
                                    request.seed * 2 + int(request.train))
    source = DatasetBatches(frames, request.batch_size, shuffle=request.train, seed=request.seed,
                            device=request.device)
    return PooledBatches(source, len(source), shuffle=request.train, seed=request.seed)


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
