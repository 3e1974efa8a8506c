"""``LIF``: the fused op as an ``nn.Module`` (multi-step: input and output are ``[T, *]``)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .op import apply, check_save
from .params import LIFParams, preset


class LIF(nn.Module):
    """A LIF layer over all T steps at once; keywords as ``tfbench.lif`` (SpikingJelly's ``LIFNode``).

    ``forward(x, v0=None)`` takes ``[T, *]`` and returns spikes of the same shape and dtype; with
    ``return_state=True`` it returns ``(spikes, v_T)``. The module keeps no state between calls.
    ``save`` is what backward keeps, as for ``tfbench.lif``: ``"h"`` (the membrane) or ``"input"``
    (x and membrane checkpoints; h recomputed in backward, fewer bytes moved).
    """

    def __init__(self, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: float | None = 0.0, detach_reset: bool = False, surrogate: str = "sigmoid",
                 alpha: float = 4.0, save: str = "h"):
        super().__init__()
        self.params = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha).validate()
        self.save = check_save(save)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LIF":
        """A layer of a named neuron (``tfbench.PRESETS``: 'paper', 'spikingjelly', 'if', ...)."""
        return cls(**{**preset(name).as_kwargs(), **overrides})

    def forward(self, x: Tensor, v0: Tensor | None = None, return_state: bool = False):
        s, v_last = apply(x, v0, self.params, want_v_last=return_state, save=self.save)
        return (s, v_last) if return_state else s

    def extra_repr(self) -> str:
        p = self.params
        tau = "inf" if math.isinf(p.tau) else f"{p.tau:g}"
        return (f"tau={tau}, decay_input={p.decay_input}, v_threshold={p.v_threshold:g}, v_reset={p.v_reset}, "
                f"detach_reset={p.detach_reset}, surrogate={p.surrogate}, alpha={p.alpha:g}"
                + (f", save={self.save!r}" if self.save != "h" else ""))
