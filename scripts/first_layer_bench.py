"""Issue 2's first LIF-layer benchmark: tfbench, SpikingJelly 2.0.0 and a plain PyTorch loop.

    python scripts/first_layer_bench.py --out results/lif_layer_first.jsonl

fp32 and bf16, T in {4, 16, 64}, N in {65,536; 4,194,304}, forward+backward, eager (and tfbench
replayed from a CUDA graph), the floor measured in the same run. Writes one JSON line per cell and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tfbench.bench.layer import run_layer_sweep
from tfbench.ops.lif import PRESETS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--backends", default="tfbench,spikingjelly,torch")
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda (the full grid) or cpu (a small grid: T in {4, 16}, N = 4096, eager)")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    Ts, Ns = ([4, 16, 64], [65536, 4194304]) if gpu else ([4, 16], [4096])
    modes = args.modes.split(",") if gpu else ["eager"]
    records = run_layer_sweep(args.backends.split(","), Ts, Ns, ["fp32", "bf16"], ["both"],
                              args.device, modes, PRESETS["paper"], repeats=50 if gpu else 5,
                              progress=lambda r: print(r.backend, r.precision, r.T, r.N, r.mode, r.status,
                                                       r.median_ms, r.floor_ms, r.checked, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for r in records:
            f.write(json.dumps(r.as_dict()) + "\n")
    print("\n| precision | T | N | backend | mode | median ms | p10-p90 | floor ms | x floor | checked |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        if r.status == "ok" and r.floor_ms is None:  # CPU: no floor measured
            print(f"| {r.precision} | {r.T} | {r.N} | {r.backend} | {r.mode} | {r.median_ms:.4f} | "
                  f"{r.p10_ms:.4f}-{r.p90_ms:.4f} | - | - | {r.checked} |")
            continue
        if r.status != "ok":
            print(f"| {r.precision} | {r.T} | {r.N} | {r.backend} | {r.mode} | {r.status} | | | | |")
            continue
        print(f"| {r.precision} | {r.T} | {r.N} | {r.backend} | {r.mode} | {r.median_ms:.4f} | "
              f"{r.p10_ms:.4f}-{r.p90_ms:.4f} | {r.floor_ms:.4f} | {r.median_ms / r.floor_ms:.2f} | {r.checked} |")


if __name__ == "__main__":
    main()
