"""LIF (and IF): the neuron's description, its named presets, and its charge for the reference.

docs/neurons.md ("LIF") is the maths; kernels/neurons/lif.cuh the device side. The names follow
SpikingJelly's ``LIFNode`` so that a user can switch between the two without re-deriving anything.
No torch import here: ``charge`` is written with tensor arithmetic only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from .base import SpikeAndReset, check_number

NAME = "lif"  # the op's name for it (kernels/neurons/all.cuh)


@dataclass(frozen=True)
class LIFParams(SpikeAndReset):
    """One LIF neuron configuration; ``validate()`` checks it and names any bad value."""

    tau: float = 2.0
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0

    name: ClassVar[str] = NAME
    learned: ClassVar[tuple[str, ...]] = ()  # no learnable tensor

    def validate(self) -> "LIFParams":
        """The parameters normalised (floats, lower-case surrogate); TypeError/ValueError naming a bad one."""
        common = self._checked_common()
        tau = check_number("tau", self.tau, above=1.0, allow_inf=True, hint=" (or float('inf') for an IF neuron)")
        if math.isinf(tau) and common["decay_input"]:
            raise ValueError("tau=inf with decay_input=True ignores the input entirely (x / tau = 0); "
                             "an IF neuron is tau=float('inf'), decay_input=False")
        return replace(self, tau=tau, **common)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``tfbench.lif`` / ``tfbench.LIF`` (and of the record text)."""
        return asdict(self)

    def kernel_constants(self) -> list[float]:
        """The op's constants, in kernels/neurons/lif.cuh's order: 1/tau, v_threshold, vr, alpha."""
        return [1.0 / self.tau, float(self.v_threshold), self.rest, float(self.alpha)]

    @classmethod
    def from_kernel(cls, constants: list[float], switches: list[int]) -> "LIFParams":
        """The inverse of (kernel_constants, kernel_switches): what the no-compiler fallback runs."""
        inv_tau, *tail = constants
        return cls(tau=math.inf if inv_tau == 0 else 1.0 / inv_tau, **cls.common_from_switches(tail, switches))

    def charge(self, v, x, learned=()):
        """h[t] from v[t-1] and x[t] (tensors), docs/neurons.md "LIF": the reference's expression."""
        vr = self.rest
        if self.decay_input:
            return v + (x - (v - vr)) / self.tau
        return v - (v - vr) / self.tau + x


# Named neurons. "paper": the temporal-fusion paper's v[t] = 0.2 v[t-1] (1 - y[t-1]) + x[t],
# threshold 0.3 (docs/neurons.md, "The paper's preset"), with the sigmoid surrogate its text names;
# its released kernel used surrogate="rect", alpha=1.0.
PRESETS: dict[str, LIFParams] = {
    "spikingjelly": LIFParams(),
    "paper": LIFParams(tau=1.25, decay_input=False, v_threshold=0.3, v_reset=0.0, detach_reset=False,
                       surrogate="sigmoid", alpha=4.0),
    "paper-rect": LIFParams(tau=1.25, decay_input=False, v_threshold=0.3, v_reset=0.0, detach_reset=False,
                            surrogate="rect", alpha=1.0),
    "if": LIFParams(tau=math.inf, decay_input=False),
}


def preset(name: str) -> LIFParams:
    """The named preset; raises ValueError listing the known names."""
    try:
        return PRESETS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown LIF preset {name!r}; known: {', '.join(PRESETS)}") from None
