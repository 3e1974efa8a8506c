"""SpikingJelly 0.0.0.0.14 ``LIFNode`` in multi-step mode: the paper's baselines, SJ-CuPy and SJ-PyTorch.

The paper's Table 1 compares temporal fusion with this release's two back ends: ``backend="cupy"``
(its fused CuPy kernel, a GPU only) and ``backend="torch"`` (a loop over T in PyTorch). This release
cannot be installed beside SpikingJelly 2.0, so these backends run in their own environment
(tfbench/backends/environments.py): this module is imported only in that worker process, after the
``numpy-aliases`` shim, where ``import spikingjelly`` is 0.0.0.0.14. Its neuron's maths is
SpikingJelly 2.0's (and tfbench's): the correctness check compares the spikes before timing.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.lif import LIFParams
from .base import require
from .spikingjelly import make_node

DIFFERENCES = "none for sigmoid/atan surrogates; no rect surrogate in SpikingJelly 0.0.0.0.14"


class SpikingJelly014LIF(nn.Module):
    """``LIFNode(step_mode='m', backend=...)`` (``IFNode`` for tau=inf), reset before every call."""

    def __init__(self, p: LIFParams, backend: str):
        super().__init__()
        require(p, (LIFParams,), "SpikingJelly 0.0.0.0.14")  # the paper's baselines are LIF; PLIF not mapped
        self.node = make_node(p, backend=backend)     # this worker's spikingjelly is 0.0.0.0.14

    def forward(self, x: Tensor) -> Tensor:
        self.node.reset()
        return self.node(x)


def make_cupy(p: LIFParams) -> SpikingJelly014LIF:
    """Its CuPy back end (the paper's SJ-CuPy)."""
    return SpikingJelly014LIF(p, "cupy")


def make_torch(p: LIFParams) -> SpikingJelly014LIF:
    """Its PyTorch back end (the paper's SJ-PyTorch)."""
    return SpikingJelly014LIF(p, "torch")


def implementation(device) -> str:
    return "cpu" if str(device).startswith("cpu") else ""
