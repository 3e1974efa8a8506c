"""The serial baseline: the neuron's plain PyTorch reference, a loop over T, autograd through every step."""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.lif import LIFParams, lif_reference

DIFFERENCES = ""


class TorchLoopLIF(nn.Module):
    def __init__(self, p: LIFParams):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return lif_reference(x, **self.p.as_kwargs())[0]
