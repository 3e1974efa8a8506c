"""Data parallelism: DistributedDataParallel, and each rank's share of every global batch.

``--batch-size`` is per process (the torch convention): with W processes the data source yields
global batches of ``batch_size * W`` samples, in the order one process would read them with that
batch size, and rank r trains on rows ``[r*B, (r+1)*B)`` of each (what ``DistributedSampler`` gives:
disjoint shards that together are the global batch). An epoch is one pass over the training set by
all ranks together. Every rank fetches the whole global batch and keeps its rows; fetching is outside
the timed step. The rate coding (``encode``) draws from each rank's own generator, seeded alike, on
its own rows. DDP averages the gradients over the ranks, so a step equals one process's step on the
global batch, except BatchNorm, which normalises each rank's shard with the shard's own statistics.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..data.batches import Batches


class ShardedBatches(Batches):
    """Rank ``rank``'s rows of every batch of ``source`` (batches of ``batch_size * world`` samples).

    A short last batch (a test split's remainder) is split as evenly as possible
    (``torch.tensor_split``): a rank may then get fewer rows than the others.
    """

    def __init__(self, source: Batches, rank: int, world: int):
        super().__init__()
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in 0..{world - 1}, got {rank}")
        self.source, self.rank, self.world = source, rank, world

    @property
    def nbytes(self) -> int:
        return getattr(self.source, "nbytes", 0)

    def __len__(self) -> int:
        return len(self.source)

    def _epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        batches = iter(self.source)
        try:
            for x, y in batches:
                yield torch.tensor_split(x, self.world)[self.rank], torch.tensor_split(y, self.world)[self.rank]
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` (already on ``device``) under DistributedDataParallel: gradients averaged over ranks,
    parameters and buffers broadcast from rank 0 at construction, buffers again before each forward."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)
