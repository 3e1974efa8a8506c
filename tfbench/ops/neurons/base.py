"""What every fused neuron's description shares: argument checks, the spike/reset/surrogate switches.

Imports nothing heavy (no torch): the command line reads neuron descriptions to build its options.
A neuron's description (lif.py, plif.py) is a frozen dataclass of its parameters plus a few
methods the op and the reference use; docs/neurons.md has the maths, kernels/neurons/ the device
side. Every bad value raises one TypeError or ValueError that names the argument, the value and
what is valid.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

SURROGATES: tuple[str, ...] = ("sigmoid", "atan", "rect")  # the kernels' surrogate codes 0, 1, 2
SAVES: tuple[str, ...] = ("h", "input")  # what the op keeps for backward: the membrane h, or x (h recomputed)


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; TypeError unless it is True or False (numpy's bools too)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {_shown(value)}")


def check_number(name: str, value: Any, *, above: float | None = None, allow_inf: bool = False,
                 hint: str = "") -> float:
    """``value`` as a float. TypeError unless it is a real number (not a bool, list or tensor);
    ValueError if it is NaN, infinite (unless ``allow_inf``) or not > ``above``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        what = f"a number > {above:g}" if above is not None else "a finite number"
        raise TypeError(f"{name} must be {what}{hint}, got {_shown(value)}")
    f = float(value)
    bad = math.isnan(f) or (math.isinf(f) and not (allow_inf and f > 0)) or (above is not None and not f > above)
    if bad:
        what = f"a number > {above:g}" if above is not None else "a finite number"
        raise ValueError(f"{name} must be {what}{hint}, got {value!r}")
    return f


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` lower-cased if it is one of ``choices``; TypeError/ValueError listing them otherwise."""
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {listed}, got {_shown(value)}")
    if value.lower() not in choices:
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value.lower()


def check_save(save: Any) -> str:
    """``save`` if it is one of SAVES ('h', 'input'); TypeError/ValueError naming the choices otherwise."""
    if not isinstance(save, str) or save not in SAVES:
        listed = ", ".join(repr(v) for v in SAVES)
        kind = ValueError if isinstance(save, str) or save is None else TypeError
        raise kind(f"save must be one of {listed}, got {save!r}")
    return save


class SpikeAndReset:
    """Mixin for a neuron dataclass with the fields ``v_threshold``, ``v_reset``, ``detach_reset``,
    ``surrogate``, ``alpha`` and ``decay_input`` (docs/neurons.md: "What every neuron shares")."""

    def _checked_common(self) -> dict[str, Any]:
        reset = self.v_reset  # type: ignore[attr-defined]
        return dict(
            decay_input=check_bool("decay_input", self.decay_input),  # type: ignore[attr-defined]
            v_threshold=check_number("v_threshold", self.v_threshold),  # type: ignore[attr-defined]
            v_reset=None if reset is None else check_number("v_reset", reset, hint=" or None (soft reset)"),
            detach_reset=check_bool("detach_reset", self.detach_reset),  # type: ignore[attr-defined]
            surrogate=check_choice("surrogate", self.surrogate, SURROGATES),  # type: ignore[attr-defined]
            alpha=check_number("alpha", self.alpha, above=0.0),  # type: ignore[attr-defined]
        )

    @property
    def hard_reset(self) -> bool:
        return self.v_reset is not None  # type: ignore[attr-defined]

    @property
    def rest(self) -> float:
        """``vr`` of docs/neurons.md: the reset value for a hard reset, 0 for a soft reset."""
        return 0.0 if self.v_reset is None else float(self.v_reset)  # type: ignore[attr-defined]

    def kernel_switches(self) -> list[int]:
        """The switches every neuron's kernel takes: decay_input, hard reset, detach_reset, surrogate code."""
        return [int(self.decay_input), int(self.hard_reset), int(self.detach_reset),  # type: ignore[attr-defined]
                SURROGATES.index(self.surrogate)]  # type: ignore[attr-defined]

    @staticmethod
    def common_from_switches(constants_tail: list[float], switches: list[int]) -> dict[str, Any]:
        """The shared fields back from the op's arguments: ``constants_tail`` = (v_threshold, rest, alpha)."""
        v_threshold, rest, alpha = constants_tail
        return dict(decay_input=bool(switches[0]), v_threshold=v_threshold,
                    v_reset=rest if switches[1] else None, detach_reset=bool(switches[2]),
                    surrogate=SURROGATES[switches[3]], alpha=alpha)
