"""What the temporal pipeline must equal, computed in one process (the tests compare against it).

The network runs on the k segments of T one after another; each spiking layer starts a segment from
the membrane it ended the previous one with (``CarryLIF``), so autograd carries the membrane and its
gradient across segments exactly as the pipeline's messages do, and BatchNorm sees each segment on
its own (per-segment statistics, as each pipeline rank's BN). The logits are the segments' logits
summed with weights T_seg / T: the average over all T.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..ops.functional import lif
from ..ops.neurons import LIFParams


class CarryLIF(nn.Module):
    """A multi-step LIF layer ``[T, *] -> [T, *]`` that keeps its final membrane for the next call.

    ``reset()`` goes back to the resting membrane (``v0=None``). The kept membrane stays in the
    autograd graph, so a loss over several calls back-propagates through the boundaries.
    """

    def __init__(self, params: LIFParams):
        super().__init__()
        self.params = params.validate()
        self.v: Tensor | None = None

    def reset(self) -> None:
        self.v = None

    def forward(self, x: Tensor) -> Tensor:
        s, self.v = lif(x, self.v, **self.params.as_kwargs())
        return s


def segmented_forward(model: nn.Module, x: Tensor, k: int) -> Tensor:
    """Logits ``[B, classes]`` of ``model`` (built with ``CarryLIF`` neurons) on ``x`` ``[T, B, ...]``
    run as k consecutive segments, averaged over all T. ValueError unless k divides T."""
    T = x.shape[0]
    if T % k:
        raise ValueError(f"k={k} does not divide T={T}")
    for m in model.modules():
        if isinstance(m, CarryLIF):
            m.reset()
    steps = T // k
    out = None
    for g in range(k):
        part = model(x[g * steps:(g + 1) * steps]) * (steps / T)
        out = part if out is None else out + part
    return out
