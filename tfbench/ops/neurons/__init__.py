"""The fused neurons' descriptions: one module each, importable without torch.

A description is a frozen dataclass of the neuron's parameters with ``validate()``,
``as_kwargs()``, ``kernel_constants()``/``kernel_switches()`` (what the op passes to its kernel,
kernels/neurons/<name>.cuh), ``charge()`` (the reference's maths) and ``learned`` (the names of its
learnable tensors). ``DESCRIPTIONS`` maps the op's neuron names to the dataclasses.
"""

from __future__ import annotations

from .base import SAVES, SURROGATES, check_save
from .lif import PRESETS, LIFParams, preset
from .plif import PRESETS as PLIF_PRESETS
from .plif import PLIFParams
from .plif import preset as plif_preset

NeuronParams = LIFParams | PLIFParams

DESCRIPTIONS: dict[str, type] = {LIFParams.name: LIFParams, PLIFParams.name: PLIFParams}


def describe(name: str) -> type:
    """The description class of the op's neuron ``name``; ValueError listing the known ones."""
    try:
        return DESCRIPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown neuron {name!r}; known: {', '.join(DESCRIPTIONS)}") from None


__all__ = ["DESCRIPTIONS", "LIFParams", "NeuronParams", "PLIFParams", "PLIF_PRESETS", "PRESETS", "SAVES",
           "SURROGATES", "check_save", "describe", "plif_preset", "preset"]
