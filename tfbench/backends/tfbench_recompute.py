"""tfbench's fused ops keeping the input instead of the membrane (``save="input"``).

The same kernels' maths as the ``tfbench`` backend and the same spikes; backward keeps x and a
float32 membrane every 8 steps and recomputes h, so fewer bytes cross memory (at most 20 + 8/8
B/element in fp32 instead of 24; 10 + 8/8 instead of 12 in bf16/fp16): its floor is computed from
its own byte count (``bytes_per_element``). LIF and PLIF alike.
"""

from __future__ import annotations

import functools

import torch

from .base import Backend
from .single_step import FusedStep
from .tfbench_fused import fused_layer


def _bytes(dtype: torch.dtype, steps: int, direction: str) -> float:
    from ..ops.functional import bytes_per_element

    return bytes_per_element(dtype, steps, direction, save="input")


BACKEND = Backend(
    name="tfbench-recompute",
    description=("tfbench's temporal-fusion neurons keeping x (not h) for backward: one forward and one backward "
                 "kernel, h recomputed from x and a membrane checkpoint every 8 steps"),
    make_layer=functools.partial(fused_layer, save="input"),
    make_step_layer=lambda p: FusedStep(fused_layer(p, save="input")),
    bytes_per_element=_bytes,
)
