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


def write_markdown(jsonl: Path, md: Path) -> None:
    """The committed table (results/lif_layer_first.md) from the sweep's JSON lines."""
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    by = {(r["precision"], r["T"], r["N"], r["backend"], r["mode"]): r for r in rows}
    first = rows[0]
    env = first["env"]
    sj = next((r for r in rows if r["backend"] == "spikingjelly" and r["status"] == "ok"), None)
    out = ["# LIF layer, forward + backward: tfbench vs SpikingJelly 2.0.0 vs a plain PyTorch loop", "",
           f"GPU: {env['device']} (driver {env['driver']}), torch {env['torch']}, CUDA {env['cuda']}, "
           f"SpikingJelly {env['libraries'].get('spikingjelly')} ({sj['implementation'] if sj else '?'} kernel, "
           f"auto-selected), tfbench {env['git_commit']}, {first['timestamp'][:10]}.", "",
           f"Neuron: the paper's preset ({first['neuron']}). Input `[T, N]`, random currents, random dL/ds. "
           "Time: CUDA events around forward + `torch.autograd.grad`, median of >= 50 after warm-up (p10-p90 in "
           "the JSONL). Floor: 24 B/element (fp32) or 12 B/element (bf16) over the copy bandwidth measured in "
           f"the same run ({first['copy_bandwidth_gbs']:.0f} GB/s read + write). 'graph': the same forward + "
           "backward replayed from a CUDA graph (no Python, no launch gaps). Every cell's spikes were checked "
           "against the float64 reference before timing"
           + (" (all passed)." if all(r["checked"] for r in rows if r["status"] == "ok") else "."), "",
           "Regenerate on a GPU: `python scripts/first_layer_bench.py --out results/lif_layer_first.jsonl "
           "--markdown results/lif_layer_first.md`.", "",
           "| precision | T | N | floor ms | tfbench eager | tfbench graph | SpikingJelly eager | SpikingJelly graph "
           "| torch loop eager | tfbench graph / floor | SpikingJelly / tfbench (eager) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for prec in ("fp32", "bf16"):
        for steps in (4, 16, 64):
            for n in (65536, 4194304):
                cell = {(b, m): by.get((prec, steps, n, b, m)) for b in ("tfbench", "spikingjelly", "torch")
                        for m in ("eager", "graph")}
                if any(c is None or c["status"] != "ok" for c in cell.values()):
                    continue
                te, tg = cell["tfbench", "eager"]["median_ms"], cell["tfbench", "graph"]["median_ms"]
                se, sg = cell["spikingjelly", "eager"]["median_ms"], cell["spikingjelly", "graph"]["median_ms"]
                pe, floor = cell["torch", "eager"]["median_ms"], cell["tfbench", "eager"]["floor_ms"]
                out.append(f"| {prec} | {steps} | {n:,} | {floor:.4f} | {te:.4f} | {tg:.4f} | {se:.4f} | {sg:.4f} | "
                           f"{pe:.3f} | {tg / floor:.2f}x | {se / te:.2f}x |")
    md.write_text("\n".join(out) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--markdown", type=Path, help="also write the markdown table (GPU grid) here")
    ap.add_argument("--table-only", action="store_true", help="only rewrite --markdown from an existing --out")
    ap.add_argument("--backends", default="tfbench,spikingjelly,torch")
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cuda (the full grid) or cpu (a small grid: T in {4, 16}, N = 4096, eager)")
    args = ap.parse_args()
    if args.table_only:
        write_markdown(args.out, args.markdown)
        return
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
    if args.markdown and gpu:
        write_markdown(args.out, args.markdown)
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
