"""N-MNIST and DvsGesture as registry entries, built on ``tfbench/data/neuromorphic.py``.

neuromorphic.py reads the event datasets through SpikingJelly (frames ``[T, 2, H, W]`` per sample,
cut by ``DataRequest.split_by``) and makes synthetic ones; this module wraps both as
:class:`DatasetSpec` entries, encoded by ``to_model_input`` to ``[T, B, C, H, W]``: ``C = 3`` by
default (a zero third channel for the 3-channel stem, as the paper), or ``C = 2`` (the polarities
alone, for a 2-channel stem).

Real frames come through a DataLoader. Synthetic frames are made on the CPU (about 25 ms a
DvsGesture sample), far too slow to make per step for a GPU timing run, so a fixed pool of batches
is made once, before the run, on the run's device (:class:`PooledBatches`) and cycled through.
"""

from __future__ import annotations

from torch import Tensor

from . import neuromorphic as nm
from .base import DataRequest, DatasetBatches, DatasetSpec, PooledBatches

# Real split sizes, so that a synthetic epoch is as long as a real one: N-MNIST has MNIST's
# 60,000/10,000; SpikingJelly's DVS128Gesture splits the 1,464 trials' gestures into 1,176/288.
SPLIT_SIZES = {"N-MNIST": (60_000, 10_000), "DvsGesture": (1_176, 288)}
IN_CHANNELS = 3   # the default, the paper's 3-channel stem: the 2 polarities and a zero channel


def _spec(name: str) -> DatasetSpec:
    es = nm.EVENT_DATASETS[name]
    train_size, test_size = SPLIT_SIZES[name]

    def load(req: DataRequest) -> DatasetBatches:
        ds = nm.load_event_frames(name, req.root, req.T, req.train, split_by=req.split_by or nm.SPLIT_BY[0])
        return DatasetBatches(ds, req.batch_size, shuffle=req.train, seed=req.seed, device=req.device)

    def synthetic(req: DataRequest) -> PooledBatches:
        """A pool of synthetic batches made now, on ``req.device`` (DataLoader workers on a GPU run)."""
        if req.split_by not in (None, nm.SPLIT_BY[0]):
            raise ValueError(f"synthetic {name} frames are cut as split_by={nm.SPLIT_BY[0]!r} only, "
                             f"not {req.split_by!r}")
        ds = nm.synthetic_event_frames(name, req.T, train_size if req.train else test_size,
                                       req.seed * 2 + int(req.train))
        source = DatasetBatches(ds, req.batch_size, shuffle=req.train, seed=req.seed, device=req.device)
        return PooledBatches(source, len(source), shuffle=req.train, seed=req.seed)

    def encode(x: Tensor, T: int, generator=None, in_channels: int | None = None) -> Tensor:
        """Frames ``[B, T, 2, H, W]`` -> ``[T, B, C, H, W]``, ``C = in_channels`` (None: 3, a zero third
        channel). ``T`` and ``generator`` are unused: the frames are fixed."""
        return nm.to_model_input(x, IN_CHANNELS if in_channels is None else in_channels)

    root_files = ", ".join(es.raw_files)
    return DatasetSpec(name=name, num_classes=es.num_classes, in_channels=IN_CHANNELS, image_size=es.sensor_size,
                       train_size=train_size, test_size=test_size, load=load, synthetic=synthetic, encode=encode,
                       files=f"<data-root>/{es.dirname}/download/{{{root_files}}}",
                       split_by_choices=nm.SPLIT_BY, in_channels_choices=nm.IN_CHANNELS)


N_MNIST = _spec("N-MNIST")
DVS_GESTURE = _spec("DvsGesture")
