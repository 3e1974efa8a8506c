"""Where the host time of a training step of SpikingJelly's spiking_resnet18 goes, on a CPU.

    python scripts/zoo_host_cost.py                 # the models of zoo_handswap.py, T=4, batch 1, 32x32
    python scripts/zoo_host_cost.py --thin 1        # the real widths (the CPU's convolutions dominate)

At T=4 on a GPU a step of this network is host-bound: Python, the dispatcher and the launches decide
it. On a CPU the convolutions would hide that, so every channel count is divided by ``--thin``
(default 16: 64 -> 4 ... 512 -> 32; the 3 input channels kept): the same modules, the same calls, the
same autograd graph and the same Adam over the same number of tensors, with little arithmetic left.
The rows are zoo_handswap.py's. Per row it prints the host microseconds of a step (median over
interleaved rounds): ``functional.reset_net``, forward, backward (with ``zero_grad``), Adam; the aten ops
and autograd nodes a step runs (torch.profiler, CPU); then the costs of single calls: an accelerated
node against ``tfbench.lif`` and the hand-swap module, ``reset_net``, and SpikingJelly's multi-step
``layer.Conv2d`` / ``layer.BatchNorm2d`` wrappers against ``nn.Conv2d`` / ``nn.BatchNorm2d`` on
``[T*B, ...]``. The numbers are this CPU's; a GPU's host adds a launch (a few us) per kernel, not per
view op.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]  # this checkout
from zoo_handswap import LABELS, ROWS, HandLIF, build  # noqa: E402


def thin(net: nn.Module, k: int) -> nn.Module:
    """Every channel count of ``net`` divided by ``k`` (a 3-channel input kept), in place."""
    if k == 1:
        return net
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                oc, ic = m.out_channels // k, (m.in_channels if m.in_channels == 3 else m.in_channels // k)
                m.weight = nn.Parameter(m.weight[:oc, :ic].clone())
                m.out_channels, m.in_channels = oc, ic
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features // k
                m.weight, m.bias = nn.Parameter(m.weight[:n].clone()), nn.Parameter(m.bias[:n].clone())
                m.running_mean, m.running_var = m.running_mean[:n].clone(), m.running_var[:n].clone()
                m.num_features = n
            elif isinstance(m, nn.Linear):
                m.weight = nn.Parameter(m.weight[:, : m.in_features // k].clone())
                m.in_features //= k
    return net


class Row:
    """One model: its step split into reset_net / forward / backward / Adam, host-timed."""

    def __init__(self, row: str, k: int, x: torch.Tensor, y: torch.Tensor):
        self.row, self.x, self.y = row, x, y
        self.model = thin(build(row, 0), k)
        self.net = self.model.net if self.model.sj_model else None
        self.model.sj_model = False        # reset_net timed here, apart
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.us: dict[str, list[float]] = {"reset_net": [], "forward": [], "backward": [], "adam": [], "total": []}

    def step(self, timed: bool = True) -> None:
        from spikingjelly.activation_based import functional

        t0 = time.perf_counter()
        if self.net is not None:
            functional.reset_net(self.net)
        t1 = time.perf_counter()
        out = self.model(self.x)
        if self.net is not None:
            out = out.mean(0)
        loss = F.cross_entropy(out.float(), self.y)
        t2 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        self.optimizer.step()
        del out, loss        # the step's graph freed inside the step (a node's v may keep it until reset_net)
        t4 = time.perf_counter()
        if timed:
            for name, dt in (("reset_net", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2),
                             ("adam", t4 - t3), ("total", t4 - t0)):
                self.us[name].append(dt * 1e6)

    def counts(self) -> tuple[float, float]:
        """(aten ops, autograd nodes) per step."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                self.step(timed=False)
        events = prof.key_averages()
        ops = sum(e.count for e in events if e.key.startswith("aten::"))
        nodes = sum(e.count for e in events if e.key.startswith("autograd::engine::evaluate_function"))
        return ops / 3, nodes / 3


def best_us(cases: dict, repeats: int = 15, number: int = 2000) -> dict[str, float]:
    """The best of ``repeats`` interleaved rounds of ``number`` calls, in us per call."""
    best = {k: float("inf") for k in cases}
    for _ in range(repeats):
        for k, (fn, n) in cases.items():
            best[k] = min(best[k], timeit.timeit(fn, number=n or number) / (n or number) * 1e6)
    return best


