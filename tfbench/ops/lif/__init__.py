"""LIF's public names in one place: ``LIF``, ``lif``, ``lif_reference``, ``LIFParams``, ``PRESETS``, ``preset``.

The description (``LIFParams``, ``PRESETS``, ``preset``, ``SURROGATES``) comes without torch; the
op, the module and the reference are loaded on first use.
"""

from __future__ import annotations

import importlib

from ..neurons import SURROGATES
from ..neurons.lif import PRESETS, LIFParams, preset

_LAZY = {"LIF": "tfbench.ops.modules", "lif": "tfbench.ops.functional", "lif_reference": "tfbench.ops.reference"}
__all__ = ["LIF", "LIFParams", "PRESETS", "SURROGATES", "lif", "lif_reference", "preset"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfbench.ops.lif' has no attribute {name!r}")
