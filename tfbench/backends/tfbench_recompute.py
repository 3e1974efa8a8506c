"""tfbench's fused ops keeping the input instead of the membrane (``save="input"``), LIF and PLIF.

The same kernels' maths as the ``tfbench`` backend and the same spikes; backward keeps x and a
float32 membrane every 8 steps and recomputes h, so fewer bytes cross memory (at most 20 + 8/8
B/element in fp32 instead of 24; 10 + 8/8 instead of 12 in bf16/fp16): its floor is computed from
its own byte count (``bytes_per_element``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.neurons import NeuronParams
from .single_step import FusedStep
from .tfbench_fused import implementation  # noqa: F401 - the same op: the same implementations
from .tfbench_fused import make_layer as _fused

DIFFERENCES = ""


def make_layer(p: NeuronParams) -> nn.Module:
    return _fused(p, save="input")


def make_step_layer(p: NeuronParams) -> FusedStep:
    return FusedStep(_fused(p, save="input"))


def bytes_per_element(dtype: torch.dtype, steps: int, direction: str) -> float:
    """Its floor's bytes per element: x, s and checkpoints forward; gs, x, gx and checkpoints backward."""
    from ..ops.functional import bytes_per_element as op_bytes_per_element

    return op_bytes_per_element(dtype, steps, direction, save="input")
