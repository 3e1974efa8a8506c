"""A 2-rank job (started by tests/parallel/test_launch.py through torchrun) whose rank 1 dies.

Rank 1 raises before its first pipeline step; rank 0 runs a pipelined layer and blocks receiving
from rank 1. The test checks that the job ends quickly with rank 1's message, not a hang."""

import torch
import torch.distributed as dist

from tfbench.ops.lif import PRESETS
from tfbench.parallel import dist as tdist
from tfbench.parallel.temporal import Link, backward_segment, forward_segment

tdist.init("cpu")
try:
    if dist.get_rank() == 1:
        raise RuntimeError("injected failure in rank 1")
    link = Link.world(chunks=2)
    x = torch.randn(4, 8)
    s, h = forward_segment([x[:, :4].contiguous(), x[:, 4:].contiguous()], PRESETS["paper"], link, 0)
    backward_segment(s, h, PRESETS["paper"], link, 0)     # waits for dL/dv_T from rank 1: never comes
    link.flush()
except Exception as e:  # noqa: BLE001
    tdist.fail_fast(f"error: {tdist.one_line(e)}")
tdist.shutdown()