def calls(T: int, k: int) -> dict[str, float]:
    """The host cost of single calls, at the shape of layer1 (thinned), in us."""
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.model import spiking_resnet

    import tfbench

    c = 64 // k
    x5 = torch.rand(T, 1, c, 8, 8)
    x4 = x5.flatten(0, 1)
    node = neuron.LIFNode(step_mode="m")
    tfbench.accelerate(nn.Sequential(node))
    hand = HandLIF()

    def reset_and_call():
        node.reset()
        return node(x5)

    torch.manual_seed(0)
    net = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.LIFNode, num_classes=10)
    functional.set_step_mode(net, "m")
    tfbench.accelerate(net)
    conv_sj = layer.Conv2d(c, c, 3, padding=1, bias=False, step_mode="m")
    conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
    bn_sj, bn = layer.BatchNorm2d(c, step_mode="m"), nn.BatchNorm2d(c)
    xg5, xg4 = x5.clone().requires_grad_(), x4.clone().requires_grad_()
    g5, g4 = torch.ones_like(x5), torch.ones_like(x4)
    return best_us({
        "tfbench.lif(x)": (lambda: tfbench.lif(x5), 0),
        "hand-swap module(x)": (lambda: hand(x5), 0),
        "accelerated node: reset() + node(x)": (reset_and_call, 0),
        "functional.reset_net(accelerated spiking_resnet18)": (lambda: functional.reset_net(net), 200),
        "SJ layer.Conv2d(m) on [T, B, ...]": (lambda: conv_sj(x5), 500),
        "nn.Conv2d on [T*B, ...]": (lambda: conv(x4), 500),
        "SJ layer.BatchNorm2d(m) on [T, B, ...]": (lambda: bn_sj(x5), 500),
        "nn.BatchNorm2d on [T*B, ...]": (lambda: bn(x4), 500),
        "SJ conv+BN forward+backward": (lambda: bn_sj(conv_sj(xg5)).backward(g5), 300),
        "nn conv+BN forward+backward": (lambda: bn(conv(xg4)).backward(g4), 300),
    })


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--thin", type=int, default=16, help="divide every channel count by this (1: real widths)")
    ap.add_argument("-T", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200, help="timed steps per row")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the least noise)")
    ap.add_argument("--rows", default="hand,accelerate,ann,own,own-ann,sj-torch")
    args = ap.parse_args(argv)
    if 64 % args.thin:
        ap.error(f"--thin must divide 64, got {args.thin}")
    rows = args.rows.split(",")
    bad = [r for r in rows if r not in ROWS]
    if bad:
        ap.error(f"unknown rows {', '.join(bad)}; choose from: {', '.join(ROWS)}")
    torch.set_num_threads(args.threads)
    from tfbench.backends.spikingjelly import _set_implementation

    _set_implementation("torch")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.T, args.batch_size, 3, args.size, args.size, generator=g) < 0.5).float()
    y = torch.randint(0, 10, (args.batch_size,), generator=g)
    runners = [Row(r, args.thin, x, y) for r in rows]
    for r in runners:
        for _ in range(10):
            r.step(timed=False)
    for _ in range(args.rounds):
        for r in runners:
            for _ in range(max(1, args.steps // args.rounds)):
                r.step()
    print(f"T={args.T}, batch {args.batch_size}, {args.size}x{args.size}, channels / {args.thin}, "
          f"{args.threads} thread(s), torch {torch.__version__}; host us per step, medians of {args.steps}")
    cols = ("reset_net", "forward", "backward", "adam", "total")
    print(f"{'model':46s}" + "".join(f"{c:>10s}" for c in cols) + f"{'aten ops':>10s}{'autograd':>10s}")
    for r in runners:
        ops, nodes = r.counts()
        med = [statistics.median(r.us[c]) for c in cols]
        print(f"{LABELS[r.row].replace('`', '').replace('*', ''):46s}" + "".join(f"{v:10.0f}" for v in med)
              + f"{ops:10.0f}{nodes:10.0f}")
    print("\nsingle calls at layer1's shape (thinned), best of 15 interleaved rounds, us per call")
    for name, us in calls(args.T, args.thin).items():
        print(f"  {name:52s} {us:8.2f}")


if __name__ == "__main__":
    main()
