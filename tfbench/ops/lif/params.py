"""The LIF neuron's parameters (../shared/LIF_SPEC.md), their validation, and named presets.

The names follow SpikingJelly's ``LIFNode`` so that a user can switch between the two libraries
without re-deriving anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

SURROGATES: tuple[str, ...] = ("sigmoid", "atan", "rect")


@dataclass(frozen=True)
class LIFParams:
    """One LIF neuron configuration; ``validate()`` checks it and names any bad value."""

    tau: float = 2.0
    decay_input: bool = True
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0

    def validate(self) -> "LIFParams":
        """Return the parameters with the surrogate name normalised; raise ValueError if any is bad."""
        tau = float(self.tau)
        if math.isnan(tau) or tau <= 1.0:
            raise ValueError(f"tau must be > 1 (or float('inf') for an IF neuron), got {self.tau!r}")
        if math.isinf(tau) and self.decay_input:
            raise ValueError("tau=inf with decay_input=True ignores the input entirely (x / tau = 0); "
                             "an IF neuron is tau=float('inf'), decay_input=False")
        if not math.isfinite(float(self.v_threshold)):
            raise ValueError(f"v_threshold must be a finite number, got {self.v_threshold!r}")
        if self.v_reset is not None and not math.isfinite(float(self.v_reset)):
            raise ValueError(f"v_reset must be a finite number or None (soft reset), got {self.v_reset!r}")
        name = str(self.surrogate).lower()
        if name not in SURROGATES:
            raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        alpha = float(self.alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        return replace(self, tau=tau, v_threshold=float(self.v_threshold), alpha=alpha, surrogate=name,
                       v_reset=None if self.v_reset is None else float(self.v_reset),
                       decay_input=bool(self.decay_input), detach_reset=bool(self.detach_reset))

    @property
    def hard_reset(self) -> bool:
        return self.v_reset is not None

    @property
    def rest(self) -> float:
        """``vr`` of LIF_SPEC: the reset value for hard reset, 0 for soft reset."""
        return 0.0 if self.v_reset is None else float(self.v_reset)

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)


# Named neurons. "paper": the temporal-fusion paper's v[t] = 0.2 v[t-1] (1 - y[t-1]) + x[t],
# threshold 0.3 (LIF_SPEC, "The paper's preset"), with the sigmoid surrogate its text names;
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
    except KeyError:
        raise ValueError(f"unknown LIF preset {name!r}; known: {', '.join(PRESETS)}") from None
