"""The fused-neuron ops: one kernel each way for all T steps of a spiking layer.

Layout (docs/neurons.md is the maths; README "Architecture" draws it):

    neurons/      the neurons' descriptions, one file each (lif.py, plif.py): parameters, checks,
                  presets, the charge the reference computes. No torch: the CLI reads them.
    reference.py  the plain loop every implementation is tested against
    library.py    the two ops, registered once with PyTorch (schemas, fake implementations)
    build.py      builds kernels/tfbench_ops.cpp (the CPU, CUDA and Autograd implementations)
    jit.py        NVRTC and the driver API: the CUDA kernels (kernels/neurons.cu), cached on disk
    fallback.py   the ops over the reference where no C++ compiler is found
    functional.py lif(), plif(), fused(); bytes_per_element
    modules.py    LIF, PLIF (nn.Module)
    lif/          LIF's public names in one place (``from tfbench.ops.lif import LIF, lif, PRESETS``)

Names are loaded on first use (PEP 562): importing this package, or a neuron's description, does
not import torch. ``tfbench.ops.lif`` is that package, not the function: the function is
``tfbench.lif`` (``tfbench.ops.functional.lif``, ``tfbench.ops.lif.lif``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "LIF": "tfbench.ops.modules", "PLIF": "tfbench.ops.modules",
    "plif": "tfbench.ops.functional", "fused": "tfbench.ops.functional",
    "bytes_per_element": "tfbench.ops.functional",
    "lif_reference": "tfbench.ops.reference", "plif_reference": "tfbench.ops.reference",
    "neuron_reference": "tfbench.ops.reference",
    "LIFParams": "tfbench.ops.neurons", "PLIFParams": "tfbench.ops.neurons", "PRESETS": "tfbench.ops.neurons",
    "PLIF_PRESETS": "tfbench.ops.neurons", "SURROGATES": "tfbench.ops.neurons", "preset": "tfbench.ops.neurons",
    "plif_preset": "tfbench.ops.neurons",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfbench.ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | {"neurons", "reference", "library", "build", "jit", "fallback", "functional",
                                  "modules", "lif"})
