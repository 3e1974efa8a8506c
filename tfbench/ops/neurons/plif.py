"""PLIF: the parametric LIF neuron (Fang et al. 2021): LIF whose membrane time constant is learned.

SpikingJelly's ``ParametricLIFNode`` exactly: 1/tau = sigmoid(w), with w a learnable tensor
initialised to -log(init_tau - 1) (so that 1/tau starts at 1/init_tau), one per layer (as
SpikingJelly) or one per channel of a ``[T, B, C, ...]`` input. docs/neurons.md ("PLIF") is the
maths; kernels/neurons/plif.cuh the device side. No torch import here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from .base import SpikeAndReset, check_number

NAME = "plif"


@dataclass(frozen=True)
class PLIFParams(SpikeAndReset):
    """One PLIF neuron configuration (w's starting value comes from ``init_tau``)."""

    init_tau: float = 2.0
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0

    name: ClassVar[str] = NAME
    learned: ClassVar[tuple[str, ...]] = ("w",)  # the learnable tensor: 1/tau = sigmoid(w)

    def validate(self) -> "PLIFParams":
        """The parameters normalised; TypeError/ValueError naming a bad one."""
        common = self._checked_common()
        init_tau = check_number("init_tau", self.init_tau, above=1.0,
                                hint=" (finite: 1/tau = sigmoid(w) with w = -log(init_tau - 1))")
        return replace(self, init_tau=init_tau, **common)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``tfbench.PLIF`` (and of the record text)."""
        return asdict(self)

    @property
    def tau(self) -> float:
        """The starting membrane time constant (what the layer benchmark scales its input by)."""
        return float(self.init_tau)

    def init_w(self) -> float:
        """w's starting value: -log(init_tau - 1), SpikingJelly's, so sigmoid(w) = 1/init_tau."""
        return -math.log(float(self.init_tau) - 1.0)

    def kernel_constants(self) -> list[float]:
        """The op's constants, in kernels/neurons/plif.cuh's order: v_threshold, vr, alpha."""
        return [float(self.v_threshold), self.rest, float(self.alpha)]

    @classmethod
    def from_kernel(cls, constants: list[float], switches: list[int]) -> "PLIFParams":
        return cls(**cls.common_from_switches(list(constants), switches))

    def charge(self, v, x, learned):
        """h[t] from v[t-1], x[t] and (w,): SpikingJelly's expression, k = sigmoid(w) broadcast over
        x[t]'s channel dimension (dim 1 of ``[B, C, ...]``) when w has one value per channel."""
        (w,) = learned
        k = w.sigmoid()
        if k.dim() == 1 and k.numel() > 1:
            k = k.reshape(k.shape[0], *([1] * (x.dim() - 2)))
        vr = self.rest
        if self.decay_input:
            return v + (x - (v - vr)) * k
        return v - (v - vr) * k + x


# "paper": the paper's neuron (docs/neurons.md, "The paper's preset") with its tau made learnable:
# init_tau 1.25, so 1/tau starts at 0.8 (k = 0.2 leak), threshold 0.3, hard reset to 0.
PRESETS: dict[str, PLIFParams] = {
    "spikingjelly": PLIFParams(),
    "paper": PLIFParams(init_tau=1.25, decay_input=False, v_threshold=0.3, v_reset=0.0, detach_reset=False,
                        surrogate="sigmoid", alpha=4.0),
}


def preset(name: str) -> PLIFParams:
    """The named PLIF preset; raises ValueError listing the known names."""
    try:
        return PRESETS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown PLIF preset {name!r}; known: {', '.join(PRESETS)}") from None
