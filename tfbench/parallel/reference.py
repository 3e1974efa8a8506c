"""What the temporal pipeline must equal, computed in one process (the tests compare against it).

The network runs on the k segments of T one after another; each spiking layer starts a segment from
the membrane it ended the previous one with (``CarryLIF``), so autograd carries the membrane and its
gradient across segments exactly as the pipeline's messages do, and BatchNorm sees each segment on
its own (per-segment statistics, as each pipeline rank's BN). The logits are the segments' logits
summed with weights T_seg / T: the average over all T. With micro-batches, each micro-batch runs its
k segments on its own (per-segment, per-micro-batch BN statistics, as the micro-batched pipeline's).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import segment_op
from .segment_op import LIFParams


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
        s, self.v = segment_op.reference(x, self.v, self.params)
        return s

    def norm_args(self) -> tuple[LIFParams, tuple[Tensor, ...]]:
        """What a lean network's fused nodes take for this layer (``Spiking.fold_conv``)."""
        return self.params, ()

    def carry(self, run, x: Tensor, neurons: int) -> Tensor:
        """A lean network's fused node, ``run(v0, return_state)``, started from the kept membrane; keeps its v_T."""
        s, self.v = run(self.v, True)
        return s


def segmented_forward(model: nn.Module, x: Tensor, k: int, micro_batches: int = 1) -> Tensor:
    """Logits ``[B, classes]`` of ``model`` (built with ``CarryLIF`` neurons) on ``x`` ``[T, B, ...]``
    run as k consecutive segments, averaged over all T. With ``micro_batches`` M, the batch is cut as
    ``TemporalParallel`` cuts it (``torch.tensor_split`` into ``min(M, B)``) and each micro-batch runs
    its k segments from rest in turn; the logits are joined in batch order. ValueError unless k divides T."""
    T = x.shape[0]
    if T % k:
        raise ValueError(f"k={k} does not divide T={T}")
    steps = T // k
    outs = []
    for part in torch.tensor_split(x, min(micro_batches, x.shape[1]), dim=1):
        for m in model.modules():
            if isinstance(m, CarryLIF):
                m.reset()
        out = None
        for g in range(k):
            logits = model(part[g * steps:(g + 1) * steps]) * (steps / T)
            out = logits if out is None else out + logits
        outs.append(out)
    return outs[0] if len(outs) == 1 else torch.cat(outs, 0)
