"""tfbench's own fused ops, LIF and PLIF (kernels/neurons.cu on GPUs, the same loops compiled for the
host on CPUs)."""

from __future__ import annotations

from torch import nn

from ..ops.neurons import LIFParams, NeuronParams, PLIFParams
from .base import require

DIFFERENCES = ""


def make_layer(p: NeuronParams, save: str = "h") -> nn.Module:
    """``tfbench.LIF`` or ``tfbench.PLIF`` (one w for the layer, from init_tau) for the description ``p``."""
    from ..ops import LIF, PLIF

    require(p, (LIFParams, PLIFParams), "tfbench")
    if isinstance(p, PLIFParams):
        return PLIF(**p.as_kwargs(), save=save)
    return LIF(**p.as_kwargs(), save=save)


def implementation(device) -> str:
    """The fused op runs its CUDA kernels on a GPU and the same loops compiled for the host elsewhere."""
    return "cuda kernel" if str(device).startswith("cuda") else "cpu loop"
