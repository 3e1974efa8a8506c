"""Datasets: a plain registry of :class:`DatasetSpec` (MNIST, CIFAR-10, N-MNIST, DvsGesture, Glyphs).

``get(name)`` (case-insensitive; a miss lists the known names) returns the spec;
``spec.batches(DataRequest(...), synthetic)`` gives device batches and ``spec.encode`` the network
input ``[T, B, C, H, W]``. Only the event datasets (``spec.events``) take ``DataRequest.split_by``
and more than one channel count (``spec.channel_choices``).

``import tfbench.data`` imports no torch (the command line's ``--help`` reads the registry); the
batch sources and encoders are loaded on first use (PEP 562). The modules:

    spec.py        DatasetSpec, DataRequest, lazy references (plain data)
    registry.py    the registered datasets, DATASETS and get (plain data)
    errors.py      the errors a user can act on
    batches.py     batch sources on the device: in-memory, DataLoader, random images, a pre-made pool
    encoding.py    raw batch -> [T, B, C, H, W]: rate coding for images, time-first event frames
    vision.py      MNIST and CIFAR-10 through torchvision
    glyphs.py      Glyphs, the built-in generated digits
    events/        N-MNIST and DvsGesture: specs, raw archives, frame cache, synthetic frames
"""

from __future__ import annotations

import importlib

from .errors import DataError, DatasetCorrupted, DatasetMissing, DataUnavailable
from .registry import CIFAR10, DATASETS, DVS_GESTURE, GLYPHS, MNIST, N_MNIST, get
from .spec import POOL_BATCHES, DataRequest, DatasetSpec, Lazy, lazy

# public name -> the module that defines it (imports torch: loaded on first use)
_LAZY = {
    **{name: "tfbench.data.batches" for name in ("Batches", "DatasetBatches", "PooledBatches", "SyntheticImages",
                                                 "TensorBatches")},
    **{name: "tfbench.data.encoding" for name in ("encode_frames", "encode_images", "rate_encode",
                                                  "to_model_input")},
}

__all__ = ["CIFAR10", "DATASETS", "DVS_GESTURE", "GLYPHS", "MNIST", "N_MNIST", "POOL_BATCHES", "DataError",
           "DataRequest", "DataUnavailable", "DatasetCorrupted", "DatasetMissing", "DatasetSpec", "Lazy", "get",
           "lazy", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfbench.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
