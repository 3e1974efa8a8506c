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
from ..ops.lif.op import bytes_per_element
from .base import Backend
from .single_step import FusedLIFStep


def _make(p: LIFParams) -> LIF:
    return LIF(**p.as_kwargs(), save="input")


def _make_step(p: LIFParams) -> FusedLIFStep:
    return FusedLIFStep(p, op=functools.partial(lif, save="input"))


def _bytes(dtype: torch.dtype, steps: int, direction: str) -> float:
    return bytes_per_element(dtype, steps, direction, save="input")


BACKEND = Backend(
    name="tfbench-recompute",
    description=("tfbench's temporal-fusion LIF keeping x (not h) for backward: one forward and one backward "
                 "kernel, h recomputed from x and a membrane checkpoint every 8 steps"),
    make_layer=_make,
    make_step_layer=_make_step,
    bytes_per_element=_bytes,
)
