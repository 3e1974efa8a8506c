"""results/h200/layer_issue12.md from results/h200/layer_issue12.jsonl (the layer sweep's records only):
one row per cell with the neuron named, each time against its own floor and against the 24 B (16-bit:
12 B) floor of an op that keeps h.

    python scripts/issue12_table.py results/h200/layer_issue12.jsonl > results/h200/layer_issue12.md
"""

from __future__ import annotations

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
first = rows[0]
env = first.get("env", {})
print(f"# Layer sweep, issue 12 (configs/layer_issue12.toml)\n")
print(f"{first['device_name']}, torch {env.get('torch', '?')}, CUDA {env.get('cuda', '?')}, driver "
      f"{env.get('driver', '?')}; copy bandwidth {first['copy_bandwidth_gbs']:,.0f} GB/s (read + write, same "
      f"process); one process, CUDA events, median of 50 after 5 warm-up calls; forward + backward "
      f"(`torch.autograd.grad`), input `[T, N]`, the paper's neuron (LIF: tau 1.25, no decay_input, "
      f"threshold 0.3, hard reset to 0, sigmoid 4; PLIF: the same with init_tau 1.25).\n")
print("| neuron | backend | precision | T | N | mode | median ms | p10 | p90 | floor ms (own) | x own floor "
      "| x keep-h floor | checked | implementation |")
print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
for r in rows:
    neuron = "PLIF" if r["neuron"].startswith("PLIF") else "LIF"
    if r["status"] != "ok":
        print(f"| {neuron} | {r['backend']} | {r['precision']} | {r['T']} | {r['N']} | {r['mode']} | {r['status']} "
              "| | | | | | no | |")
        continue
    keep_h = (24 if r["precision"] == "fp32" else 12) * r["T"] * r["N"] / (r["copy_bandwidth_gbs"] * 1e9) * 1e3
    print(f"| {neuron} | {r['backend']} | {r['precision']} | {r['T']} | {r['N']} | {r['mode']} | {r['median_ms']:.4f} "
          f"| {r['p10_ms']:.4f} | {r['p90_ms']:.4f} | {r['floor_ms']:.4f} | {r['median_ms'] / r['floor_ms']:.3f}x "
          f"| {r['median_ms'] / keep_h:.3f}x | {'yes' if r['checked'] else 'no'} | {r.get('implementation') or ''} |")
