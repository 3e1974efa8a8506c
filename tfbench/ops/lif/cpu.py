"""The fused op on the CPU: the kernel's per-neuron loop, vectorised over neurons, looping over T.

The same contract as cuda.py: forward keeps only the pre-reset membrane h (storage dtype) for
backward, arithmetic is float32 (float64 for float64 input, which gradcheck uses).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import alloc
from .params import LIFParams
from .reference import surrogate_grad


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _step16(stored: Tensor, up: Tensor) -> Tensor:
    """One representable step of a bf16/fp16 tensor towards +inf (up) or -inf, as lif.cuh's step16."""
    bits = stored.view(torch.int16).to(torch.int32) & 0xFFFF
    neg = (bits & 0x8000) != 0
    zero = (bits & 0x7FFF) == 0
    stepped = torch.where(up != neg, bits + 1, bits - 1)
    stepped = torch.where(zero, torch.where(up, 0x0001, 0x8001), stepped)
    stepped = torch.where(stepped >= 0x8000, stepped - 0x10000, stepped)
    return stepped.to(torch.int16).view(stored.dtype)


def _store_h(h: Tensor, spike: Tensor, dtype: torch.dtype, thr: float) -> Tensor:
    """Round h to the storage dtype keeping (h >= thr) as the forward saw it (see lif.cuh's store_h)."""
    stored = h.to(dtype)
    if dtype in (torch.float32, torch.float64):
        return stored
    back = stored.float()
    crossed = (back >= thr) != spike
    return torch.where(crossed, _step16(stored, back < h), stored)


def lif_forward_cpu(x: Tensor, v0: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor, Tensor]:
    """x: [T, *] contiguous; v0: [*] or None. Returns s, h (x's shape and dtype) and v_T [*]."""
    shape = x.shape
    x = x.reshape(shape[0], -1)
    v0 = None if v0 is None else v0.reshape(-1)
    s, h, v = _forward_flat(x, v0, p)
    return s.view(shape), h.view(shape), v.view(shape[1:])


def _forward_flat(x: Tensor, v0: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor, Tensor]:
    acc = _acc_dtype(x.dtype)
    steps = x.shape[0]
    s = alloc.empty(tuple(x.shape), x.dtype, x.device)
    h = alloc.empty(tuple(x.shape), x.dtype, x.device)
    v = torch.full((x.shape[1],), p.rest, dtype=acc) if v0 is None else v0.to(acc).clone()
    vr = p.rest
    for t in range(steps):
        xt = x[t].to(acc)
        ht = v + (xt - (v - vr)) / p.tau if p.decay_input else v - (v - vr) / p.tau + xt
        spike = ht >= p.v_threshold
        s[t] = spike.to(x.dtype)
        h[t] = _store_h(ht, spike, x.dtype, p.v_threshold)
        if p.hard_reset:
            v = torch.where(spike, torch.full_like(ht, vr), ht)
        else:
            v = torch.where(spike, ht - p.v_threshold, ht)
    return s, h, v


def lif_backward_cpu(gs: Tensor, h: Tensor, gv_last: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor]:
    """gs, h: [T, *]; gv_last: [*] or None. Returns gx (h's shape and dtype) and gv0 [*] (float32/64)."""
    shape = h.shape
    gv_last = None if gv_last is None else gv_last.reshape(-1)
    gx, gv0 = _backward_flat(gs.reshape(shape[0], -1), h.reshape(shape[0], -1), gv_last, p)
    return gx.view(shape), gv0.view(shape[1:])


def _backward_flat(gs: Tensor, h: Tensor, gv_last: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor]:
    acc = _acc_dtype(h.dtype)
    steps, n = h.shape
    gx = alloc.empty(tuple(h.shape), h.dtype, h.device)
    gv = torch.zeros(n, dtype=acc) if gv_last is None else gv_last.to(acc).clone()
    keep = 1.0 - 1.0 / p.tau
    for t in range(steps - 1, -1, -1):
        ht = h[t].to(acc)
        g = surrogate_grad(ht - p.v_threshold, p.surrogate, p.alpha)
        not_spike = (ht < p.v_threshold).to(acc)
        if p.hard_reset:
            dvdh = not_spike if p.detach_reset else not_spike + (p.v_reset - ht) * g
        else:
            dvdh = torch.ones_like(ht) if p.detach_reset else 1 - p.v_threshold * g
        gh = gs[t].to(acc) * g + gv * dvdh
        gx[t] = gh / p.tau if p.decay_input else gh
        gv = gh * keep
    return gx, gv
