"""Where the eager time of a small LIF layer goes (N = 65,536, T = 16, fp32, forward+backward).

    python scripts/profile_overhead.py

Prints, with CUDA events after warm-up (median of 300): tfbench's op, the same op through the
dispatcher, a do-nothing autograd.Function with one allocation per direction, a single elementwise
op, the same op forward + ``autograd.grad`` (PyTorch's own floor for any op with a backward on this
host: a native C++ autograd node, no Python), and SpikingJelly; then the
Python functions that take the time in tfbench's call (cProfile).
"""

from __future__ import annotations

import cProfile
import pstats

import torch

from tfbench.bench.timing import time_fn
from tfbench.ops.lif import PRESETS, LIF


class _Nothing(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.empty_like(x)

    @staticmethod
    def backward(ctx, g):
        return torch.empty_like(g)


def main() -> None:
    dev = torch.device("cuda")
    x = torch.randn(16, 1 << 16, device=dev).requires_grad_(True)
    gs = torch.randn_like(x)
    layer = LIF.from_preset("paper")
    cases = {
        "single elementwise op (x * 2)": lambda: x.detach() * 2,
        "x * 2 fwd+bwd (PyTorch's native C++ autograd)": lambda: torch.autograd.grad(x * 2, x, gs),
        "do-nothing autograd.Function fwd+bwd": lambda: torch.autograd.grad(_Nothing.apply(x), x, gs),
        "tfbench forward only": lambda: layer(x),
        "tfbench fwd+bwd": lambda: torch.autograd.grad(layer(x), x, gs),
    }
    for name, fn in cases.items():
        t = time_fn(fn, dev, warmup=20, repeats=300)
        print(f"{name:45s} {t.median_ms * 1e3:8.1f} us  (p10 {t.p10_ms * 1e3:.1f}, p90 {t.p90_ms * 1e3:.1f})")
    try:
        from tfbench.backends import get
        sj = get("spikingjelly").layer(PRESETS["paper"])
        t = time_fn(lambda: torch.autograd.grad(sj(x), x, gs), dev, warmup=20, repeats=300)
        print(f"{'spikingjelly fwd+bwd':45s} {t.median_ms * 1e3:8.1f} us")
    except Exception as exc:  # noqa: BLE001
        print("spikingjelly: n/a:", exc)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(2000):
        torch.autograd.grad(layer(x), x, gs)
    torch.cuda.synchronize()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
