"""The plain-loop reference of every fused neuron: docs/neurons.md written out step by step.

Never optimised; every implementation of the op (the CUDA kernels, the CPU op, the no-compiler
fallback) is tested against it. It computes in the dtype of ``x`` (float64 for the ground truth;
bf16/fp16 input gives plain PyTorch's error in that dtype, the yardstick the tests use) and lets
autograd differentiate the loop, with the surrogate standing in for the spike's derivative. The
neuron's own maths is its description's ``charge`` (tfbench/ops/neurons/); fire, reset and the
surrogate are shared, below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .neurons import LIFParams, PLIFParams


def surrogate_grad(u: Tensor, name: str, alpha: float) -> Tensor:
    """g(u) of docs/neurons.md's surrogate table."""
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


class _HardReset(torch.autograd.Function):
    """v = s * v_reset + (1 - s) * h, its value taken by selection: h = +inf then resets to v_reset
    as in the kernels (the product form would give 0 * inf = NaN); the derivative is the product
    form's, dv/dh = 1 - s and dv/ds = v_reset - h."""

    @staticmethod
    def forward(ctx, h: Tensor, s: Tensor, v_reset: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(h, s)
        ctx.v_reset = v_reset
        return torch.where(s != 0, torch.full_like(h, v_reset), h)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        h, s = ctx.saved_tensors
        return grad * (1 - s), grad * (ctx.v_reset - h), None


def neuron_reference(x: Tensor, v0: Tensor | None, p: LIFParams | PLIFParams, learned: Sequence[Tensor] = (),
                     return_membrane: bool = False):
    """Spikes ``s`` ([T, *], x's dtype) and final membrane ``v_T`` ([*], x's dtype) of neuron ``p``.

    ``learned``: the neuron's learnable tensors (PLIF: ``(w,)``), cast to x's dtype. With
    ``return_membrane=True`` it also returns the pre-reset membranes ``h`` and the membranes after
    the reset ``v`` (both [T, *]): h tells ties apart, v gives the checkpoints of ``save="input"``.
    """
    p = p.validate()
    learned = tuple(w.to(x.dtype) for w in learned)
    v = torch.full_like(x[0], p.rest) if v0 is None else v0.to(x.dtype)
    spikes, charged, after = [], [], []
    for t in range(x.shape[0]):
        h = p.charge(v, x[t], learned)
        s = _Spike.apply(h - p.v_threshold, p.surrogate, p.alpha)
        s_reset = s.detach() if p.detach_reset else s
        v = _HardReset.apply(h, s_reset, p.v_reset) if p.hard_reset else h - s_reset * p.v_threshold
        spikes.append(s)
        if return_membrane:
            charged.append(h)
            after.append(v)
    if return_membrane:
        return torch.stack(spikes), v, torch.stack(charged), torch.stack(after)
    return torch.stack(spikes), v


def lif_reference(x: Tensor, v0: Tensor | None = None, *, tau: float = 2.0, decay_input: bool = True,
                  v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = False,
                  surrogate: str = "sigmoid", alpha: float = 4.0) -> tuple[Tensor, Tensor]:
    """The reference of ``tfbench.lif`` with the same arguments: ``(s, v_T)`` in x's dtype."""
    return neuron_reference(x, v0, LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha))


def plif_reference(x: Tensor, w: Tensor, v0: Tensor | None = None, *, decay_input: bool = True,
                   v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = False,
                   surrogate: str = "sigmoid", alpha: float = 4.0) -> tuple[Tensor, Tensor]:
    """The reference of ``tfbench.plif`` with the same arguments: ``(s, v_T)`` in x's dtype; w gets a gradient."""
    p = PLIFParams(2.0, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha)
    return neuron_reference(x, v0, p, (w,))
