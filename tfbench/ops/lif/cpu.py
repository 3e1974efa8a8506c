"""The fused op on the CPU: the kernel's per-neuron loop, vectorised over neurons, looping over T.

The same contract as cuda.py: forward keeps only the pre-reset membrane h (storage dtype) for
backward, or (``save="input"``) x and a membrane checkpoint every ``alloc.CKPT`` steps, from which
backward recomputes h with the very step function the forward ran; arithmetic is float32 (float64
for float64 input, which gradcheck uses).
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


def _charge(v: Tensor, xt: Tensor, p: LIFParams) -> Tensor:
    """The pre-reset membrane h[t] from v[t-1] and x[t] (LIF_SPEC "Forward"), in the arithmetic dtype."""
    vr = p.rest
    return v + (xt - (v - vr)) / p.tau if p.decay_input else v - (v - vr) / p.tau + xt


def _reset(ht: Tensor, spike: Tensor, p: LIFParams) -> Tensor:
    if p.hard_reset:
        return torch.where(spike, torch.full_like(ht, p.rest), ht)
    return torch.where(spike, ht - p.v_threshold, ht)


def _initial(v0: Tensor | None, n: int, acc: torch.dtype, p: LIFParams) -> Tensor:
    return torch.full((n,), p.rest, dtype=acc) if v0 is None else v0.to(acc).clone()


def _forward_flat(x: Tensor, v0: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor, Tensor]:
    acc = _acc_dtype(x.dtype)
    steps = x.shape[0]
    s = alloc.empty(tuple(x.shape), x.dtype, x.device)
    h = alloc.empty(tuple(x.shape), x.dtype, x.device)
    v = _initial(v0, x.shape[1], acc, p)
    for t in range(steps):
        ht = _charge(v, x[t].to(acc), p)
        spike = ht >= p.v_threshold
        s[t] = spike.to(x.dtype)
        h[t] = _store_h(ht, spike, x.dtype, p.v_threshold)
        v = _reset(ht, spike, p)
    return s, h, v


def lif_backward_cpu(gs: Tensor, h: Tensor, gv_last: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor]:
    """gs, h: [T, *]; gv_last: [*] or None. Returns gx (h's shape and dtype) and gv0 [*] (float32/64)."""
    shape = h.shape
    gv_last = None if gv_last is None else gv_last.reshape(-1)
    gx, gv0 = _backward_flat(gs.reshape(shape[0], -1), h.reshape(shape[0], -1), gv_last, p)
    return gx.view(shape), gv0.view(shape[1:])


def _grad_step(gs_t: Tensor, ht: Tensor, gv: Tensor, p: LIFParams) -> tuple[Tensor, Tensor]:
    """One step of LIF_SPEC "Backward": (dL/dx[t], dL/dv[t-1]) from dL/ds[t], h[t] and dL/dv[t]."""
    g = surrogate_grad(ht - p.v_threshold, p.surrogate, p.alpha)
    not_spike = (ht < p.v_threshold).to(ht.dtype)
    if p.hard_reset:
        dvdh = not_spike if p.detach_reset else not_spike + (p.v_reset - ht) * g
    else:
        dvdh = torch.ones_like(ht) if p.detach_reset else 1 - p.v_threshold * g
    gh = gs_t * g + gv * dvdh
    return (gh / p.tau if p.decay_input else gh), gh * (1.0 - 1.0 / p.tau)


def _backward_flat(gs: Tensor, h: Tensor, gv_last: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor]:
    acc = _acc_dtype(h.dtype)
    steps, n = h.shape
    gx = alloc.empty(tuple(h.shape), h.dtype, h.device)
    gv = torch.zeros(n, dtype=acc) if gv_last is None else gv_last.to(acc).clone()
    for t in range(steps - 1, -1, -1):
        gx[t], gv = _grad_step(gs[t].to(acc), h[t].to(acc), gv, p)
    return gx, gv


# ------------------------------------------------------------------------------------------------
# Keep x instead of h (save="input")
# ------------------------------------------------------------------------------------------------
def lif_forward_ckpt_cpu(x: Tensor, v0: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor, Tensor]:
    """x: [T, *] contiguous; v0: [*] or None. Returns s (x's shape and dtype), the membrane
    checkpoints ``[alloc.ckpt_rows(T), *]`` (float32/64: v before steps CKPT, 2 CKPT, ...) and v_T."""
    shape = x.shape
    x = x.reshape(shape[0], -1)
    acc = _acc_dtype(x.dtype)
    s = alloc.empty(tuple(x.shape), x.dtype, x.device)
    ckpt = alloc.empty((alloc.ckpt_rows(shape[0]), x.shape[1]), acc, x.device)
    v = _initial(None if v0 is None else v0.reshape(-1), x.shape[1], acc, p)
    for t in range(shape[0]):
        if t and t % alloc.CKPT == 0:
            ckpt[t // alloc.CKPT - 1] = v
        ht = _charge(v, x[t].to(acc), p)
        spike = ht >= p.v_threshold
        s[t] = spike.to(x.dtype)
        v = _reset(ht, spike, p)
    return s.view(shape), ckpt.view(ckpt.shape[0], *shape[1:]), v.view(shape[1:])


def lif_backward_recompute_cpu(gs: Tensor, x: Tensor, v0: Tensor | None, ckpt: Tensor,
                               gv_last: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor]:
    """gs, x: [T, *]; v0: [*] or None as given to the forward; ckpt: the forward's checkpoints;
    gv_last: [*] or None. Returns gx (x's shape and dtype) and gv0 [*]: segment by segment from
    the last, h is recomputed from x exactly as the forward computed it, then differentiated."""
    shape = x.shape
    steps = shape[0]
    x, gs = x.reshape(steps, -1), gs.reshape(steps, -1)
    acc = _acc_dtype(x.dtype)
    n = x.shape[1]
    ckpt = ckpt.reshape(ckpt.shape[0], n)
    gx = alloc.empty(tuple(x.shape), x.dtype, x.device)
    gv = torch.zeros(n, dtype=acc) if gv_last is None else gv_last.reshape(-1).to(acc).clone()
    start = _initial(None if v0 is None else v0.reshape(-1), n, acc, p)
    for c in range((steps - 1) // alloc.CKPT, -1, -1):
        t0 = c * alloc.CKPT
        v = ckpt[c - 1].to(acc) if c else start
        hs = []
        for t in range(t0, min(t0 + alloc.CKPT, steps)):
            ht = _charge(v, x[t].to(acc), p)
            hs.append(ht)
            v = _reset(ht, ht >= p.v_threshold, p)
        for t in range(t0 + len(hs) - 1, t0 - 1, -1):
            gx[t], gv = _grad_step(gs[t].to(acc), hs[t - t0], gv, p)
    return gx.view(shape), gv.view(shape[1:])
