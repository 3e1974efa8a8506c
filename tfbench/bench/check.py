"""The correctness check done before a backend is timed: its spikes against LIF_SPEC's reference.

Exact equality is the test, except where the reference's pre-reset membrane comes within
``TIE_TOLERANCE`` of the threshold: there a library that rounds differently (``x/tau`` against
``x*(1/tau)``) or fires on ``>`` instead of ``>=`` may legitimately flip a spike, and everything
after it in that neuron. A mismatch anywhere else fails the check.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops.lif import LIFParams

TIE_TOLERANCE = 1e-4   # far above fp32 rounding of one step (~1e-7), far below typical |h - threshold|
CHECK_SHAPE = (8, 4096)  # T x N of the check: big enough to exercise every branch, cheap on a CPU


def membrane_reference(x: Tensor, p: LIFParams) -> tuple[Tensor, Tensor]:
    """LIF_SPEC's forward in float64: spikes ``[T, *]`` and pre-reset membrane ``h`` ``[T, *]``."""
    x = x.double()
    vr = p.rest
    v = torch.full_like(x[0], vr)
    spikes, hs = [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - vr)) / p.tau if p.decay_input else v - (v - vr) / p.tau + x[t]
        s = (h >= p.v_threshold).double()
        v = s * vr + (1 - s) * h if p.hard_reset else h - s * p.v_threshold
        spikes.append(s)
        hs.append(h)
    return torch.stack(spikes), torch.stack(hs)


def unexplained_mismatches(spikes: Tensor, x: Tensor, p: LIFParams, tolerance: float = TIE_TOLERANCE) -> int:
    """Neurons whose spikes differ from the reference without a near-tie at or before the first difference.

    Args:
        spikes: a backend's spikes ``[T, *]`` for input ``x`` ``[T, *]`` (any float dtype, any device).
        p: the neuron both follow.
    Returns:
        The number of such neurons (0 means the backend matches LIF_SPEC).
    """
    ref, h = membrane_reference(x.detach().cpu(), p)
    got = spikes.detach().cpu().double().reshape(ref.shape)
    differ = (got != ref).reshape(ref.shape[0], -1)
    if not differ.any():
        return 0
    near = ((h - p.v_threshold).abs() < tolerance).reshape(ref.shape[0], -1)
    steps = torch.arange(ref.shape[0]).unsqueeze(1)
    first = torch.where(differ, steps, ref.shape[0]).min(0).values        # first differing step per neuron
    bad = differ.any(0)
    near_before = (near & (steps <= first)).any(0)
    return int((bad & ~near_before).sum())


def check_layer(layer: torch.nn.Module, p: LIFParams, device: torch.device | str, seed: int = 0) -> bool:
    """Run ``layer`` (``[T, N] -> [T, N]``) on a fixed random input; True when its spikes match LIF_SPEC."""
    g = torch.Generator().manual_seed(seed)
    steps, n = CHECK_SHAPE
    scale = max(abs(p.v_threshold - p.rest), 0.1)   # inputs around the threshold: both spikes and silence
    x = ((torch.randn(steps, n, generator=g) * 1.5 + 0.5) * scale).to(device)
    with torch.no_grad():
        spikes = layer(x)
    return unexplained_mismatches(spikes, x, p) == 0
