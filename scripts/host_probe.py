"""The host's speed for PyTorch's dispatch, in one number: microseconds per small CUDA op.

    python scripts/host_probe.py

After a warm-up, 20,000 rounds of one allocation and one in-place add on a 16-element CUDA tensor
(no synchronisation inside; one at the end), timed with perf_counter; prints the median of five such
runs in microseconds per round. A process whose number is high will issue a training step slowly,
whatever the step's code: scripts/host_pinning.sh sets each process's step host time beside it.
"""

from __future__ import annotations

import statistics
import time

import torch


def main() -> None:
    x = torch.zeros(16, device="cuda")
    rounds, runs = 20_000, []
    for _ in range(6):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(rounds):
            y = torch.empty(16, device="cuda")
            x.add_(1.0)
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0) / rounds * 1e6)
    del y
    print(f"probe {statistics.median(runs[1:]):.2f} us/round")


if __name__ == "__main__":
    main()
