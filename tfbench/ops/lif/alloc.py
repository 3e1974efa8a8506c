"""Output allocation for the op's implementations.

Tests set ``POISON = True`` so that every output starts as NaN: an element a kernel never wrote
then fails the comparison with the reference instead of passing by luck.
"""

from __future__ import annotations

import torch

POISON = False

# Steps per checkpoint segment when the op keeps x instead of h (lif(..., save="input")); the
# kernels get it as LIF_CKPT (kernels/lif.cuh gives the reason for 8). The CPU path uses the same
# value, so the kept checkpoints have one shape on every device (and in the fake implementation).
CKPT = 8


def ckpt_rows(steps: int) -> int:
    """Membrane checkpoints kept for ``steps`` time steps: one at each CKPT-th step boundary after 0
    (the first segment starts from v0, which needs no copy); 0 when steps <= CKPT."""
    return (steps - 1) // CKPT


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if POISON:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)
