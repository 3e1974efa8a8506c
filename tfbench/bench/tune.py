"""Launch-shape sweep for tfbench's LIF kernel (threads per block, neurons per thread, time unroll).

``python -m tfbench.bench.tune --out tune.csv`` times forward+backward of every variant on the
cases of kernels/NOTES.md, after checking each variant's output equals the default's bit for bit,
and prints the floor beside each time. The launcher's defaults (kernels/tfbench_ops.cpp) come from
its results; variants are set through ``tfbench::_set`` (``library.set_option``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import torch

from ..ops import library
from ..ops.lif import PRESETS, lif
from .layer import PRECISIONS, bytes_per_element
from .timing import copy_bandwidth, time_fn

CASES = [(4, 1 << 22), (16, 1 << 22), (64, 1 << 22), (16, 1 << 16)]


def _fwd_bwd(x, gs, p):
    s, _ = lif(x, **p.as_kwargs())
    return torch.autograd.grad(s, x, gs)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="tune.csv")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    print(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s on {torch.cuda.get_device_name()}")
    p = PRESETS["paper"]
    default = {key: library.set_option(key, -1) for key in ("vec", "unroll", "block")}

    def use(variant: dict) -> None:
        for key, value in default.items():
            library.set_option(key, variant.get(key, value) or 0)  # vec None: chosen per call (0)
    rows = []
    for precision in ("fp32", "bf16"):
        for steps, n in CASES:
            dtype = PRECISIONS[precision]
            x = (torch.randn(steps, n, device=device) * 0.5 + 0.3).to(dtype).requires_grad_(True)
            gs = torch.randn(steps, n, device=device, dtype=dtype)
            floor = bytes_per_element(precision, "both") * steps * n / bandwidth * 1e3
            use(default)
            expected = _fwd_bwd(x, gs, p)
            variants = [dict(vec=None)]  # the automatic choice
            variants += [dict(vec=v, unroll=u, block=b) for v, u, b in
                         itertools.product((1, 2, 4, 8), (1, 2, 4, 8), (64, 128, 256))
                         if v * x.element_size() <= 16]
            for variant in variants:
                use(variant)
                same = torch.equal(_fwd_bwd(x, gs, p), expected)
                timing = time_fn(lambda: _fwd_bwd(x, gs, p), device, warmup=5, repeats=args.repeats)
                row = dict(precision=precision, T=steps, N=n, **{"vec": variant.get("vec"),
                           "unroll": variant.get("unroll", default["unroll"]),
                           "block": variant.get("block", default["block"])}, same=same,
                           median_ms=round(timing.median_ms, 4), p10_ms=round(timing.p10_ms, 4),
                           p90_ms=round(timing.p90_ms, 4), floor_ms=round(floor, 4),
                           x_floor=round(timing.median_ms / floor, 3))
                rows.append(row)
            best = min((r for r in rows if r["precision"] == precision and r["T"] == steps and r["N"] == n),
                       key=lambda r: r["median_ms"])
            auto = next(r for r in rows if r["precision"] == precision and r["T"] == steps and r["N"] == n
                        and r["vec"] is None)
            print(f"{precision} T={steps:3d} N={n:8d} floor {floor:.4f} ms | auto {auto['median_ms']:.4f} "
                  f"({auto['x_floor']}x) | best {best['median_ms']:.4f} ({best['x_floor']}x) "
                  f"vec={best['vec']} unroll={best['unroll']} block={best['block']}", flush=True)
    use(default)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    bad = [r for r in rows if not r["same"]]
    if bad:
        raise SystemExit(f"{len(bad)} variants gave different gradients: {bad[:3]}")


if __name__ == "__main__":
    main()
