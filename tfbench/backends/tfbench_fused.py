"""tfbench's own fused ops (kernels/neurons.cu on GPUs, the same loops compiled for the host on CPUs)."""

from __future__ import annotations

from torch import nn

from ..ops.neurons import LIFParams, NeuronParams, PLIFParams
from .base import Backend, require


def fused_layer(p: NeuronParams, save: str = "h") -> nn.Module:
    """``tfbench.LIF`` or ``tfbench.PLIF`` (one w for the layer) for the description ``p``."""
    from ..ops import LIF, PLIF

    require(p, (LIFParams, PLIFParams), "tfbench")
    if isinstance(p, PLIFParams):
        return PLIF(**p.as_kwargs(), save=save)
    return LIF(**p.as_kwargs(), save=save)


BACKEND = Backend(
    name="tfbench",
    description="tfbench's temporal-fusion neurons (LIF, PLIF): one forward and one backward kernel for all T steps",
    make_layer=fused_layer,
)
