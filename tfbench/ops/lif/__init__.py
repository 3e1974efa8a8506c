"""The fused LIF op: ``lif()`` / ``LIF``, its CPU and CUDA implementations, and the reference.

Files (the same in every op folder): params.py (the neuron, presets), reference.py (the plain loop
every implementation is tested against), cpu.py and cuda.py (the host functions), op.py (the
PyTorch op, autograd, the public function), module.py (the nn.Module).
"""

from .module import LIF
from .op import lif
from .params import PRESETS, SURROGATES, LIFParams, preset
from .reference import lif_reference

__all__ = ["LIF", "lif", "lif_reference", "LIFParams", "PRESETS", "SURROGATES", "preset"]
