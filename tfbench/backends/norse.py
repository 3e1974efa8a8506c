"""Norse 1.1 ``LIFBoxCell`` (its LIF without a synaptic current), stepped in a loop over T.

Norse's ``LIFCell``/``LIF`` integrate the input into a synaptic current first, which delays it by one
step; ``LIFBoxCell`` drops that current and is the one that matches LIF_SPEC. How LIF_SPEC maps onto
``LIFBoxParameters`` with ``dt = 1``:

- one Euler step ``v + dt*tau_mem_inv*(I + v_leak - v)`` with ``tau_mem_inv = 1/tau``,
  ``v_leak = vr`` is exactly LIF_SPEC's ``decay_input`` update; without ``decay_input`` the adapter
  feeds ``I = tau * x``.
- an IF neuron (``tau = inf``) cannot be expressed: with ``tau_mem_inv = 0`` no input reaches the
  membrane. It raises :class:`Unsupported`.
- hard reset: ``reset_value``; soft reset: ``reset_subtract``; both keep the spike in the reset
  path's graph. ``detach_reset=True`` passes Norse a reset callable (``LIFBoxParameters.reset_method``
  takes any) that detaches the spike.
- surrogate: Norse has no sigmoid; its ``tanh`` surrogate ``1 - tanh(k*u)^2`` equals LIF_SPEC's
  sigmoid ``alpha*sig(alpha*u)*(1 - sig(alpha*u))`` with ``k = alpha/2`` only when ``alpha = 4``
  (otherwise it is ``4/alpha`` times it), so other alphas, ``atan`` and ``rect`` raise
  :class:`Unsupported`.
- Norse fires on ``v > v_th`` (LIF_SPEC: ``>=``): only an exact tie differs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops.lif import LIFParams
from .base import Unsupported, quiet_import

DIFFERENCES = ("fires on v > threshold (LIF_SPEC >=: exact ties only); sigmoid surrogate only at alpha=4 (via "
               "its tanh surrogate, k=2); no atan/rect surrogate; no IF neuron (tau=inf); without decay_input "
               "the input is scaled by tau")

# Norse's sigmoid stand-in, 1 - tanh(k u)^2 with k = alpha/2, is (4/alpha) x LIF_SPEC's sigmoid g(u):
# equal only at this alpha.
SIGMOID_ALPHA_EXACT = 4.0


def _reset_value_detached(z: Tensor, v: Tensor, reset: Tensor, th: Tensor) -> Tensor:
    z = z.detach()
    return (1 - z) * v + z * reset


def _reset_subtract_detached(z: Tensor, v: Tensor, reset: Tensor, th: Tensor) -> Tensor:
    return v - z.detach() * th


def _parameters(p: LIFParams):
    """The ``LIFBoxParameters`` of ``p``, and the scale the adapter applies to the input."""
    quiet_import("norse.torch")
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.functional.reset import reset_subtract, reset_value

    if math.isinf(p.tau):
        raise Unsupported("Norse's LIFBox integrates dt/tau*(I + v_leak - v): with tau=inf no input reaches the "
                          "membrane, so an IF neuron cannot be expressed")
    if p.surrogate != "sigmoid":
        raise Unsupported(f"Norse has no '{p.surrogate}' surrogate (its tanh surrogate matches only sigmoid, "
                          f"alpha={SIGMOID_ALPHA_EXACT:g})")
    if p.alpha != SIGMOID_ALPHA_EXACT:
        raise Unsupported(f"Norse's tanh surrogate equals the sigmoid surrogate only at alpha="
                          f"{SIGMOID_ALPHA_EXACT:g} (got alpha={p.alpha:g}: its gradient would be "
                          f"{SIGMOID_ALPHA_EXACT / p.alpha:g}x larger)")
    if p.hard_reset:
        reset = _reset_value_detached if p.detach_reset else reset_value
    else:
        reset = _reset_subtract_detached if p.detach_reset else reset_subtract
    params = LIFBoxParameters(tau_mem_inv=torch.as_tensor(1.0 / p.tau), v_leak=torch.as_tensor(p.rest),
                              v_th=torch.as_tensor(p.v_threshold), v_reset=torch.as_tensor(p.rest),
                              method="tanh", alpha=p.alpha / 2, reset_method=reset)
    return params, (1.0 if p.decay_input else p.tau)


class NorseLIF(nn.Module):
    """Multi-step ``[T, *] -> [T, *]``: ``LIFBoxCell`` called once per time step, state from rest."""

    def __init__(self, p: LIFParams):
        super().__init__()
        params, self.in_scale = _parameters(p)   # first: it imports Norse quietly
        from norse.torch import LIFBoxCell

        self.cell = LIFBoxCell(params, dt=1.0)

    def forward(self, x: Tensor) -> Tensor:
        state = None
        spikes = []
        for t in range(x.shape[0]):
            xt = x[t] * self.in_scale if self.in_scale != 1.0 else x[t]
            z, state = self.cell(xt, state)
            spikes.append(z)
        return torch.stack(spikes)


class NorseLIFStep(nn.Module):
    """Single-step ``[*] -> [*]``: one ``LIFBoxCell`` call; the state persists until ``reset_state()``."""

    def __init__(self, p: LIFParams):
        super().__init__()
        params, self.in_scale = _parameters(p)   # first: it imports Norse quietly
        from norse.torch import LIFBoxCell

        self.cell = LIFBoxCell(params, dt=1.0)
        self.state = None

    def reset_state(self) -> None:
        self.state = None

    def forward(self, x: Tensor) -> Tensor:
        xt = x * self.in_scale if self.in_scale != 1.0 else x
        z, self.state = self.cell(xt, self.state)
        return z
