"""A small layer's eager cost, in whichever tfbench tree is on sys.path (old and new alike), beside
PyTorch's own autograd round trip (``x * 2`` and backward): kernels/NOTES.md's before/after table.

    PYTHONPATH=<tree> python scripts/ab_small_layer.py LABEL
"""

from __future__ import annotations

import sys

import torch

from tfbench.bench.timing import time_fn
from tfbench.ops.lif import LIF

label = sys.argv[1] if len(sys.argv) > 1 else "tree"
device = torch.device("cuda")
for dtype in (torch.float32, torch.bfloat16):
    g = torch.Generator(device=device).manual_seed(0)
    x = (torch.randn(16, 1 << 16, generator=g, device=device) * 0.3 + 0.2).to(dtype).requires_grad_(True)
    gs = torch.randn(16, 1 << 16, generator=g, device=device).to(dtype)
    layer = LIF.from_preset("paper")
    cases = {"x*2 fwd+bwd": lambda: torch.autograd.grad(x * 2, x, gs),
             "LIF fwd": lambda: layer(x),
             "LIF fwd+bwd": lambda: torch.autograd.grad(layer(x), x, gs)}
    line = [f"{label} {str(dtype)[6:]}"]
    for name, fn in cases.items():
        line.append(f"{name} {time_fn(fn, device, warmup=50, repeats=500).median_ms * 1e3:.1f} us")
    print(" | ".join(line), flush=True)
