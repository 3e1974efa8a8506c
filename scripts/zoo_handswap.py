"""SpikingJelly's spiking_resnet18 trained one step at a time, its neurons four ways, in one process.

    python scripts/zoo_handswap.py results/h200/zoo_handswap.md                 # GPU: T 4,32; fp32, bf16
    python scripts/zoo_handswap.py /tmp/smoke.md --smoke                         # CPU, tiny shapes

Rows (every model from the same seed: the same weights; the same input):

- ``sj``: SpikingJelly 2.0's ``spiking_resnet18`` with its own ``LIFNode`` (tau 2, hard reset to 0,
  sigmoid 4; multi-step), on the implementation SpikingJelly picks itself (``auto``: its Triton kernel
  on a GPU without a source build of its CUDA one; its torch reference under bf16 autocast);
- ``sj-torch``: the same with its torch path asked for (SpikingJelly refuses it under bf16 autocast: n/a);
- ``hand``: the same model with every node swapped, at construction, for a minimal ``nn.Module`` that
  calls ``tfbench.lif`` on the ``[T, B, ...]`` tensor (no state, nothing else);
- ``accelerate``: the ``sj`` model after ``tfbench.accelerate`` (what the harness's tfbench rows of
  ``--arch sj:spiking_resnet18`` run);
- ``ann``: its ANN twin (``nn.ReLU`` in every node's place);
- ``own``, ``own-ann``: tfbench's own Spiking-ResNet18 with ``tfbench.LIF``, and its ResNet18 (the same
  layout; convs and BN on ``[T*B, ...]``), for comparison.

A training step is what a SpikingJelly user runs: ``functional.reset_net``, forward under the
precision's autocast, logits averaged over T, cross-entropy, ``zero_grad``, backward, Adam. Each row's
steps are timed with CUDA events (``perf_counter`` on a CPU) after a warm-up; the rows take turns in
rounds (``--rounds``), so a drift of the machine's clocks spreads over all of them. The host time of
each step (``perf_counter`` around it, no synchronisation: the Python and dispatcher time to enqueue
forward, backward and Adam) is reported beside it; where it is close to the step time, the step is
host-bound. Before timing, the ``hand`` and ``accelerate`` logits are checked against ``sj`` in fp32.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the tfbench of this checkout, installed or not

ROWS = ("sj", "sj-torch", "hand", "accelerate", "ann", "own", "own-ann")
LABELS = {
    "sj": "SpikingJelly `LIFNode` (its own choice)",
    "sj-torch": "SpikingJelly `LIFNode` (torch path)",
    "hand": "nodes swapped by hand for `tfbench.lif`",
    "accelerate": "**`tfbench.accelerate`**",
    "ann": "its ANN twin (ReLU)",
    "own": "tfbench's Spiking-ResNet18 (`tfbench.LIF`)",
    "own-ann": "tfbench's ResNet18 (ReLU)",
}
AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class HandLIF(nn.Module):
    """The minimal swap: ``tfbench.lif`` on the ``[T, B, ...]`` tensor, SpikingJelly's default LIFNode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import tfbench

        return tfbench.lif(x, tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0, detach_reset=False,
                           surrogate="sigmoid", alpha=4.0)[0]


class AsTrained(nn.Module):
    """A SpikingJelly model as a user trains it: reset every node, run ``[T, B, C, H, W]``, average over T
    (tfbench's own models average inside)."""

    def __init__(self, net: nn.Module, sj_model: bool):
        super().__init__()
        self.net, self.sj_model = net, sj_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.sj_model:
            return self.net(x)
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        return self.net(x).mean(0)


def build(row: str, seed: int) -> nn.Module:
    """The model of ``row`` (``ROWS``), weights drawn from ``seed``."""
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.model import spiking_resnet

    import tfbench
    from tfbench import models

    torch.manual_seed(seed)
    if row in ("own", "own-ann"):
        lif = lambda: tfbench.LIF(tau=2.0, v_reset=0.0, surrogate="sigmoid", alpha=4.0)  # noqa: E731
        return AsTrained(models.build("Spiking-ResNet18" if row == "own" else "ResNet18", lif), False)
    node = {"sj": neuron.LIFNode, "sj-torch": neuron.LIFNode, "accelerate": neuron.LIFNode,
            "hand": lambda **_: HandLIF(), "ann": lambda **_: nn.ReLU()}[row]
    net = spiking_resnet.spiking_resnet18(spiking_neuron=node, num_classes=10)
    functional.set_step_mode(net, "m")
    if row == "accelerate":
        report = tfbench.accelerate(net)
        assert len(report.replaced) == 17 and not report.refused, str(report)
    return AsTrained(net, True)


