"""Batch sources: what a loader returns, an epoch-iterable of ``(x, y)`` batches already on the device.

``x`` is the raw batch (static images: float ``[B, C, H, W]`` in [0, 1]; event frames:
``[B, T, C, H, W]``), ``y`` int64 class labels ``[B]``; ``len()`` is the batches per epoch. Every
shuffle and synthetic draw comes from a ``torch.Generator`` seeded by the request's seed and the
epoch, so a run is the same for a given seed.

Fetching a batch (reading, generating, copying to the device) is not part of a timed training step
(``bench/train.py`` fetches it first); data too slow to make per step anyway (synthetic event
frames) is made once as a :class:`PooledBatches` before the run starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .errors import DataError
from .spec import POOL_BATCHES, DataRequest

# DataLoader worker processes when feeding a GPU (a sample is decoded or generated per item);
# on the CPU the workers would compete with the training for the same cores.
LOADER_WORKERS = 4
# Cap on one split's pool in bytes (it sits on the device beside the model, counted in data_mem_bytes):
# DvsGesture frames are large (T=32, batch 10: 42 MB a batch; batch 100: 420 MB). At least one batch is made.
POOL_BYTES = 1 << 30


class Batches:
    """An epoch-iterable source of ``(x, y)`` batches on a device; each ``iter()`` is one epoch.

    Subclasses implement ``__len__`` (batches per epoch) and ``_epoch(epoch) -> Iterator``; the epoch
    counter makes shuffling and synthetic draws deterministic for a given seed.
    """

    def __init__(self) -> None:
        self._epochs = 0

    def __len__(self) -> int:
        raise NotImplementedError

    def _epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self._epochs
        self._epochs += 1
        return self._epoch(epoch)


class TensorBatches(Batches):
    """Batches of an in-memory dataset: uint8 ``images [N, C, H, W]`` (to float [0, 1]) and ``labels [N]``.

    The tensors are moved to the device once (so no host copy sits inside a timed step); the train
    split is reshuffled every epoch from ``seed`` and drops the last partial batch, the test split is
    read in order and keeps it.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, *, shuffle: bool, seed: int,
                 device: torch.device):
        super().__init__()
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed

    @property
    def nbytes(self) -> int:
        """Device bytes the dataset occupies (recorded beside peak memory)."""
        return self.images.numel() * self.images.element_size() + self.labels.numel() * 8

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def _epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.images.shape[0]
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g).to(self.images.device)
        else:
            order = None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.images[idx], self.labels[idx]
            yield x.float().div_(255), y


class SyntheticImages(Batches):
    """Random images of a real dataset's shape and class count, generated on the device, per batch.

    Each class has a fixed random prototype (from ``seed``); an image is half its class's prototype
    and half uniform noise, in [0, 1], so a network can learn it and accuracy above chance shows the
    training loop works. Deterministic for a given seed, split, epoch and device type.
    """

    def __init__(self, shape: tuple[int, int, int], num_classes: int, num_samples: int, batch_size: int, *,
                 train: bool, seed: int, device: torch.device):
        super().__init__()
        self.shape = shape
        self.num_classes = num_classes
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.device = device
        g = torch.Generator(device=device).manual_seed(seed)
        self.prototypes = torch.rand((num_classes, *shape), generator=g, device=device)

    def __len__(self) -> int:
        return self.num_samples // self.batch_size if self.train else -(-self.num_samples // self.batch_size)

    def _epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        # train and test draw from disjoint streams; the test split is the same every epoch
        stream = (1 + epoch) if self.train else 0
        g = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + 2 * stream + int(self.train))
        for i in range(len(self)):
            b = min(self.batch_size, self.num_samples - i * self.batch_size)
            y = torch.randint(self.num_classes, (b,), generator=g, device=self.device)
            noise = torch.rand((b, *self.shape), generator=g, device=self.device)
            yield self.prototypes[y].mul(0.5).add_(noise, alpha=0.5), y


