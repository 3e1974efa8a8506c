"""tfbench's own fused op (kernels/lif.cu on GPUs, the vectorised loop on CPUs)."""

from __future__ import annotations

from ..ops.lif import LIF, LIFParams
from .base import Backend


def _make(p: LIFParams) -> LIF:
    return LIF(**p.as_kwargs())


BACKEND = Backend(
    name="tfbench",
    description="tfbench's temporal-fusion LIF: one forward and one backward kernel for all T steps",
    make_layer=_make,
)
