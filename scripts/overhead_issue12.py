"""Per-call costs beside the layer sweep (kernels/NOTES.md, "The redesign"): PyTorch's own eager
autograd round trip on a small layer (``x * 2`` and its backward, N = 65k, T = 16), the fused op
there, and what the no-compiler fallback (TFBENCH_NO_CPP=1, a fresh process) costs per call.

    python scripts/overhead_issue12.py [cuda|cpu]
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from tfbench.bench.timing import time_fn

CASES = [(16, 1 << 16), (16, 1 << 22)]


def _time(device: torch.device, steps: int, n: int) -> dict[str, float]:
    from tfbench.ops import LIF, PLIF, library

    g = torch.Generator(device=device).manual_seed(0)
    x = (torch.randn(steps, n, generator=g, device=device) * 0.3 + 0.2).requires_grad_(True)
    gs = torch.randn(steps, n, generator=g, device=device)
    lif, plif = LIF.from_preset("paper").to(device), PLIF.from_preset("paper").to(device)
    out = {"implementation": library.IMPLEMENTATION}
    cases = {"x*2 fwd+bwd (PyTorch's own autograd round trip)": lambda: torch.autograd.grad(x * 2, x, gs),
             "LIF fwd+bwd": lambda: torch.autograd.grad(lif(x), x, gs),
             "PLIF fwd+bwd (dL/dx, dL/dw)": lambda: torch.autograd.grad(plif(x), [x, plif.w], gs)}
    repeats = 200 if n <= 1 << 16 else 30
    for name, fn in cases.items():
        out[name] = time_fn(fn, device, warmup=10, repeats=repeats).median_ms
    return out


def main() -> None:
    device = torch.device(sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu"))
    if os.environ.get("TFBENCH_NO_CPP") == "1":
        for steps, n in CASES:
            print(f"  fallback T={steps} N={n}: " + ", ".join(f"{k} {v:.4f} ms" if isinstance(v, float) else v
                                                             for k, v in _time(device, steps, n).items()))
        return
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    for steps, n in CASES:
        times = _time(device, steps, n)
        print(f"  T={steps} N={n}: " + ", ".join(f"{k} {v:.4f} ms" if isinstance(v, float) else v
                                                 for k, v in times.items()))
    print("the same ops without a C++ compiler (TFBENCH_NO_CPP=1: the fallback over the reference):", flush=True)
    env = {**os.environ, "TFBENCH_NO_CPP": "1"}
    done = subprocess.run([sys.executable, __file__, str(device)], env=env, capture_output=True, text=True,
                          timeout=300)
    print(done.stdout + done.stderr[-2000:])


if __name__ == "__main__":
    main()
