"""tfbench: temporal-fusion LIF kernels for spiking networks, and a benchmark harness for SNN libraries.

    s, v_T = tfbench.lif(x)                 # x: [T, *]; all T steps in one fused kernel
    layer = tfbench.LIF.from_preset("paper")
"""

from .ops.lif import LIF, PRESETS, LIFParams, lif, lif_reference, preset

__version__ = "0.1.0"
__all__ = ["LIF", "PRESETS", "LIFParams", "lif", "lif_reference", "preset", "__version__"]
