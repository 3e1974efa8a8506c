"""snnTorch 1.0 ``Leaky``, stepped in a Python loop over T as snnTorch's tutorials and users do.

How LIF_SPEC maps onto ``snn.Leaky(beta, threshold, spike_grad, reset_mechanism)``:

- ``beta = 1 - 1/tau`` (``tau = inf``: ``beta = 1``, an IF neuron).
- ``decay_input``: snnTorch adds the input unscaled (``U = beta*U + I``), so the adapter feeds it
  ``x / tau``; then ``U[t]`` is exactly LIF_SPEC's pre-reset membrane ``h[t]``.
- Hard reset to ``v_reset``: ``reset_mechanism="zero"`` on the membrane shifted by ``v_reset``
  (``threshold = v_threshold - v_reset``), which leaves every spike unchanged.
- snnTorch applies the reset one step late: ``U[t]`` is the pre-reset membrane and the spike of
  step t-1 zeroes it at step t. For a hard reset that is the same recurrence, so the spikes are
  identical. For a soft reset it is not: snnTorch subtracts the threshold *after* the leak
  (``beta*U + I - S*thr``), LIF_SPEC before it (``beta*(U - S*thr) + I``); the two agree only for an
  IF neuron, so a leaky soft-reset neuron raises :class:`Unsupported`.
- The reset signal is always detached from autograd in snnTorch (as ``detach_reset=True``); with
  ``detach_reset=False`` the gradients differ (the spikes do not). Stated in ``DIFFERENCES``.
- Surrogates: snnTorch's ``sigmoid(slope)`` and ``atan(alpha)`` have LIF_SPEC's g(u) when given its
  alpha (their own defaults are slope 25 and alpha 2, so the adapter always passes alpha); ``rect``
  goes through snnTorch's ``custom_surrogate``.
- snnTorch fires on ``U > threshold`` (LIF_SPEC: ``>=``): only an exact tie differs. Its spikes are
  float32 whatever the input dtype (``(U > 0).float()``), so under autocast they are promoted.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops.lif import LIFParams
from .base import Unsupported, quiet_import

DIFFERENCES = ("reset one step late (spikes identical for hard reset); reset always detached from autograd "
               "(as detach_reset=True); fires on U > threshold (LIF_SPEC >=: exact ties only); no leaky soft "
               "reset; decay_input by scaling the input by 1/tau")


def _surrogate(p: LIFParams):
    surrogate = quiet_import("snntorch.surrogate")

    if p.surrogate == "sigmoid":
        return surrogate.sigmoid(slope=p.alpha)
    if p.surrogate == "atan":
        return surrogate.atan(alpha=p.alpha)
    if p.surrogate == "rect":
        alpha = p.alpha
        half_width = 1.0 / (2.0 * alpha)

        def rect(input_: Tensor, grad_input: Tensor, spikes: Tensor) -> Tensor:
            return grad_input * alpha * (input_.abs() < half_width).to(grad_input.dtype)

        return surrogate.custom_surrogate(rect)
    raise Unsupported(f"snnTorch adapter has no '{p.surrogate}' surrogate")


def _leaky(p: LIFParams) -> nn.Module:
    """The ``snn.Leaky`` that follows ``p`` (membrane shifted by ``v_reset`` for a hard reset)."""
    snn = quiet_import("snntorch")

    if not p.hard_reset and not math.isinf(p.tau):
        raise Unsupported("snnTorch subtracts the threshold after the leak (U = beta*U + I - S*thr), LIF_SPEC "
                          "before it; a leaky soft-reset neuron cannot be expressed (only tau=inf)")
    beta = 1.0 if math.isinf(p.tau) else 1.0 - 1.0 / p.tau
    threshold = p.v_threshold - p.rest
    leaky = snn.Leaky(beta=beta, threshold=threshold, spike_grad=_surrogate(p),
                      reset_mechanism="zero" if p.hard_reset else "subtract")
    # snnTorch appends every neuron to a class-level list (for its init_hidden helpers, unused here),
    # which would keep each model's last membrane alive for the whole process: take it out again.
    instances = getattr(snn.SpikingNeuron, "instances", None)
    if instances is not None and leaky in instances:
        instances.remove(leaky)
    return leaky


class SnnTorchLIF(nn.Module):
    """Multi-step ``[T, *] -> [T, *]``: ``snn.Leaky`` called once per time step, state from rest."""

    def __init__(self, p: LIFParams):
        super().__init__()
        self.leaky = _leaky(p)
        self.in_scale = 1.0 / p.tau if p.decay_input else 1.0

    def forward(self, x: Tensor) -> Tensor:
        mem = self.leaky.reset_mem()
        spikes = []
        for t in range(x.shape[0]):
            xt = x[t] * self.in_scale if self.in_scale != 1.0 else x[t]
            spk, mem = self.leaky(xt, mem)
            spikes.append(spk)
        return torch.stack(spikes)


class SnnTorchLIFStep(nn.Module):
    """Single-step ``[*] -> [*]``: one ``snn.Leaky`` call; the membrane persists until ``reset_state()``."""

    def __init__(self, p: LIFParams):
        super().__init__()
        self.leaky = _leaky(p)
        self.in_scale = 1.0 / p.tau if p.decay_input else 1.0
        self.mem: Tensor | None = None

    def reset_state(self) -> None:
        self.mem = None

    def forward(self, x: Tensor) -> Tensor:
        if self.mem is None:
            self.mem = self.leaky.reset_mem()
        xt = x * self.in_scale if self.in_scale != 1.0 else x
        spk, self.mem = self.leaky(xt, self.mem)
        return spk
