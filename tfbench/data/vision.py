"""MNIST and CIFAR-10 through torchvision's dataset classes, rate-coded per time step as the paper.

The files are read by ``torchvision.datasets.MNIST`` / ``CIFAR10`` with ``--data-root`` as their
root (``--download`` lets torchvision fetch them). Without them, a :class:`DataUnavailable` says in
one line which files are expected in which folder. The decoded splits are cached per process, so a
``compare`` sweep over several backends reads the files once.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import Tensor

from .base import DataRequest, DatasetSpec, DataUnavailable, SyntheticImages, TensorBatches, rate_encode

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")


def _missing(folder: Path, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def _torchvision_split(name: str, root: Path, train: bool, download: bool):
    from torchvision import datasets

    cls = {"MNIST": datasets.MNIST, "CIFAR-10": datasets.CIFAR10}[name]
    if name == "MNIST":
        folder, names = root / "MNIST" / "raw", MNIST_FILES
    else:
        folder, names = root / "cifar-10-batches-py", CIFAR10_FILES
    if not download and _missing(folder, names):
        raise DataUnavailable(f"{name} not found: expected {', '.join(names)} in {folder} "
                              f"(pass --download to fetch them, or --synthetic for random data)")
    try:
        return cls(root=str(root), train=train, download=download)
    except DataUnavailable:
        raise
    except Exception as e:  # torchvision raises RuntimeError, URLError, AssertionError, pickle errors
        msg = " ".join(str(e).split()) or type(e).__name__
        if download and _missing(folder, names):
            raise DataUnavailable(f"could not download {name} into {folder}: {msg}") from None
        raise DataUnavailable(f"{name} files in {folder} could not be read ({msg}); they may be corrupted or "
                              f"partial: delete them and pass --download") from None


@functools.lru_cache(maxsize=4)
def _read(name: str, root: str, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    """The split as CPU tensors: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``."""
    ds = _torchvision_split(name, Path(root), train, download)
    data = ds.data
    if isinstance(data, Tensor):                       # MNIST: uint8 [N, H, W]
        images = data.unsqueeze(1).contiguous()
    else:                                              # CIFAR-10: numpy uint8 [N, H, W, C]
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images, labels


def _real(name: str):
    def load(req: DataRequest) -> TensorBatches:
        images, labels = _read(name, os.fspath(Path(req.root).expanduser().resolve()), req.train, req.download)
        return TensorBatches(images, labels, req.batch_size, shuffle=req.train, seed=req.seed, device=req.device)

    return load


def _synthetic(shape: tuple[int, int, int], num_classes: int, train_size: int, test_size: int):
    def load(req: DataRequest) -> SyntheticImages:
        return SyntheticImages(shape, num_classes, train_size if req.train else test_size, req.batch_size,
                               train=req.train, seed=req.seed, device=req.device)

    return load


def encode_rate(x: Tensor, T: int, generator: torch.Generator | None = None, in_channels: int | None = None) -> Tensor:
    """``[B, C, H, W]`` in [0, 1] -> Bernoulli spikes ``[T, B, 3, H, W]`` (1 channel repeated to 3).

    ``in_channels`` is 3 (or None): the paper feeds both datasets to the 3-channel stem.
    """
    if in_channels not in (None, 3):
        raise ValueError(f"in_channels={in_channels!r}: MNIST and CIFAR-10 are encoded to 3 channels only")
    return rate_encode(x, T, generator, channels=3)


MNIST = DatasetSpec(
    name="MNIST", num_classes=10, in_channels=3, image_size=(28, 28), train_size=60_000, test_size=10_000,
    load=_real("MNIST"), synthetic=_synthetic((1, 28, 28), 10, 60_000, 10_000), encode=encode_rate,
    files=f"<data-root>/MNIST/raw/{{{','.join(MNIST_FILES)}}}",
)

CIFAR10 = DatasetSpec(
    name="CIFAR-10", num_classes=10, in_channels=3, image_size=(32, 32), train_size=50_000, test_size=10_000,
    load=_real("CIFAR-10"), synthetic=_synthetic((3, 32, 32), 10, 50_000, 10_000), encode=encode_rate,
    files=f"<data-root>/cifar-10-batches-py/{{{','.join(CIFAR10_FILES)}}}",
)
