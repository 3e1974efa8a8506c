"""The serial baseline: docs/neurons.md as a plain PyTorch loop over T (the reference), autograd through every step."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.neurons import NeuronParams
from .base import Backend


class TorchLoopNeuron(nn.Module):
    """``tfbench.ops.reference.neuron_reference`` as a layer; a PLIF neuron's w is its parameter."""

    def __init__(self, p: NeuronParams):
        super().__init__()
        self.p = p
        if p.learned:  # PLIF: w, SpikingJelly's initial value
            self.w = nn.Parameter(torch.tensor(p.init_w(), dtype=torch.float32))

    def learned(self) -> tuple[Tensor, ...]:
        return (self.w,) if self.p.learned else ()

    def forward(self, x: Tensor) -> Tensor:
        from ..ops.reference import neuron_reference

        return neuron_reference(x, None, self.p, self.learned())[0]



BACKEND = Backend(
    name="torch",
    description="plain PyTorch loop over T (autograd through each step): the serial baseline",
    make_layer=TorchLoopNeuron,
)
