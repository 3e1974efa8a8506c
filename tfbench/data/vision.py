"""MNIST and CIFAR-10 read through torchvision's dataset classes: the specs' ``load``.

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

from .batches import TensorBatches
from .errors import DataUnavailable
from .registry import CIFAR10_FILES, MNIST_FILES
from .spec import DataRequest


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


def load(name: str, request: DataRequest) -> TensorBatches:
    """MNIST's and CIFAR-10's ``load``: the split ``request.train`` of ``name`` as uint8 images on the device."""
    root = os.fspath(Path(request.root).expanduser().resolve())
    images, labels = _read(name, root, request.train, request.download)
    return TensorBatches(images, labels, request.batch_size, shuffle=request.train, seed=request.seed,
                         device=request.device)
