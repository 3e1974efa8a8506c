"""One conv -> BatchNorm -> (residual add) -> neuron stage of Spiking-ResNet18, forward and backward, three ways:

  composed  nn.BatchNorm2d, the add, tfbench.lif (save="input"): what the default model runs;
  lean      tfbench.ops.norm.norm_neuron: BatchNorm folded into the neuron, the residual read as bits;
  ann       nn.BatchNorm2d, the add, ReLU: the ANN twin's stage.

Shapes: Spiking-ResNet18's feature maps on CIFAR-10 (32x32 input, its 7x7/2 stem and max-pool) at
batch 100 and T steps: [T*100, 64, 16, 16] (stem), [T*100, 64, 8, 8] (stage 1), ... One process,
the same inputs, CUDA events after warm-up, medians and the 10-90 % spread; the floor is the bytes
each way must move (kernels/NOTES.md, "BatchNorm folded in") over the copy bandwidth measured here.

    python scripts/lean_layer_bench.py --out results/h200/lean_layer.md [--steps 32] [--smoke]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from tfbench.bench.timing import copy_bandwidth, time_fn
from tfbench.ops import LIF, norm

SHAPES = {"stem": (64, 16, 16), "stage1": (64, 8, 8), "stage2": (128, 4, 4), "stage3": (256, 2, 2)}


def stage(kind: str, z, r, bits, bn, lif, steps):
    if kind == "lean":
        return norm.from_time_major(lif.forward_norm(norm.time_major(z, steps), bn, norm.time_major(r, steps), bits), z)
    y = bn(z) + r
    if kind == "ann":
        return torch.relu(y)
    return lif(y.unflatten(0, (steps, -1))).flatten(0, 1)


def floor_bytes(kind: str, numel: int, size: int, steps: int) -> float:
    """Bytes moved, forward and backward, by the stage (BatchNorm counted as cuDNN runs it: statistics
    read z, normalise reads z and writes y; backward reads gy and z twice, writes gz)."""
    ckpt = 4 * ((steps - 1) // 8) / steps
    if kind == "lean":   # stats: z; forward: z, bits, s; backward x2: gs, z, bits (+ gz, gr once)
        return numel * (size * (1 + 2 + 2 + 4) + 3 / 8 + 3 * ckpt)
    bn = 3 + 5                    # BatchNorm forward and backward
    add = 3 + 0                   # y + r forward; its backward passes gy through
    if kind == "ann":
        return numel * size * (bn + add + 2 + 3)
    return numel * (size * (bn + add + 2 + 3) + 2 * ckpt)   # LIF save="input": x, s; gs, x, gx; ckpt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, on the CPU if no GPU")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps, batch = (4, 2) if args.smoke else (args.steps, args.batch)
    bw = copy_bandwidth(device) if device.type == "cuda" else None
    lines = [f"Spiking-ResNet18 stages at T={steps}, batch {batch}, forward+backward, on "
             f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}; copy bandwidth "
             f"{bw / 1e9:.0f} GB/s" if bw else f"T={steps}, batch {batch}, CPU smoke run", "",
             "| stage | dtype | way | ms (median) | spread | floor ms | x floor |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for name, (c, h, w) in SHAPES.items():
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device="cpu").manual_seed(0)
            z = torch.randn(steps * batch, c, h, w, generator=g).to(device, dtype).requires_grad_(True)
            r = (torch.rand(steps * batch, c, h, w, generator=g) < 0.3).to(device, dtype).requires_grad_(True)
            bits = norm.pack_spikes(r)
            bn = nn.BatchNorm2d(c).to(device)
            lif = LIF(save="input")
            gs = torch.randn(z.shape, generator=g).to(device, dtype)
            for kind in ("composed", "lean", "ann"):
                def run():
                    z.grad = r.grad = None
                    stage(kind, z, r, bits, bn, lif, steps).backward(gs)
                timing = time_fn(run, device, warmup=3, repeats=20 if not args.smoke else 3)
                fb = floor_bytes(kind, z.numel(), z.element_size(), steps)
                floor = fb / bw * 1e3 if bw else None
                lines.append(f"| {name} {c}x{h}x{w} | {str(dtype).split('.')[-1]} | {kind} | {timing.median_ms:.3f} | "
                             f"{timing.spread:.0%} | {'' if floor is None else f'{floor:.3f}'} | "
                             f"{'' if floor is None else f'{timing.median_ms / floor:.2f}x'} |")
            del z, r, bits, gs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
