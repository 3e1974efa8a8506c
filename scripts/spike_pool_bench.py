"""The stem's max-pool of spikes (3x3, stride 2, padding 1), forward and backward, three ways, on one GPU:

  torch       F.max_pool2d on the dense spikes and its backward (int64 indices): the default model's;
  unpack      the lean path before kernels/spike_pool.cuh: the spikes unpacked from their bits, the
              maximum's position found again by F.max_pool2d with indices, then its backward;
  bits        tfbench's max-pool read from the bits (tfbench::spike_max_pool2d and its backward).

Shape: Spiking-ResNet18's stem output on CIFAR-10 at batch 100, T steps: [T*100, 64, 16, 16] -> 8 x 8.
One process, the same inputs, CUDA events after warm-up, medians and the 10-90 % spread; the floor is
the bytes any way must move (forward: bits, out; backward: bits, dL/dout, dL/dx; not the bits way's
one-byte-a-window scratch, ~10 % more in fp32) over the copy bandwidth measured here.

    python scripts/spike_pool_bench.py --out results/h200/issue13/spike_pool.md [--steps 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from tfbench.bench.timing import copy_bandwidth, time_fn
from tfbench.ops import norm

POOL = (3, 2, 1, 1, False)


def ways(s: torch.Tensor, bits: torch.Tensor, gout: torch.Tensor, cl: bool):
    shape = tuple(s.shape)

    def torch_fwd():
        return F.max_pool2d(s, *POOL)

    def torch_bwd():
        _, idx = F.max_pool2d(s, *POOL, return_indices=True)   # what autograd keeps: made in forward
        return idx

    idx = torch_bwd()

    def torch_bwd_only():
        return torch.ops.aten.max_pool2d_with_indices_backward(gout, s, [3, 3], [2, 2], [1, 1], [1, 1], False, idx)

    def unpack_bwd():
        x = norm.unpack_spikes(bits, shape, s.dtype, cl)
        _, i = F.max_pool2d(x, *POOL, return_indices=True)
        return torch.ops.aten.max_pool2d_with_indices_backward(gout, x, [3, 3], [2, 2], [1, 1], [1, 1], False, i)

    def bits_fwd():
        return norm._pool_forward(bits, shape, s.dtype, cl, POOL)

    def bits_bwd():
        return norm._pool_backward(gout, bits, shape, s.dtype, cl, POOL)

    assert torch.equal(bits_fwd(), torch_fwd()) and torch.equal(bits_bwd(), torch_bwd_only())
    assert torch.equal(unpack_bwd(), torch_bwd_only())
    return {"torch": (torch_fwd, torch_bwd_only), "unpack": (torch_fwd, unpack_bwd), "bits": (bits_fwd, bits_bwd)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=100)
    a = ap.parse_args()
    dev = torch.device("cuda")
    bw = copy_bandwidth(dev)
    g = torch.Generator(dev).manual_seed(0)
    n_img = a.steps * a.batch
    lines = [f"Stem max-pool of spikes, [{n_img}, 64, 16, 16] -> 8 x 8, {torch.cuda.get_device_name(dev)}, "
             f"copy bandwidth {bw / 1e9:,.0f} GB/s", "",
             "| dtype | memory | way | forward ms | backward ms | spread (10-90 %) fwd / bwd | floor fwd / bwd ms | "
             "x floor fwd / bwd |", "| --- | --- | --- | ---: | ---: | --- | --- | --- |"]
    for dtype in (torch.float32, torch.bfloat16):
        for cl in (False, True):
            s = (torch.rand(n_img, 64, 16, 16, device=dev, generator=g) < 0.2).to(dtype)
            if cl:
                s = s.contiguous(memory_format=torch.channels_last)
            gout = torch.randn(n_img, 64, 8, 8, device=dev, generator=g).to(dtype)
            if cl:
                gout = gout.contiguous(memory_format=torch.channels_last)
            bits = norm.pack_spikes(s)
            n, size = s.numel(), s.element_size()
            floor_f = (n / 8 + n / 4 * size) / bw * 1e3
            floor_b = (n / 8 + n / 4 * size + n * size) / bw * 1e3
            for way, (fwd, bwd) in ways(s, bits, gout, cl).items():
                tf, tb = time_fn(fwd, dev, repeats=50), time_fn(bwd, dev, repeats=50)
                lines.append(f"| {str(dtype).split('.')[-1]} | {'channels-last' if cl else 'NCHW'} | {way} | "
                             f"{tf.median_ms:.3f} | {tb.median_ms:.3f} | {tf.p10_ms:.3f}-{tf.p90_ms:.3f} / {tb.p10_ms:.3f}-{tb.p90_ms:.3f} | "
                             f"{floor_f:.3f} / {floor_b:.3f} | {tf.median_ms / floor_f:.2f}x / "
                             f"{tb.median_ms / floor_b:.2f}x |")
    lines += ["", "Forward: torch and unpack run the same op (F.max_pool2d: it writes int64 indices beside "
              "the output); bits reads the bits only. The floor is the bits way's bytes.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)


if __name__ == "__main__":
    main()
