"""Where a training step's time goes: ``torch.profiler`` over steady steps of a real ``train`` run.

The run is the one ``tfbench run`` makes (same model, data, options); the profiler records
``ACTIVE_STEPS`` training steps of its first epoch (``train``'s ``on_step`` hook steps it), which
come after the run's warm-up, so compilation, autotuning and graph capture stay out. On a GPU every kernel is sorted by its name
into a category (the neuron's own kernels, convolution, BatchNorm, elementwise ops, layout
copies, ...); on a CPU every ATen op by its name. The step time beside them is the run's median
step (CUDA events, ``train``); what the kernels do not cover of it is the device idling: launch
and Python overhead, which a CUDA graph removes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from ..results.schema import RunConfig
from .config import normalize
from .train import train

# Steps recorded: enough for a stable per-step mean, few enough that the trace stays small.
ACTIVE_STEPS = 5
# Steps between the warm-up and the recorded ones: the first steps after warm-up still settle
# (allocator growth, the first steady launch of each kernel).
SETTLE_STEPS = 2
STEPS = SETTLE_STEPS + ACTIVE_STEPS   # the profiled run's steps (its warm-up comes before them)

# Kernel (GPU) or op (CPU) name fragments, lower case, per category; the first matching category
# wins, so pooling (tfbench's max-pool of spike bits, cuDNN's pooling) comes before the neurons and
# convolution, BatchNorm and layout transforms (whose cuDNN kernels also say "cudnn") before
# convolution, and a convolution's implicit GEMM before the plain GEMM of the classifier. The neurons:
# tfbench's kernels (tfb_*, kernels/neurons.cu: with --lean BatchNorm's statistics, its normalisation and
# its backward are folded into them, and the spikes' bits) and ops (tfbench::*), and the peers' fused LIF
# kernels.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pooling", ("pool",)),
    ("neuron (fused kernels)", ("tfb_", "tfbench::", "lif")),
    ("batchnorm", ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "welford", "_bn_")),
    ("layout copies (NCHW<->NHWC, contiguous)", ("nchwtonhwc", "nhwctonchw", "transpose", "copy", "clone",
                                                 "contiguous", "permute")),
    ("convolution", ("conv", "implicit_gemm", "fprop", "dgrad", "wgrad", "winograd", "xmma", "cudnn")),
    ("optimizer (Adam)", ("adam", "multi_tensor", "foreach", "_fused_", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("classifier GEMM", ("gemm", "addmm", "aten::mm", "cublas", "cutlass")),
    ("reductions (mean over T, loss)", ("reduce", "mean", "sum", "softmax", "nll", "cross_entropy")),
    ("fill / zero", ("memset", "fill", "zero")),
    ("elementwise (incl. a neuron written as PyTorch ops)", ("elementwise", "add", "mul", "sub", "div", "where",
                                                             "sigmoid", "heaviside", "ge", "gt", "relu",
                                                             "triton", "functor", "threshold")),
)
OTHER = "other"


@dataclass(frozen=True)
class StepProfile:
    """A training step's time by category. Times are per step, in ms."""

    config: RunConfig
    status: str                                   # the run's status ("ok", "oom", ...)
    device: str                                   # "cuda" (kernel times) or "cpu" (op self times)
    step_ms: float | None                         # the run's median step (CUDA events / perf_counter)
    busy_ms: float                                # sum of the recorded kernels (GPU) or op self times (CPU)
    categories: dict[str, float] = field(default_factory=dict)          # category -> ms per step
    top: list[tuple[str, str, float, int]] = field(default_factory=list)  # (name, category, ms/step, calls/step)

    @property
    def idle_ms(self) -> float | None:
        """The step's time the device spent not running a kernel (launch and Python overhead); GPU only."""
        if self.step_ms is None or self.device != "cuda":
            return None
        return max(self.step_ms - self.busy_ms, 0.0)


def category(name: str) -> str:
    """The category of a kernel or op name (``CATEGORIES``; ``OTHER`` when none matches)."""
    low = name.lower()
    for cat, fragments in CATEGORIES:
        if any(f in low for f in fragments):
            return cat
    return OTHER


def profile_step(cfg: RunConfig, top: int = 12) -> StepProfile:
    """Train ``cfg`` (``max_steps`` must leave at least settle + active steps in epoch 0) and return
    where its steady training steps spend their time; the ``top`` kernels (ops) by time too."""
    cfg = normalize(cfg)
    if cfg.max_steps is not None and cfg.max_steps < STEPS:
        raise ValueError(f"max steps {cfg.max_steps} is too few to profile: the profile needs {STEPS} (settle "
                         f"{SETTLE_STEPS}, recorded {ACTIVE_STEPS})")
    cfg = dataclasses.replace(cfg, epochs=1)
    gpu = cfg.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    plan = schedule(wait=SETTLE_STEPS - 1, warmup=1, active=ACTIVE_STEPS, repeat=1)
    with profile(activities=activities, schedule=plan) as prof:
        rec = train(cfg, on_step=lambda epoch, i: prof.step() if epoch == 0 else None)
    if rec.status != "ok":
        return StepProfile(cfg, rec.status, "cuda" if gpu else "cpu", None, 0.0)
    per_name: dict[str, list[float]] = {}
    for ev in prof.key_averages():
        if getattr(ev, "is_user_annotation", False) or ev.key.startswith("ProfilerStep") or "#" in ev.key:
            continue    # a span (a profiler step, record_function) that covers kernels already counted
        if gpu:
            us = ev.self_device_time_total
            if us <= 0 or ev.device_type != torch.autograd.DeviceType.CUDA:
                continue
        else:
            us = ev.self_cpu_time_total
            if us <= 0 or not ev.key.startswith(("aten::", "tfbench::")) and "lif" not in ev.key.lower():
                continue
        acc = per_name.setdefault(ev.key, [0.0, 0])
        acc[0] += us / 1e3 / ACTIVE_STEPS
        acc[1] += ev.count
    cats: dict[str, float] = {}
    for name, (ms, _) in per_name.items():
        cats[category(name)] = cats.get(category(name), 0.0) + ms
    ranked = sorted(per_name.items(), key=lambda kv: -kv[1][0])[:top]
    return StepProfile(cfg, "ok", "cuda" if gpu else "cpu", rec.step_ms, sum(cats.values()),
                       dict(sorted(cats.items(), key=lambda kv: -kv[1])),
                       [(name, category(name), ms, round(n / ACTIVE_STEPS)) for name, (ms, n) in ranked])


def as_table(p: StepProfile) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Two tables: the categories (ms per step, share of the step) and the top kernels (ops)."""
    import pandas as pd

    total = p.step_ms or p.busy_ms or 1.0
    def row(what: str, ms: float) -> dict:
        return {"category": what, "ms_per_step": round(ms, 4), "share": f"{100 * ms / total:.1f}%"}

    rows = [row(c, ms) for c, ms in p.categories.items()]
    if p.idle_ms is not None:
        rows.append(row("device idle (launch and Python overhead)", p.idle_ms))
    rows.append(row("step (median of the run's timed steps)" if p.step_ms is not None else "busy total", total))
    top = [{"kernel" if p.device == "cuda" else "op": name[:90], "category": cat, "ms_per_step": round(ms, 4),
            "calls_per_step": calls} for name, cat, ms, calls in p.top]
    return pd.DataFrame(rows), pd.DataFrame(top)
