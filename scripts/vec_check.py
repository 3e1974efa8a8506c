"""bf16 with save="input": does a narrower access (vec 4, half the registers of the recompute backward)
beat the launcher's 16-byte choice (vec 8)? LIF and PLIF, N = 4.2M, T = 16 and 64, forward + backward."""

from __future__ import annotations

import torch

from tfbench.bench.timing import time_fn
from tfbench.ops import LIF, PLIF, library

device = torch.device("cuda")
for steps in (16, 64):
    g = torch.Generator(device=device).manual_seed(0)
    x = (torch.randn(steps, 1 << 22, generator=g, device=device) * 0.3 + 0.2).bfloat16().requires_grad_(True)
    gs = torch.randn(steps, 1 << 22, generator=g, device=device).bfloat16()
    for name, layer in (("LIF", LIF.from_preset("paper", save="input")), ("PLIF", PLIF.from_preset("paper", save="input").cuda()),
                        ("PLIF h", PLIF.from_preset("paper").cuda())):
        row = [f"bf16 T={steps} {name}"]
        for vec in (0, 4, 8):
            before = library.set_option("vec", vec)
            inputs = [x] + list(layer.parameters())
            t = time_fn(lambda: torch.autograd.grad(layer(x), inputs, gs), device, warmup=5, repeats=40)
            library.set_option("vec", before)
            row.append(f"vec {vec or 'auto'} {t.median_ms:.4f} ms")
        print(" | ".join(row), flush=True)
