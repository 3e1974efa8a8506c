"""Inputs, the tie mask, the error bounds and the comparisons shared by the fused-neuron op's tests.

Every random draw comes from an explicit ``torch.Generator`` seeded by the caller, so a test's
inputs depend only on its own arguments.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from tfbench.ops.neurons import LIFParams, PLIFParams
from tfbench.ops.reference import neuron_reference, surrogate_grad

# Every combination of the shared switches (docs/neurons.md): decay_input, reset (hard at 0, hard
# at a non-zero value, soft), detach_reset and the three surrogates.
ALL_PARAMS = [
    LIFParams(tau=tau, decay_input=decay, v_threshold=thr, v_reset=reset, detach_reset=detach,
              surrogate=sg, alpha=alpha)
    for (decay, reset, detach, sg), (tau, thr, alpha) in zip(
        itertools.product([True, False], [0.0, -0.25, None], [False, True], ["sigmoid", "atan", "rect"]),
        itertools.cycle([(2.0, 1.0, 4.0), (1.25, 0.3, 2.0), (5.0, 0.7, 1.0)]))
]
ALL_PLIF = [PLIFParams(init_tau=p.tau, decay_input=p.decay_input, v_threshold=p.v_threshold, v_reset=p.v_reset,
                       detach_reset=p.detach_reset, surrogate=p.surrogate, alpha=p.alpha) for p in ALL_PARAMS]


def param_id(p) -> str:
    return f"{p.decay_input}-{p.v_reset}-{p.detach_reset}-{p.surrogate}"


TIE_EPS = 1e-4  # a float64 membrane this close to the threshold (or a rect window edge) is a tie: rounding decides


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def make_input(shape: tuple[int, ...], p, dtype=torch.float32, device="cpu", seed=0) -> Tensor:
    """Currents that make neurons fire at a useful rate for the neuron ``p``."""
    scale = p.v_threshold * (p.tau if p.decay_input and math.isfinite(p.tau) else 1.0)
    x = (torch.randn(shape, generator=generator(seed), dtype=torch.float64) * 0.8 + 0.6) * scale
    return x.to(dtype=dtype, device=device)


def make_v0(shape: tuple[int, ...], p, device="cpu", seed=0, dtype=torch.float32) -> Tensor:
    """An initial membrane in [0, v_threshold), from its own generator."""
    return (torch.rand(shape, generator=generator(seed + 7919), dtype=torch.float64) * p.v_threshold).to(
        dtype=dtype, device=device)


def make_w(p: PLIFParams, channels: int | None = None, seed: int = 0, device="cpu") -> Tensor:
    """PLIF's w: the init_tau value, moved by a little noise so that per-channel values differ."""
    shape = () if channels is None else (channels,)
    noise = torch.randn(shape, generator=generator(seed + 104729), dtype=torch.float64) * 0.3
    return (p.init_w() + noise).float().to(device)


def learned_of(p, w: Tensor | None) -> tuple[Tensor, ...]:
    return () if w is None else (w,)


def tie_mask(x: Tensor, v0: Tensor | None, p, learned=()) -> Tensor:
    """[N] bool over flattened neurons: True where no step's float64 membrane is within TIE_EPS of the
    threshold (where rounding decides the spike) nor, for the rect surrogate, of its window's edges."""
    x64 = x.detach().double().cpu().reshape(x.shape[0], *x.shape[1:])
    v064 = None if v0 is None else v0.detach().double().cpu()
    w64 = tuple(w.detach().double().cpu() for w in learned)
    with torch.no_grad():
        _, _, h, _ = neuron_reference(x64, v064, p, w64, return_membrane=True)
    u = (h - p.v_threshold).reshape(h.shape[0], -1)
    scale = TIE_EPS * max(1.0, abs(p.v_threshold))
    near = u.abs() <= scale
    if p.surrogate == "rect":
        near |= ((u.abs() - 1 / (2 * p.alpha)).abs() <= scale)
    return ~near.any(dim=0)


