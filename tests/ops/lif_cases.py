"""Inputs, the tie mask and the comparisons shared by the LIF op's tests."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from tfbench.ops.lif import LIFParams, lif_reference
from tfbench.ops.lif.cpu import lif_forward_cpu

# Every combination of the contract's switches (LIF_SPEC.md): decay_input, reset (hard at 0, hard
# at a non-zero value, soft), detach_reset and the three surrogates.
ALL_PARAMS = [
    LIFParams(tau=tau, decay_input=decay, v_threshold=thr, v_reset=reset, detach_reset=detach,
              surrogate=sg, alpha=alpha)
    for (decay, reset, detach, sg), (tau, thr, alpha) in zip(
        itertools.product([True, False], [0.0, -0.25, None], [False, True], ["sigmoid", "atan", "rect"]),
        itertools.cycle([(2.0, 1.0, 4.0), (1.25, 0.3, 2.0), (5.0, 0.7, 1.0)]))
]

TIE_EPS = 1e-4  # a neuron whose float64 membrane comes this close to the threshold is a tie: rounding decides


def make_input(shape: tuple[int, ...], p: LIFParams, dtype=torch.float32, device="cpu", seed=0) -> Tensor:
    """Currents that make neurons fire at a useful rate for the neuron ``p``."""
    g = torch.Generator().manual_seed(seed)
    scale = p.v_threshold * (p.tau if p.decay_input and math.isfinite(p.tau) else 1.0)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 0.8 + 0.6) * scale
    return x.to(dtype=dtype, device=device)


def tie_mask(x: Tensor, v0: Tensor | None, p: LIFParams) -> Tensor:
    """[N] bool over flattened neurons: True where no step's float64 membrane is within TIE_EPS of threshold."""
    x64 = x.detach().double().cpu().reshape(x.shape[0], -1)
    v064 = None if v0 is None else v0.detach().double().cpu().reshape(-1)
    _, h, _ = lif_forward_cpu(x64, v064, p)
    return ((h - p.v_threshold).abs() > TIE_EPS * max(1.0, abs(p.v_threshold))).all(dim=0)


def rel_err(a: Tensor, b: Tensor, scale: float = 0.0) -> float:
    """||a - b|| / max(||b||, scale * sqrt(numel)): relative error, measured against ``scale`` where
    b is much smaller than its natural scale (a soft-reset membrane just past threshold is h - thr:
    its fp32 error is relative to thr, not to the small difference)."""
    a, b = a.double().cpu(), b.double().cpu()
    denom = max(b.norm().item(), scale * max(b.numel(), 1) ** 0.5)
    diff = (a - b).norm().item()
    return diff / denom if denom > 0 else diff


def loss_weights(x: Tensor, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    ws = torch.randn(x.shape, generator=g, dtype=torch.float64)
    wv = torch.randn(x.shape[1:], generator=g, dtype=torch.float64)
    return ws, wv


def run_with_grads(fn, x: Tensor, v0: Tensor | None, p: LIFParams, ws: Tensor, wv: Tensor):
    """s, v_T, dL/dx, dL/dv0 of L = sum(s * ws) + sum(v_T * wv), with fn the op or the reference."""
    x = x.detach().clone().requires_grad_(True)
    v0 = None if v0 is None else v0.detach().clone().requires_grad_(True)
    s, v_last = fn(x, v0, **p.as_kwargs())
    loss = (s.double() * ws.to(s.device)).sum() + (v_last.double() * wv.to(s.device)).sum()
    loss.backward()
    return s.detach(), v_last.detach(), x.grad, None if v0 is None else v0.grad


def reference64(x: Tensor, v0: Tensor | None, p: LIFParams, ws: Tensor, wv: Tensor):
    """The reference on float64 copies of the inputs, on the CPU: the ground truth."""
    x64 = x.detach().double().cpu()
    v064 = None if v0 is None else v0.detach().double().cpu()
    return run_with_grads(lif_reference, x64, v064, p, ws, wv)


def masked(t: Tensor | None, mask: Tensor, time_major: bool) -> Tensor | None:
    if t is None:
        return None
    t = t.detach().double().cpu()
    if time_major:
        return t.reshape(t.shape[0], -1)[:, mask]
    return t.reshape(-1)[mask]
