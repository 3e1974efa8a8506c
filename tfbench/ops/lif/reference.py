"""The plain-loop LIF reference: LIF_SPEC.md written out step by step, never optimised.

Every implementation of the op (the CUDA kernel, the CPU path) is tested against this. It computes
in the dtype of ``x`` (so a bf16 input gives plain PyTorch's bf16 error, the yardstick the tests use)
and lets autograd differentiate the loop, with the surrogate standing in for the spike's derivative.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .params import LIFParams


def surrogate_grad(u: Tensor, name: str, alpha: float) -> Tensor:
    """g(u) of LIF_SPEC's surrogate table."""
    if name == "sigmoid":
        sg = torch.sigmoid(alpha * u)
        return alpha * sg * (1 - sg)
    if name == "atan":
        return alpha / 2 / (1 + (math.pi / 2 * alpha * u) ** 2)
    if name == "rect":
        return (u.abs() < 1 / (2 * alpha)).to(u.dtype) * alpha
    raise ValueError(f"unknown surrogate {name!r}")


class _Spike(torch.autograd.Function):
    """Heaviside step forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx, u: Tensor, name: str, alpha: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.name, ctx.alpha = name, alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * surrogate_grad(u, ctx.name, ctx.alpha), None, None


def lif_reference(x: Tensor, v0: Tensor | None = None, *, tau: float = 2.0, decay_input: bool = True,
                  v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = False,
                  surrogate: str = "sigmoid", alpha: float = 4.0) -> tuple[Tensor, Tensor]:
    """Spikes ``s`` ([T, *], x's dtype) and final membrane ``v_T`` ([*], x's dtype) of a LIF layer."""
    p = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha).validate()
    vr = p.rest
    v = torch.full_like(x[0], vr) if v0 is None else v0.to(x.dtype)
    spikes = []
    for t in range(x.shape[0]):
        if p.decay_input:
            h = v + (x[t] - (v - vr)) / p.tau
        else:
            h = v - (v - vr) / p.tau + x[t]
        s = _Spike.apply(h - p.v_threshold, p.surrogate, p.alpha)
        s_reset = s.detach() if p.detach_reset else s
        if p.hard_reset:
            v = s_reset * p.v_reset + (1 - s_reset) * h
        else:
            v = h - s_reset * p.v_threshold
        spikes.append(s)
    return torch.stack(spikes), v