def rel_err(a: Tensor, b: Tensor, scale: float = 0.0) -> float:
    """||a - b|| / max(||b||, scale * sqrt(numel))."""
    a, b = a.double().cpu(), b.double().cpu()
    denom = max(b.norm().item(), scale * max(b.numel(), 1) ** 0.5)
    diff = (a - b).norm().item()
    return diff / denom if denom > 0 else diff


def loss_weights(x: Tensor, seed: int = 1, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """dL/ds and dL/dv_T of the tests' loss L = sum(s * ws) + sum(v_T * wv), float64. Neurons outside
    ``mask`` (ties) get zero weights: they then add exactly 0 to a learned parameter's gradient."""
    g = generator(seed)
    ws = torch.randn(x.shape, generator=g, dtype=torch.float64)
    wv = torch.randn(x.shape[1:], generator=g, dtype=torch.float64)
    if mask is not None:
        keep = mask.reshape(x.shape[1:]).double()
        ws, wv = ws * keep, wv * keep
    return ws, wv


def run_with_grads(fn, x: Tensor, v0: Tensor | None, p, ws: Tensor, wv: Tensor, learned=(), **kw):
    """s, v_T, dL/dx, dL/dv0, [dL/dlearned] of L = sum(s * ws) + sum(v_T * wv); fn(x, v0, learned, p)."""
    x = x.detach().clone().requires_grad_(True)
    v0 = None if v0 is None else v0.detach().clone().requires_grad_(True)
    learned = [w.detach().clone().requires_grad_(True) for w in learned]
    s, v_last = fn(x, v0, learned, p, **kw)
    loss = (s.double() * ws.to(s.device)).sum() + (v_last.double() * wv.to(s.device)).sum()
    loss.backward()
    return (s.detach(), v_last.detach(), x.grad, None if v0 is None else v0.grad, [w.grad for w in learned])


def reference64(x: Tensor, v0: Tensor | None, p, ws: Tensor, wv: Tensor, learned=()):
    """The reference on float64 copies of the inputs, on the CPU: the ground truth."""
    x64 = x.detach().double().cpu()
    v064 = None if v0 is None else v0.detach().double().cpu()
    w64 = [w.detach().double().cpu() for w in learned]
    return run_with_grads(lambda a, b, c, q: neuron_reference(a, b, q, c), x64, v064, p, ws, wv, w64)


def masked(t: Tensor | None, mask: Tensor, time_major: bool) -> Tensor | None:
    if t is None:
        return None
    t = t.detach().double().cpu()
    if time_major:
        return t.reshape(t.shape[0], -1)[:, mask]
    return t.reshape(-1)[mask]


# ------------------------------------------------------------------------------------------------
# Error bounds (fp32 op against the float64 reference)
# ------------------------------------------------------------------------------------------------
UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
# roundings per forward step: v - vr, x - (.), the product, the add (4), and k's own error in the
# arithmetic dtype: 1/tau rounded (LIF, 1 ulp) or sigmoid(w) (PLIF: an exp, an add, a division, 3 ulp)
C_FORWARD = 7
C_BACKWARD = 6  # roundings per backward step besides the surrogate: dv/dh (2), gs*g, gv*dvdh, the add, * (1 - k)


def _surrogate_slope(p) -> float:
    """L = max |g'(u)|: sigmoid alpha^2 / (6 sqrt 3), atan (3 sqrt 3 pi / 32) alpha^2; rect: piecewise
    constant (its two jumps are masked as ties)."""
    if p.surrogate == "sigmoid":
        return p.alpha ** 2 / (6 * math.sqrt(3))
    if p.surrogate == "atan":
        return 3 * math.sqrt(3) * math.pi / 32 * p.alpha ** 2
    return 0.0


def _surrogate_roundings(p, u: Tensor) -> Tensor:
    """Relative error (in units of u) of evaluating g(u) on a GPU: the fast exponential's is at most
    2 + 1.2 |alpha u| ulp, the fast reciprocal's 2 ulp, and 3 more roundings (sigmoid); atan 5 roundings."""
    if p.surrogate == "sigmoid":
        return 7 + 1.2 * p.alpha * u.abs()
    return torch.full_like(u, 5.0 if p.surrogate == "atan" else 0.0)


def error_bounds(x: Tensor, v0: Tensor | None, p, ws: Tensor, wv: Tensor, learned=(),
                 dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Element-wise bounds on |op - float64 reference| for v_T, dL/dx, dL/dv0 and dL/dw (a running
    error analysis: each quantity's rounding errors, carried forward by the recurrence).

    Away from ties (the spikes agree, so both take the same branches). u = the dtype's unit roundoff.

    Forward. The op computes h[t] with C_FORWARD roundings, each at most u times the magnitude of its
    operands, M[t] = |v[t-1]| + |x[t]| + |vr| + |h[t]|; an error in v[t-1] reaches h[t] times (1 - k),
    k = 1/tau. A hard reset sets v to vr rounded (error u |vr|); a soft one subtracts thr rounded. So
        E_h[t] = (1 - k) E_v[t-1] + C_FORWARD u M[t],   E_v[t] = u |vr| after a hard-reset spike, else
        E_h[t] (+ 2u (|h| + |thr|) after a soft-reset spike),
    i.e. E_h[t] <= C_FORWARD u max M * sum_{j<t} (1 - k)^j: at most ~T rounding errors, fewer for a
    short membrane time constant (sum (1 - k)^j <= tau).

    Backward, t = T-1..0: gh = gs g + gv D with g = g(h - thr), D = dv/dh, gv[t-1] = (1 - k) gh. Its
    error is the surrogate's (its slope L times E_h, plus its own roundings), that of D (which holds
    g), the error carried in gv (times |D|), and C_BACKWARD roundings of the terms' magnitudes:
        E_gh[t] = |gs| Eg + |D| E_gv[t] + |gv| ED + C_BACKWARD u (|gs g| + |gv D|)
        E_gv[t-1] = (1 - k) E_gh[t] + 4u |gh|,     E_gx[t] = k E_gh[t] + 4u |gx| (decay_input), else E_gh[t]
    where Eg = L E_h + u c_g (|g| + alpha) and ED = |vr - h| Eg + |g| E_h (hard reset; thr Eg for a
    soft one; 0 when the reset is detached). The recurrence amplifies by |D| (1 - k) per step exactly
    as the gradient itself grows, so the bound stays relative to the magnitudes the sum goes through
    (cancellation between terms of opposite sign does not shrink it).

    dL/dw (PLIF): the sum over t and neurons of gh (h - v[t-1]) (1 - k) (decay_input) or
    gh (v[t-1] - vr) (-k (1 - k)); each term's error from E_gh, E_h and 3 roundings, plus the sum's:
    at most (log2(terms) + 2) u times the sum of |terms| (pairwise within blocks, then ATen's sum).
    """
    u = UNIT_ROUNDOFF[dtype]
    steps = x.shape[0]
    x64 = x.detach().double().cpu().reshape(steps, -1)
    n = x64.shape[1]
    v064 = None if v0 is None else v0.detach().double().cpu().reshape(-1)
    w64 = tuple(w.detach().double().cpu() for w in learned)
    with torch.no_grad():
        s, _, h, v = neuron_reference(x.detach().double().cpu(), None if v0 is None else v0.detach().double().cpu(),
                                      p, w64, return_membrane=True)
    s, h, v = s.reshape(steps, n), h.reshape(steps, n), v.reshape(steps, n)
    if w64:
        k = w64[0].sigmoid().reshape(-1)
        if k.numel() > 1:  # per channel of [T, B, C, ...]
            inner = math.prod(x.shape[3:])
            k = k.repeat_interleave(inner).repeat(x.shape[1])
        else:
            k = k.expand(n)
    else:
        k = torch.full((n,), 0.0 if math.isinf(p.tau) else 1.0 / p.tau, dtype=torch.float64)
    vr, thr, alpha = p.rest, p.v_threshold, p.alpha
    v_start = torch.full((n,), vr, dtype=torch.float64) if v064 is None else v064
    v_prev = torch.cat([v_start.unsqueeze(0), v[:-1]])

    # forward
    # the op holds vr and thr rounded to its dtype: a reset lands on fl(vr), |fl(vr) - vr| <= u |vr|
    e_reset = u * abs(vr)
    e_h = torch.zeros_like(h)
    e_v = torch.full((n,), e_reset if v064 is None else 0.0, dtype=torch.float64)
    for t in range(steps):
        mag = v_prev[t].abs() + x64[t].abs() + abs(vr) + h[t].abs()
        e_h[t] = (1 - k).abs() * e_v + C_FORWARD * u * mag
        if p.hard_reset:
            e_v = torch.where(s[t] > 0, torch.full_like(e_v, e_reset), e_h[t])
        else:  # h - thr, thr rounded: two roundings of at most |h| + |thr|
            e_v = e_h[t] + torch.where(s[t] > 0, 2 * u * (h[t].abs() + abs(thr)), torch.zeros_like(e_v))
    bounds = {"v_T": e_v}

    # backward
    gs, gv = ws.reshape(steps, n).double(), wv.reshape(-1).double()
    slope = _surrogate_slope(p)
    e_gv = torch.zeros(n, dtype=torch.float64)
    e_gx = torch.zeros_like(h)
    terms_abs, e_terms = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    for t in range(steps - 1, -1, -1):
        g = surrogate_grad(h[t] - thr, p.surrogate, alpha)
        keep = (s[t] == 0).double()
        if p.hard_reset:
            d = keep if p.detach_reset else keep + (vr - h[t]) * g
        else:
            d = torch.ones_like(g) if p.detach_reset else 1 - thr * g
        e_g = slope * (e_h[t] + u * abs(thr)) + u * _surrogate_roundings(p, h[t] - thr) * (g.abs() + alpha)
        if p.detach_reset:
            e_d = torch.zeros_like(g)
        else:
            e_d = (vr - h[t]).abs() * e_g + g.abs() * e_h[t] if p.hard_reset else thr * e_g
        gh = gs[t] * g + gv * d
        e_gh = gs[t].abs() * e_g + d.abs() * e_gv + gv.abs() * e_d + C_BACKWARD * u * ((gs[t] * g).abs() + (gv * d).abs())
        gx = gh * k if p.decay_input else gh
        e_gx[t] = (k * e_gh if p.decay_input else e_gh) + 4 * u * gx.abs()  # the product and k's 3 ulp
        if w64:
            if p.decay_input:
                term, scale = h[t] - v_prev[t], 1 - k
                e_term = e_gh * (term * scale).abs() + gh.abs() * (e_h[t] + (e_h[t - 1] if t else 0)) * scale.abs()
            else:
                term, scale = v_prev[t] - vr, -k * (1 - k)
                e_term = e_gh * (term * scale).abs() + gh.abs() * (e_h[t - 1] if t else 0) * scale.abs()
            terms_abs += (gh * term * scale).abs()
            e_terms += e_term + 3 * u * (gh * term * scale).abs()
        gv = gh * (1 - k)
        e_gv = (1 - k).abs() * e_gh + 4 * u * gh.abs()  # the product and 1 - k's error (k's 3 ulp)
    bounds.update(gx=e_gx, gv0=e_gv)
    if w64:
        if w64[0].numel() > 1:
            channels = w64[0].numel()
            per = lambda t: t.reshape(x.shape[1], channels, -1).sum(dim=(0, 2))  # noqa: E731
            count = n // channels * steps
        else:
            per, count = (lambda t: t.sum()), n * steps  # noqa: E731
        bounds["gw"] = per(e_terms) + (math.log2(max(count, 2)) + 2) * u * per(terms_abs)
    return bounds


def assert_within(got: Tensor, want: Tensor, bound: Tensor, what: str) -> None:
    """|got - want| <= bound element-wise (all float64 on the CPU); the message shows the worst element."""
    got, want, bound = got.detach().double().cpu(), want.detach().double().cpu(), bound.double().cpu()
    excess = (got - want).abs() - bound.reshape(got.shape)
    assert not torch.isnan(got).any(), f"{what}: NaN in the op's result"
    if (excess > 0).any():
        i = int(excess.reshape(-1).argmax())
        raise AssertionError(f"{what}: |error| {((got - want).abs().reshape(-1)[i]).item():.3g} exceeds its bound "
                             f"{bound.reshape(-1)[i].item():.3g} at element {i} (value {want.reshape(-1)[i].item():.6g})")
