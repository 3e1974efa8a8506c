"""tfbench: temporal-fusion LIF kernels for spiking networks, and a benchmark harness for SNN libraries.

    s, v_T = tfbench.lif(x)                 # x: [T, *]; all T steps in one fused kernel
    layer = tfbench.LIF.from_preset("paper")
    report = tfbench.accelerate(model)      # a SpikingJelly model's neurons fused in place

The op's names are loaded on first use (PEP 562), so that ``import tfbench`` (and the command
line's ``--help``) does not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
# public name -> the module that defines it
_LAZY = {name: "tfbench.ops.lif" for name in ("LIF", "PRESETS", "LIFParams", "lif", "lif_reference", "preset")}
_LAZY["accelerate"] = "tfbench.integrations.spikingjelly"
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
