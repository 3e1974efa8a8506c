"""Encodings: a raw batch to the network's input ``[T, B, C, H, W]``, the spec's ``encode``.

Images are Bernoulli rate-coded, one independent draw per time step (the paper's encoding), a
1-channel image repeated to the 3-channel stem; event frames are already in time steps and only
turned time-first, with a zero third channel for the 3-channel stem by default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .events.specs import IN_CHANNELS as EVENT_CHANNELS


def rate_encode(x: Tensor, T: int, generator: torch.Generator | None = None, channels: int = 3) -> Tensor:
    """Bernoulli rate coding, one independent draw per time step (the paper's encoding).

    Args:
        x: intensities in [0, 1], ``[B, C, H, W]``, float. A 1-channel image is repeated to
            ``channels`` channels (the paper feeds MNIST to the same 3-channel stem as CIFAR-10).
        T: time steps.
        generator: random source on x's device (None: the global one).

    Returns:
        Spikes ``[T, B, channels, H, W]``, float32 0/1.
    """
    if x.dim() != 4:
        raise ValueError(f"rate_encode expects [B, C, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    probs = x.float().unsqueeze(0).expand(T, *x.shape)
    return torch.bernoulli(probs, generator=generator)


def encode_images(x: Tensor, T: int, generator: torch.Generator | None = None,
                  in_channels: int | None = None) -> Tensor:
    """The image datasets' ``encode``: ``[B, C, H, W]`` in [0, 1] -> spikes ``[T, B, 3, H, W]``.

    A 1-channel image is repeated to 3 channels; ``in_channels`` is 3 (or None): every image dataset
    feeds the 3-channel stem, as the paper.
    """
    if in_channels not in (None, 3):
        raise ValueError(f"in_channels={in_channels!r}: image datasets are encoded to 3 channels only")
    return rate_encode(x, T, generator, channels=3)


def to_model_input(frames: Tensor, in_channels: int = 3) -> Tensor:
    """Batch-first event frames ``[B, T, 2, H, W]`` to the model's time-first ``[T, B, C, H, W]``.

    ``in_channels=3`` appends a zero third channel (how the paper feeds the 2 polarities to the
    3-channel stem); ``in_channels=2`` keeps the polarities as they are. Same dtype and device as
    ``frames``; the result is contiguous (a copy).
    """
    if in_channels not in EVENT_CHANNELS:
        raise ValueError(f"in_channels={in_channels!r} is not one of {', '.join(map(str, EVENT_CHANNELS))}")
    if frames.dim() != 5 or frames.shape[2] != 2:
        raise ValueError(f"frames must be [B, T, 2, H, W] (2 polarities), got {list(frames.shape)}")
    time_first = frames.transpose(0, 1)
    if in_channels == 2:
        return time_first.contiguous()
    return torch.cat([time_first, torch.zeros_like(time_first[:, :, :1])], dim=2)


def encode_frames(x: Tensor, T: int, generator: torch.Generator | None = None,
                  in_channels: int | None = None) -> Tensor:
    """The event datasets' ``encode``: frames ``[B, T, 2, H, W]`` -> ``[T, B, C, H, W]``, ``C = in_channels``
    (None: 3, a zero third channel). ``T`` and ``generator`` are unused: the frames are fixed."""
    return to_model_input(x, 3 if in_channels is None else in_channels)
