"""tfbench's fused op keeping the input instead of the membrane (``LIF(save="input")``).

The same kernels' maths as the ``tfbench`` backend and the same spikes; backward keeps x and a
float32 membrane every 8 steps and recomputes h, so fewer bytes cross memory (at most 20 + 8/8
B/element in fp32 instead of 24; 10 + 8/8 instead of 12 in bf16/fp16): its floor is computed from
its own byte count (``bytes_per_element``).
"""

from __future__ import annotations

import functools

import torch

from ..ops.lif import LIF, LIFParams, lif
from ..ops.lif.op import bytes_per_element as op_bytes_per_element
from .single_step import FusedLIFStep
from .tfbench_fused import implementation  # noqa: F401 - the same op: the same implementations

DIFFERENCES = ""


def make_layer(p: LIFParams) -> LIF:
    return LIF(**p.as_kwargs(), save="input")


def make_step_layer(p: LIFParams) -> FusedLIFStep:
    return FusedLIFStep(p, op=functools.partial(lif, save="input"))


def bytes_per_element(dtype: torch.dtype, steps: int, direction: str) -> float:
    """Its floor's bytes per element: x, s and checkpoints forward; gs, x, gx and checkpoints backward."""
    return op_bytes_per_element(dtype, steps, direction, save="input")
