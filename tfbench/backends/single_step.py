"""Single-step layers (``--step-mode single``) for the tfbench, torch and SpikingJelly backends.

In single-step mode the whole network runs one time step at a time, as snnTorch's and Norse's
tutorials train; each neuron keeps its membrane between calls until ``reset_state()``. The snnTorch
and Norse adapters carry their own single-step layers; this module gives the other three theirs,
each built from the same op or class as its multi-step layer (the registry names them), for LIF and
PLIF alike.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.neurons import NeuronParams
from .spikingjelly import SpikingJellyLIF, _set_implementation


class FusedStep(nn.Module):
    """A fused multi-step layer (``tfbench.LIF``/``PLIF``) on one step (``[1, *]``), the membrane
    carried as ``v0`` between calls (its parameters, PLIF's w, are the wrapped layer's)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.v: Tensor | None = None

    def reset_state(self) -> None:
        self.v = None

    def forward(self, x: Tensor) -> Tensor:
        s, self.v = self.layer(x.unsqueeze(0), self.v, return_state=True)
        return s.squeeze(0)


def FusedLIFStep(p: NeuronParams) -> FusedStep:  # noqa: N802 - the registry's name for it
    """The ``tfbench`` backend's single-step layer."""
    from .tfbench_fused import make_layer

    return FusedStep(make_layer(p))


class TorchLoopLIFStep(nn.Module):
    """The reference's step (``neuron_reference`` on ``[1, *]``), membrane carried between calls."""

    def __init__(self, p: NeuronParams):
        super().__init__()
        from .torch_loop import TorchLoopLIF

        self.loop = TorchLoopLIF(p)
        self.v: Tensor | None = None

    def reset_state(self) -> None:
        self.v = None

    def forward(self, x: Tensor) -> Tensor:
        from ..ops.reference import neuron_reference

        s, self.v = neuron_reference(x.unsqueeze(0), self.v, self.loop.p, self.loop.learned())
        return s.squeeze(0)


class SpikingJellyLIFStep(nn.Module):
    """SpikingJelly's node in single-step mode (``step_mode='s'``); its own state, reset on demand."""

    def __init__(self, p: NeuronParams, requested: str):
        super().__init__()
        multi = SpikingJellyLIF(p, requested)   # same mapping of the neuron as the multi-step layer
        multi.node.step_mode = "s"
        self.node = multi.node
        self.kind = multi.kind
        self.requested = requested

    def reset_state(self) -> None:
        self.node.reset()

    def forward(self, x: Tensor) -> Tensor:
        _set_implementation(self.requested, self.kind)
        return self.node(x)


def spikingjelly_auto(p: NeuronParams) -> SpikingJellyLIFStep:
    return SpikingJellyLIFStep(p, "auto")


def spikingjelly_torch(p: NeuronParams) -> SpikingJellyLIFStep:
    return SpikingJellyLIFStep(p, "torch")
