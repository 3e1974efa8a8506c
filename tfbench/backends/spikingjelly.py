"""SpikingJelly 2.0 ``LIFNode`` in multi-step mode: its own fused GPU kernel, or its pure-torch path.

SpikingJelly 2.0 chooses the GPU implementation from ``SJ_LIF_CUDA_IMPLEMENTATION``
(auto|cuda|triton|torch), read once at import. The ``spikingjelly`` backend uses its automatic
choice (on a GPU without a source build of its native kernels, that is its Triton kernel); the
``spikingjelly-torch`` backend asks for its torch path. Both set the same switch SpikingJelly reads,
``spikingjelly._ops.lif._selection``, so that both run in one process on the same inputs; which
implementation ran is recorded (``implementation()``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..ops.lif import LIFParams
from .base import Backend, Unsupported

DIFFERENCES = "none for sigmoid/atan surrogates; no rect surrogate in SpikingJelly"


def _set_implementation(requested: str) -> None:
    from spikingjelly._ops import lif as sj_lif

    selection = sj_lif._selection
    if selection._requested != requested:
        with selection._lock:
            selection._requested = requested
            selection._selections.clear()
            selection._compiled_selections.clear()


def implementation(device) -> str:
    """The implementation SpikingJelly's LIF selected on ``device`` ('triton', 'cuda', 'torch', 'cpu')."""
    import torch
    from spikingjelly._ops import lif as sj_lif

    device = torch.device(device)
    if device.type != "cuda":
        return "cpu"
    return str(sj_lif._selection.diagnostics(device)["implementation"])


class SpikingJellyLIF(nn.Module):
    """``LIFNode(step_mode='m')``, reset before every call so that each batch starts at rest."""

    def __init__(self, p: LIFParams, requested: str):
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate

        if p.surrogate == "sigmoid":
            sg = surrogate.Sigmoid(alpha=p.alpha)
        elif p.surrogate == "atan":
            sg = surrogate.ATan(alpha=p.alpha)
        else:
            raise Unsupported(f"SpikingJelly has no '{p.surrogate}' surrogate")
        if math.isinf(p.tau):
            self.node = neuron.IFNode(v_threshold=p.v_threshold, v_reset=p.v_reset, surrogate_function=sg,
                                      detach_reset=p.detach_reset, step_mode="m")
        else:
            self.node = neuron.LIFNode(tau=p.tau, decay_input=p.decay_input, v_threshold=p.v_threshold,
                                       v_reset=p.v_reset, surrogate_function=sg,
                                       detach_reset=p.detach_reset, step_mode="m")
        self.requested = requested

    def forward(self, x: Tensor) -> Tensor:
        _set_implementation(self.requested)
        self.node.reset()
        return self.node(x)


def _make(requested: str):
    return lambda p: SpikingJellyLIF(p, requested)


BACKEND = Backend(
    name="spikingjelly",
    description="SpikingJelly 2.0 LIFNode, multi-step, its own fused GPU kernel (automatic selection)",
    make_layer=_make("auto"),
    distribution="spikingjelly",
    differences=DIFFERENCES,
)

BACKEND_TORCH = Backend(
    name="spikingjelly-torch",
    description="SpikingJelly 2.0 LIFNode, multi-step, its pure-torch path (SJ_LIF_CUDA_IMPLEMENTATION=torch)",
    make_layer=_make("torch"),
    distribution="spikingjelly",
    differences=DIFFERENCES,
)
