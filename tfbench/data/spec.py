"""What a dataset is to the harness: a spec of plain data, and the request its loaders answer.

Nothing here imports torch: the registry (``registry.py``) is read by the command line to print
``--help`` and to refuse a bad option. A spec names its loaders and its encoder lazily
(:func:`lazy`, ``"module:function"``); the module, and torch with it, is imported on the first call.

A loader (real or synthetic) takes a :class:`DataRequest` and returns a ``Batches``
(``batches.py``): an iterable of ``(x, y)`` batches already on the run's device, ``x`` the raw batch
(static images: float ``[B, C, H, W]`` in [0, 1]; event frames: ``[B, T, C, H, W]``), ``y`` int64
class labels ``[B]``, and ``len()`` the batches per epoch. The spec's ``encode`` turns a raw batch
into the network's input ``[T, B, C, H, W]``.

Adding a dataset is one ``DatasetSpec`` in the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from .batches import Batches

    # load(request) and synthetic(request): the split ``request.train`` as batches on ``request.device``
    Loader = Callable[["DataRequest"], Batches]
    # encode(x, T, generator=None, in_channels=None) -> [T, B, C, H, W]; None: the dataset's default channels
    Encoder = Callable[..., Tensor]

# Distinct batches in a pre-made pool of synthetic event frames (per split): enough that training does
# not fit a single batch, few enough to make in seconds; a step's time does not depend on the values it
# is fed. Here, not in batches.py, so that the command line can quote it without importing torch.
POOL_BATCHES = 8


@dataclass(frozen=True)
class DataRequest:
    """Everything a loader needs: where the data lives, which split, and the run's shape and device."""

    root: Path
    train: bool
    download: bool
    T: int
    batch_size: int
    seed: int
    device: torch.device
    split_by: str | None = None   # event datasets: how a sample's events are cut into T frames (None: the default)


@dataclass(frozen=True)
class Lazy:
    """A function named ``"package.module:function"``, imported at its first call; ``args`` go first.

    ``Lazy("tfbench.data.vision:load", ("MNIST",))(request)`` is ``vision.load("MNIST", request)``.
    """

    target: str
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        module, colon, name = self.target.partition(":")
        if not (module and colon and name):
            raise ValueError(f"lazy reference {self.target!r} must read 'package.module:function'")

    def resolve(self) -> Callable[..., Any]:
        """The function itself (its module imported now)."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*self.args, *args, **kwargs)


def lazy(target: str, *args: Any) -> Lazy:
    """``target`` (``"module:function"``) called with ``args`` first, imported when first called."""
    return Lazy(target, args)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its shape and classes, a real loader, a synthetic generator, and the encoder.

    ``in_channels`` and ``image_size`` describe the encoded input the network sees
    (``[T, B, in_channels, *image_size]``) by default; ``in_channels_choices`` lists every channel count
    ``encode`` can give (empty: ``in_channels`` only). ``split_by_choices`` is empty for image datasets;
    for event datasets it lists the ways to cut a sample's events into T frames, the first the default
    (``DataRequest.split_by``). ``train_size``/``test_size`` are the real split sizes (a synthetic epoch
    has as many samples). ``files`` says where the real files go under ``--data-root``, for messages
    (empty: the data is generated, no files). ``description`` is one sentence for ``--help``.
    ``spikes``: ``encode`` gives spikes, 0 or 1 only (the images' rate coding; event frames count events),
    which the lean network's first layer may then keep as bits.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    train_size: int
    test_size: int
    load: Loader
    synthetic: Loader
    encode: Encoder
    files: str = ""
    split_by_choices: tuple[str, ...] = ()
    in_channels_choices: tuple[int, ...] = ()
    description: str = ""
    spikes: bool = False

    @property
    def events(self) -> bool:
        """Frames from an event camera: ``split_by`` and a choice of input channels apply."""
        return bool(self.split_by_choices)

    @property
    def channel_choices(self) -> tuple[int, ...]:
        """Every input channel count the encoder can give (``in_channels`` is the default)."""
        return self.in_channels_choices or (self.in_channels,)

    def batches(self, request: DataRequest, synthetic: bool) -> Batches:
        """The real (or synthetic) split ``request.train`` as batches on ``request.device``."""
        return (self.synthetic if synthetic else self.load)(request)