def synthetic_images(shape: tuple[int, int, int], num_classes: int, train_size: int, test_size: int,
                     request: DataRequest) -> SyntheticImages:
    """A spec's ``synthetic`` loader for images ``shape`` (``[C, H, W]``): the split ``request.train`` as
    :class:`SyntheticImages` of ``train_size`` or ``test_size`` samples on ``request.device``."""
    return SyntheticImages(shape, num_classes, train_size if request.train else test_size, request.batch_size,
                           train=request.train, seed=request.seed, device=request.device)


class DatasetBatches(Batches):
    """Batches of a map-style ``torch.utils.data.Dataset`` of ``(sample, label)`` items, via a DataLoader.

    The train split is shuffled from ``seed`` (a new order each epoch) and drops the last partial
    batch; the test split is read in order. Batches are moved to ``device`` (pinned, asynchronous on
    a GPU), samples as float32.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, device: torch.device):
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.device = device
        self.workers = min(LOADER_WORKERS, max((os.cpu_count() or 1) - 1, 0)) if device.type == "cuda" else 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def _epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, generator=g,
                            drop_last=self.shuffle, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False)
        try:
            for x, y in loader:
                yield (x.to(self.device, dtype=torch.float32, non_blocking=True),
                       torch.as_tensor(y).to(self.device, dtype=torch.int64, non_blocking=True))
        except DataError as e:
            raise worker_error_message(e) from None


def worker_error_message(e: DataError) -> DataError:
    """A ``DataError`` raised in a DataLoader worker, without the worker's traceback.

    The DataLoader re-raises a worker's exception as the same type with the worker's whole traceback
    as its message; the user's message is the text after the last ``<TypeName>: ``.
    """
    text, marker = str(e), f"{type(e).__name__}: "
    if "Original Traceback" in text and marker in text:
        return type(e)(text.rsplit(marker, 1)[1].strip())
    return e


class PooledBatches(Batches):
    """A fixed pool of batches, made once from ``source`` before anything is timed, cycled through every epoch.

    For data too slow to make per step (synthetic event frames: about 25 ms a DvsGesture sample on a
    CPU core, so a batch of 100 would take seconds while a GPU step takes milliseconds). The pool is
    the first batches of ``source``'s first epoch, already on ``source``'s device: at most
    ``max_batches``, and no more than ``max_bytes`` in all (at least one). An epoch has ``len(source)``
    batches, as the real split: the pool in a seeded order that changes every epoch when ``shuffle``
    (the training split), in pool order otherwise. Deterministic for a given source and seed.
    """

    def __init__(self, source: Iterable[tuple[Tensor, Tensor]], length: int, *, shuffle: bool, seed: int,
                 max_batches: int = POOL_BATCHES, max_bytes: int = POOL_BYTES):
        super().__init__()
        if length < 0 or max_batches < 1:
            raise ValueError(f"length={length} must be >= 0 and max_batches={max_batches} >= 1")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.pool: list[tuple[Tensor, Tensor]] = []
        size = 0
        batches = iter(source)
        try:
            for x, y in batches:
                self.pool.append((x, y))
                size += _nbytes(x) + _nbytes(y)
                per_batch = size / len(self.pool)
                if len(self.pool) >= min(max_batches, length) or size + per_batch > max_bytes:
                    break
        finally:
            close = getattr(batches, "close", None)
            if close is not None:    # a DataLoader's workers stop now, not when garbage-collected
                close()
        if length and not self.pool:
            raise ValueError("the source gave no batch to pool")

    @property
    def nbytes(self) -> int:
        """Device bytes the pool occupies (recorded beside peak memory)."""
        return sum(_nbytes(x) + _nbytes(y) for x, y in self.pool)

    def __len__(self) -> int:
        return self.length

    def _epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.pool)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        for i in range(self.length):
            yield self.pool[order[i % n]]


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()
