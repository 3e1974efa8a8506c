"""The correctness check done before a backend is timed: its spikes against the reference's.

Exact equality is the test, except where the reference's pre-reset membrane comes within
``TIE_TOLERANCE`` of the threshold: there a library that rounds differently (``x/tau`` against
``x*(1/tau)``) or fires on ``>`` instead of ``>=`` may legitimately flip a spike, and everything
after it in that neuron. A mismatch anywhere else fails the check. The reference is
tfbench/ops/reference.py (docs/neurons.md), in float64; a PLIF neuron's w its starting value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops.neurons import NeuronParams

TIE_TOLERANCE = 1e-4   # far above fp32 rounding of one step (~1e-7), far below typical |h - threshold|
CHECK_SHAPE = (8, 4096)  # T x N of the check: big enough to exercise every branch, cheap on a CPU


def learned_of(p: NeuronParams) -> tuple[Tensor, ...]:
    """The neuron's learnable tensors at their starting values (PLIF: w from init_tau, float64): what
    a freshly built layer of any backend holds, up to its own rounding (a tie, at worst)."""
    return (torch.tensor(p.init_w(), dtype=torch.float64),) if p.learned else ()


def membrane_reference(x: Tensor, p: NeuronParams,
                       learned: tuple[Tensor, ...] | None = None) -> tuple[Tensor, Tensor]:
    """The reference's forward in float64 from rest: spikes ``[T, *]`` and pre-reset membrane ``h``
    ``[T, *]``; ``learned``: the neuron's learnable tensors (default: their starting values)."""
    from ..ops.reference import neuron_reference

    learned = learned_of(p) if learned is None else learned
    with torch.no_grad():
        s, _, h, _ = neuron_reference(x.double(), None, p, tuple(w.double().cpu() for w in learned),
                                      return_membrane=True)
    return s, h


def unexplained_mismatches(spikes: Tensor, x: Tensor, p: NeuronParams, tolerance: float = TIE_TOLERANCE,
                           learned: tuple[Tensor, ...] | None = None) -> int:
    """Neurons whose spikes differ from the reference without a near-tie at or before the first difference.

    Args:
        spikes: a backend's spikes ``[T, *]`` for input ``x`` ``[T, *]`` (any float dtype, any device).
        p: the neuron both follow. learned: its learnable tensors (PLIF's w; default: from ``p``).
    Returns:
        The number of such neurons (0 means the backend matches the reference).
    """
    ref, h = membrane_reference(x.detach().cpu(), p, learned)
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


def check_layer(layer: torch.nn.Module, p: NeuronParams, device: torch.device | str, seed: int = 0) -> bool:
    """Run ``layer`` (``[T, N] -> [T, N]``) on a fixed random input; True when its spikes match the reference."""
    g = torch.Generator().manual_seed(seed)
    steps, n = CHECK_SHAPE
    scale = max(abs(p.v_threshold - p.rest), 0.1)   # inputs around the threshold: both spikes and silence
    x = ((torch.randn(steps, n, generator=g) * 1.5 + 0.5) * scale).to(device)
    with torch.no_grad():
        spikes = layer(x)
    return unexplained_mismatches(spikes, x, p) == 0


NORM_CHECK_SHAPE = (8, 4, 16, 64)  # T x M x C x inner of the lean check


def check_norm_layer(layer: torch.nn.Module, p: NeuronParams, device: torch.device | str, seed: int = 0) -> bool:
    """The lean path's check: ``layer.forward_norm(z, bn)`` (BatchNorm folded in, batch statistics) on a
    fixed random z ``[T, M, C, inner]``; True when its spikes match the reference run on BatchNorm's
    float64 output (away from ties, as ``check_layer``)."""
    import torch.nn.functional as F
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    steps, m, c, inner = NORM_CHECK_SHAPE
    z = torch.randn(steps, m, c, inner, generator=g) * 2.0 + 0.5
    bn = nn.BatchNorm2d(c)
    scale = max(abs(p.v_threshold - p.rest), 0.1)
    with torch.no_grad():
        bn.weight.copy_((torch.rand(c, generator=g) + 0.5) * scale)
        bn.bias.copy_((torch.rand(c, generator=g) - 0.3) * scale)
        # BatchNorm over (T, M, inner) per channel, in float64: the reference's input
        y = F.batch_norm(z.double().permute(0, 1, 3, 2).reshape(-1, c), None, None, bn.weight.double(),
                         bn.bias.double(), True, 0.0, bn.eps)
        y = y.reshape(steps, m, inner, c).permute(0, 1, 3, 2).reshape(steps, -1)
        spikes = layer.forward_norm(z.to(device), bn.to(device))
    return unexplained_mismatches(spikes.reshape(steps, -1), y, p) == 0
