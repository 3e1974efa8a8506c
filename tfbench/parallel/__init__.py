"""Several processes (GPUs): data parallelism and the temporal pipeline, on ``torch.distributed``.

- ``dist.py``: the process group (NCCL on GPUs, gloo on the CPU), rank helpers, failure reporting.
- ``launch.py``: ``tfbench run --nproc N`` re-launches itself through torchrun.
- ``data_parallel.py``: DistributedDataParallel and each rank's share of every global batch.
- ``temporal.py``: T split into contiguous segments, one per rank, membranes passed at the boundaries
  (layers in a wavefront, neurons in chunks, the batch in micro-batches).
- ``runs.py``: R independent runs of one layer pipelined through the segments (the paper's Fig. 6).
- ``segment_op.py``: the fused op as the pipelines call it (the one place they touch its API).
- ``reference.py``: the single-process computation the temporal pipeline equals.
- ``strategy.py``: what the training loop asks of ``--parallel none|data|temporal``.
"""

from .strategy import MODES, Strategy, for_run

__all__ = ["MODES", "Strategy", "for_run"]
