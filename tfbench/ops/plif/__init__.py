"""PLIF's public names in one place: ``PLIF``, ``plif``, ``plif_reference``, ``PLIFParams``, ``PRESETS``, ``preset``.

The description comes without torch; the op, the module and the reference are loaded on first use.
"""

from __future__ import annotations

import importlib

from ..neurons.plif import PRESETS, PLIFParams, preset

_LAZY = {"PLIF": "tfbench.ops.modules", "plif": "tfbench.ops.functional", "plif_reference": "tfbench.ops.reference"}
__all__ = ["PLIF", "PLIFParams", "PRESETS", "plif", "plif_reference", "preset"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfbench.ops.plif' has no attribute {name!r}")
