"""Single-step layers (``--step-mode single``) for the tfbench, torch and SpikingJelly backends.

In single-step mode the whole network runs one time step at a time, as snnTorch's and Norse's
tutorials train; each neuron keeps its membrane between calls until ``reset_state()``. The snnTorch
and Norse adapters carry their own single-step layers; this module gives the other three theirs,
each built from the same op or class as its multi-step layer (the registry names them).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.lif import LIFParams, lif, lif_reference
from .spikingjelly import SpikingJellyLIF, _set_implementation


class FusedLIFStep(nn.Module):
    """``tfbench.lif`` on one step (``[1, *]``) with the membrane carried as ``v0`` between calls."""

    def __init__(self, p: LIFParams, op=lif):
        super().__init__()
        self.p = p
        self.op = op
        self.v: Tensor | None = None

    def reset_state(self) -> None:
        self.v = None

    def forward(self, x: Tensor) -> Tensor:
        s, self.v = self.op(x.unsqueeze(0), self.v, **self.p.as_kwargs())
        return s.squeeze(0)


class TorchLoopLIFStep(FusedLIFStep):
    """LIF_SPEC's plain-PyTorch step (``lif_reference`` on ``[1, *]``), membrane carried between calls."""

    def __init__(self, p: LIFParams):
        super().__init__(p, op=lif_reference)


class SpikingJellyLIFStep(nn.Module):
    """SpikingJelly's ``LIFNode`` in single-step mode (``step_mode='s'``); its own state, reset on demand."""

    def __init__(self, p: LIFParams, requested: str):
        super().__init__()
        node = SpikingJellyLIF(p, requested).node   # same mapping of the neuron as the multi-step layer
        node.step_mode = "s"
        self.node = node
        self.requested = requested

    def reset_state(self) -> None:
        self.node.reset()

    def forward(self, x: Tensor) -> Tensor:
        _set_implementation(self.requested)
        return self.node(x)


def spikingjelly_auto(p: LIFParams) -> SpikingJellyLIFStep:
    return SpikingJellyLIFStep(p, "auto")


def spikingjelly_torch(p: LIFParams) -> SpikingJellyLIFStep:
    return SpikingJellyLIFStep(p, "torch")
