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
from .base import Unsupported

DIFFERENCES = "none for sigmoid/atan surrogates; no rect surrogate in SpikingJelly"


def _set_implementation(requested: str) -> None:
    from spikingjelly._ops import lif as sj_lif

    selection = sj_lif._selection
    if selection._requested != requested:
        with selection._lock:
            selection._requested = requested
            selection._selections.clear()
            selection._compiled_selections.clear()


def _forget_fallbacks() -> None:
    """Drop SpikingJelly's record of earlier torch-reference fallbacks, so that ``implementation()``
    reports what this layer's runs used, not what an earlier run in the process did."""
    from spikingjelly._ops import lif as sj_lif

    selection = sj_lif._selection
    with selection._lock:
        for key in [k for k in selection._selections if isinstance(k, tuple)]:
            del selection._selections[key]


def implementation(device) -> str:
    """The implementation SpikingJelly's LIF ran on ``device``: 'triton', 'cuda', 'torch' or 'cpu'.

    Where its automatic choice fell back to its torch reference for some calls (SpikingJelly 2.0.0
    does so for bf16/fp16 autocast), the fallback and its reason are appended.
    """
    import torch
    from spikingjelly._ops import lif as sj_lif

    device = torch.device(device)
    if device.type != "cuda":
        return "cpu"
    selection = sj_lif._selection
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = str(selection.diagnostics(device)["implementation"])
    fallbacks = [key[1] for key in list(selection._selections) if isinstance(key, tuple) and key[0] == index]
    if fallbacks:
        name += "; torch-reference fallback: " + "; ".join(fallbacks)
    return name


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
        _forget_fallbacks()

    def forward(self, x: Tensor) -> Tensor:
        _set_implementation(self.requested)
        self.node.reset()
        try:
            return self.node(x)
        except RuntimeError as exc:
            # SpikingJelly 2.0.0 refuses an explicit implementation for an input it would only run on
            # its automatic torch-reference fallback (e.g. bf16 autocast with the torch path requested)
            if "cannot run this execution profile" in str(exc):
                raise Unsupported(f"SpikingJelly refuses SJ_LIF_CUDA_IMPLEMENTATION={self.requested} here: "
                                  f"{str(exc).split(': ', 1)[-1]}") from exc
            raise


def make_auto(p: LIFParams) -> SpikingJellyLIF:
    """Its automatically selected GPU implementation (Triton on a GPU without a source build)."""
    return SpikingJellyLIF(p, "auto")


def make_torch(p: LIFParams) -> SpikingJellyLIF:
    """Its pure-torch path."""
    return SpikingJellyLIF(p, "torch")
