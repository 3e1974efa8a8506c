"""tfbench's own fused op (the CUDA kernel on GPUs, the CPU path on CPUs)."""

from __future__ import annotations

from ..ops.lif import LIF, LIFParams

DIFFERENCES = ""


def make_layer(p: LIFParams) -> LIF:
    return LIF(**p.as_kwargs())


def implementation(device) -> str:
    """The fused op runs its CUDA kernel on a GPU and its CPU path elsewhere."""
    return "cuda kernel" if str(device).startswith("cuda") else "cpu loop"