def sj_implementation(row: str) -> str | None:
    """SpikingJelly's implementation switch for a row that runs its LIFNode (None: not one)."""
    return {"sj": "auto", "sj-torch": "torch"}.get(row)


class Runner:
    """One row at one configuration: its model, Adam, the step, and the times of its timed steps."""

    def __init__(self, row: str, model: nn.Module, device: torch.device, precision: str):
        self.row, self.model, self.device = row, model.to(device), device
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.amp = AMP[precision]
        self.step_ms: list[float] = []
        self.host_ms: dict[str, list[float]] = {"forward": [], "backward": [], "adam": [], "total": []}
        self.status = "ok"
        self.implementation = ""
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def step(self, x: torch.Tensor, y: torch.Tensor, timed: bool) -> None:
        from tfbench.backends.spikingjelly import _set_implementation

        requested = sj_implementation(self.row)
        if requested is not None:
            _set_implementation(requested)
        cuda = self.device.type == "cuda"
        if timed and cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        t0 = time.perf_counter()
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y)
        t1 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        del logits, loss     # the step's graph freed inside the step (a node's v may keep it until reset_net)
        t3 = time.perf_counter()
        if not timed:
            return
        if cuda:
            end.record()
            self._events.append((begin, end))
        else:
            self.step_ms.append((t3 - t0) * 1e3)
        for name, dt in (("forward", t1 - t0), ("backward", t2 - t1), ("adam", t3 - t2), ("total", t3 - t0)):
            self.host_ms[name].append(dt * 1e3)

    def collect(self) -> None:
        """Read the CUDA events (the device synchronised)."""
        self.step_ms += [b.elapsed_time(e) for b, e in self._events]
        self._events = []


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(median, p10, p90)."""
    v = sorted(values)
    if len(v) == 1:
        return v[0], v[0], v[0]
    q = statistics.quantiles(v, n=10, method="inclusive")
    return statistics.median(v), q[0], q[-1]


def check(rows: list[str], seed: int, device: torch.device, x: torch.Tensor) -> str:
    """The logits of ``hand`` and ``accelerate`` against ``sj`` (fp32, torch path): what was checked."""
    from tfbench.backends.spikingjelly import _set_implementation

    wanted = [r for r in ("hand", "accelerate") if r in rows]
    if not wanted:
        return "nothing to check"
    _set_implementation("torch")
    with torch.no_grad():
        ref = build("sj", seed).to(device)(x)
        for row in wanted:
            torch.testing.assert_close(build(row, seed).to(device)(x), ref, rtol=1e-4, atol=1e-5)
    return f"{' and '.join(wanted)}: the same logits as SpikingJelly's LIFNode (fp32, rtol 1e-4)"


def run(args) -> str:
    from tfbench.results.environment import capture

    device = torch.device(args.device)
    rows = args.rows
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    cells: dict[tuple[str, int, str], Runner] = {}
    checked = None
    for T in args.T:
        x = (torch.rand(T, args.batch_size, 3, args.size, args.size, generator=gen) < 0.5).float().to(device)
        y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)
        if checked is None:
            checked = check(rows, args.seed, device, x)
        for precision in args.precision:
            runners = []
            for row in rows:
                r = Runner(row, build(row, args.seed), device, precision)
                cells[(row, T, precision)] = r
                try:
                    for _ in range(args.warmup):
                        r.step(x, y, timed=False)
                    if sj_implementation(row) is not None:
                        from tfbench.backends.spikingjelly import _forget_fallbacks, implementation

                        _forget_fallbacks("lif")
                        r.step(x, y, timed=False)
                        r.implementation = implementation(device, "lif")
                    runners.append(r)
                except RuntimeError as exc:     # SpikingJelly refusing its torch path under autocast, say
                    r.status = "n/a: " + str(exc).strip().splitlines()[-1][:100]
                    r.model = r.optimizer = None
            per_round = max(1, args.steps // args.rounds)
            for _ in range(args.rounds):
                for r in runners:
                    for _ in range(per_round):
                        r.step(x, y, timed=True)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                for r in runners:
                    r.collect()
            for r in runners:
                r.model = r.optimizer = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(f"T={T} {precision}: " + ", ".join(
                f"{r.row} {quantiles(r.step_ms)[0]:.2f} ms" for r in runners), file=sys.stderr, flush=True)
    env = capture(device)
    configs = [(T, p) for T in args.T for p in args.precision]
    head = " | ".join(f"T={T} {p}" for T, p in configs)
    align = " | ".join("---:" for _ in configs)

    def cell(row, T, p, fn):
        r = cells[(row, T, p)]
        return r.status if r.status != "ok" else fn(r)

    lines = [
        f"# SpikingJelly's spiking_resnet18: its LIFNode, swapped by hand for tfbench.lif, and tfbench.accelerate",
        "",
        f"{env.device}; torch {env.torch}, CUDA {env.cuda}, driver {env.driver}, SpikingJelly "
        f"{env.libraries.get('spikingjelly', '?')}, tfbench at {env.git_commit}; "
        f"{datetime.date.today().isoformat()}. `python scripts/zoo_handswap.py {' '.join(args.argv)}`",
        "",
        f"One process; input `[T, {args.batch_size}, 3, {args.size}, {args.size}]` (random spikes), 10 classes, "
        f"Adam (lr 1e-3); a step is `functional.reset_net`, forward under autocast, mean over T, "
        f"cross-entropy, `zero_grad`, backward, Adam. {args.warmup} warm-up steps per row, then "
        f"{args.rounds} rounds of {max(1, args.steps // args.rounds)} timed steps, the rows taking turns; "
        f"{'CUDA events' if device.type == 'cuda' else 'perf_counter'}. Checked first: {checked}.",
        "",
        "Step ms: median (p10-p90)",
        "",
        f"| model | {head} |",
        f"| --- | {align} |",
    ]
    for row in rows:
        vals = [cell(row, T, p, lambda r: "{:.2f} ({:.2f}-{:.2f})".format(*quantiles(r.step_ms))) for T, p in configs]
        lines.append(f"| {LABELS[row]} | " + " | ".join(vals) + " |")
    lines += ["", "Host ms per step (perf_counter, no synchronisation): total = forward (with reset_net) + "
              "backward + Adam, medians", "", f"| model | {head} |", f"| --- | {align} |"]
    for row in rows:
        vals = [cell(row, T, p, lambda r: "{:.2f} = {:.2f} + {:.2f} + {:.2f}".format(
            *(quantiles(r.host_ms[k])[0] for k in ("total", "forward", "backward", "adam")))) for T, p in configs]
        lines.append(f"| {LABELS[row]} | " + " | ".join(vals) + " |")
    impls = sorted({f"{r.row} {T} {p}: {r.implementation}" for (row, T, p), r in cells.items() if r.implementation})
    if impls:
        lines += ["", "SpikingJelly's implementation per cell: " + "; ".join(impls)]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the markdown table to write")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU, to test the script")
    ap.add_argument("--device", default=None, help="default: cuda when there is one (cpu with --smoke)")
    ap.add_argument("-T", default="4,32", help="time steps, comma-separated")
    ap.add_argument("--precision", default="fp32,bf16", help="fp32, bf16 (autocast), fp16; comma-separated")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--size", type=int, default=32, help="image height and width")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per row and configuration")
    ap.add_argument("--rounds", type=int, default=6, help="rounds the timed steps are split into, rows taking turns")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from: {', '.join(ROWS)}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.argv = argv
    if args.smoke:
        args.T, args.batch_size, args.steps, args.rounds, args.warmup = "2", 2, 2, 1, 1
        args.device = args.device or "cpu"
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.T = [int(t) for t in str(args.T).split(",")]
    args.precision = args.precision.split(",")
    args.rows = args.rows.split(",")
    for name, values, known in (("precision", args.precision, AMP), ("rows", args.rows, ROWS)):
        bad = [v for v in values if v not in known]
        if bad:
            ap.error(f"unknown {name} {', '.join(bad)}; choose from: {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if not args.out.parent.is_dir():
        raise SystemExit(f"{args.out.parent} is not a folder")
    text = run(args)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
