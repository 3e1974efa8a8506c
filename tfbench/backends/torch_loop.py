"""The serial baseline: the neuron's plain PyTorch reference (docs/neurons.md), a loop over T,
autograd through every step."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.neurons import NeuronParams

DIFFERENCES = ""


class TorchLoopLIF(nn.Module):
    """``tfbench.ops.reference.neuron_reference`` as a layer (any neuron); a PLIF neuron's w is its
    parameter, SpikingJelly's initial value."""

    def __init__(self, p: NeuronParams):
        super().__init__()
        self.p = p
        if p.learned:
            self.w = nn.Parameter(torch.tensor(p.init_w(), dtype=torch.float32))

    def learned(self) -> tuple[Tensor, ...]:
        return (self.w,) if self.p.learned else ()

    def forward(self, x: Tensor) -> Tensor:
        from ..ops.reference import neuron_reference

        return neuron_reference(x, None, self.p, self.learned())[0]
