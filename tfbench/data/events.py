"""N-MNIST and DvsGesture as registry entries, built on ``tfbench/data/neuromorphic.py``.

neuromorphic.py reads the event datasets through SpikingJelly (frames ``[T, 2, H, W]`` per sample)
and makes synthetic ones; this module wraps both as :class:`DatasetSpec` entries: batches through a
DataLoader, encoded by ``to_model_input`` to ``[T, B, 3, H, W]`` (a zero third channel for the
3-channel stem, as the paper).
"""

from __future__ import annotations

from torch import Tensor

from . import neuromorphic as nm
from .base import DataRequest, DatasetBatches, DatasetSpec

# Real split sizes, so that a synthetic epoch is as long as a real one: N-MNIST has MNIST's
# 60,000/10,000; SpikingJelly's DVS128Gesture splits the 1,464 trials' gestures into 1,176/288.
SPLIT_SIZES = {"N-MNIST": (60_000, 10_000), "DvsGesture": (1_176, 288)}
IN_CHANNELS = 3   # the paper's 3-channel stem: the 2 polarities and a zero channel


def _spec(name: str) -> DatasetSpec:
    es = nm.EVENT_DATASETS[name]
    train_size, test_size = SPLIT_SIZES[name]

    def load(req: DataRequest) -> DatasetBatches:
        ds = nm.load_event_frames(name, req.root, req.T, req.train)
        return DatasetBatches(ds, req.batch_size, shuffle=req.train, seed=req.seed, device=req.device)

    def synthetic(req: DataRequest) -> DatasetBatches:
        ds = nm.synthetic_event_frames(name, req.T, train_size if req.train else test_size,
                                       req.seed * 2 + int(req.train))
        return DatasetBatches(ds, req.batch_size, shuffle=req.train, seed=req.seed, device=req.device)

    def encode(x: Tensor, T: int, generator=None) -> Tensor:
        """Frames ``[B, T, 2, H, W]`` -> ``[T, B, 3, H, W]`` (``T`` and ``generator`` unused: frames are fixed)."""
        return nm.to_model_input(x, IN_CHANNELS)

    root_files = ", ".join(es.raw_files)
    return DatasetSpec(name=name, num_classes=es.num_classes, in_channels=IN_CHANNELS, image_size=es.sensor_size,
                       train_size=train_size, test_size=test_size, load=load, synthetic=synthetic, encode=encode,
                       files=f"<data-root>/{es.dirname}/download/{{{root_files}}}")


N_MNIST = _spec("N-MNIST")
DVS_GESTURE = _spec("DvsGesture")
