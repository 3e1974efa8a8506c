"""Datasets: a plain registry of :class:`DatasetSpec` (MNIST, CIFAR-10, N-MNIST, DvsGesture).

``get(name)`` (case-insensitive; a miss lists the known names) returns the spec;
``spec.batches(DataRequest(...), synthetic)`` gives device batches and ``spec.encode`` the network
input ``[T, B, C, H, W]``. N-MNIST and DvsGesture are read by ``tfbench/data/neuromorphic.py`` and
wrapped as specs in ``events.py``; without that module their entries say so when used. Only the
event datasets (``spec.events``) take ``DataRequest.split_by`` and more than one channel count
(``spec.channel_choices``).
"""

from __future__ import annotations

from .base import Batches, DataRequest, DatasetSpec, DataUnavailable, rate_encode
from .errors import DataError
from .vision import CIFAR10, MNIST


def _not_implemented(name: str, num_classes: int, size: tuple[int, int]) -> DatasetSpec:
    def fail(*_args, **_kwargs):
        raise DataUnavailable(f"{name} is not implemented yet (tfbench/data/neuromorphic.py, issue 4); "
                              f"choose from: MNIST, CIFAR-10")

    return DatasetSpec(name=name, num_classes=num_classes, in_channels=3, image_size=size, train_size=0,
                       test_size=0, load=fail, synthetic=fail, encode=fail)


try:
    from .events import DVS_GESTURE, N_MNIST
except ModuleNotFoundError as _e:   # neuromorphic.py (issue 4) not there yet
    if _e.name != __name__ + ".neuromorphic":
        raise
    N_MNIST = _not_implemented("N-MNIST", 10, (34, 34))
    DVS_GESTURE = _not_implemented("DvsGesture", 11, (128, 128))

DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (MNIST, CIFAR10, N_MNIST, DVS_GESTURE)}


def get(name: str) -> DatasetSpec:
    """The dataset called ``name`` (case-insensitive); ValueError listing the known names."""
    for key, spec in DATASETS.items():
        if key.lower() == name.lower():
            return spec
    raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "Batches", "DataError", "DataRequest", "DataUnavailable", "DatasetSpec", "get", "rate_encode"]
