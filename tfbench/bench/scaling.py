"""The temporal pipeline's single-layer scaling (the paper's Fig. 6): one LIF layer, T split over k GPUs.

Run in every rank of a torchrun job of ``max(gpus)`` processes (``tfbench scale`` launches it). For
each T and each k, ranks 0..k-1 form the pipeline (a process subgroup; the others wait), each
holding its segment's input already on its device. Two modes, forward and backward timed
separately: per repeat, a barrier of the k ranks, then CUDA events around the rank's part
(``perf_counter`` on CPU ranks); the repeat's time is the largest over the ranks (the last rank
ends last). Before timing, the same pipeline on a small layer of the same T is checked against
one process's op: spikes equal, dL/dx equal to 1e-6.

- ``latency``: one run, its N neurons in C chunks stored chunk-major (chunk c is one contiguous
  ``[T/k, N/C]`` tensor the op takes as it is) that flow from rank to rank
  (tfbench/parallel/temporal.py). Beside it: Ts (the k=1 time of the same T and direction), Tc (one
  boundary hop: all of a layer's membrane chunks from one rank to the next, half a measured round
  trip between ranks 0 and 1), the paper's model ``speedup(k) = k*Ts / (k*(k-1)*Tc + Ts)`` and its
  best k = sqrt(Ts/Tc).
- ``throughput``: R independent runs pipelined through the ranks, the whole layer per segment
  (tfbench/parallel/runs.py), as the paper averaged 1,000 runs. The timed repeat is all R runs. The
  runs' inputs cycle through ``INPUT_POOL`` distinct buffers per rank (R distinct inputs of up to
  16 GB each do not fit; a segment is thousands of times the L2 cache, so a reused buffer streams
  from memory like a fresh one); the check runs ``CHECK_RUNS`` runs with distinct inputs. Beside
  it: Ts (one run on one GPU: the k=1 time of R runs over R), tseg (one segment of T/k steps of the
  whole layer, timed alone on every rank: the slowest rank's median), Tc (one hop of the whole
  membrane, N values in one message) and the model ``R*Ts / (R*tseg + (k-1)*(tseg + Tc))``.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch
import torch.distributed as dist

from ..ops.lif import PRESETS
from ..parallel import segment_op
from ..parallel.runs import backward_runs, forward_runs
from ..parallel.segment_op import LIFParams
from ..parallel.temporal import Link, backward_segment, chunk_bounds, forward_segment
from ..results.schema import SCALING_MODES as MODES
from ..results.schema import ScalingRecord, na
from . import timing
from .layer import PRECISIONS
from .config import neuron_text
from .records import capture_env

DIRECTIONS = ("forward", "backward")
# Neurons of the correctness check's layer per chunk: small enough to be instant, several per chunk.
CHECK_NEURONS_PER_CHUNK = 64
# Fraction of a GPU's free memory a case may plan to use (the rest: allocator slack, NCCL buffers).
MEMORY_HEADROOM = 0.9
# Runs of the throughput check: several in flight at once, each its own input.
CHECK_RUNS = 3
# Distinct input buffers (and kept membranes) the timed runs cycle through: two, so that consecutive
# runs never read the same memory; one where two do not fit (T=4096 on one GPU of 80 GB).
INPUT_POOL = 2


@dataclass(frozen=True)
class ScalingConfig:
    """The sweep: every (T, gpus) with forward and backward timed, for each chunk count (latency) and
    each number of runs (throughput)."""

    Ts: tuple[int, ...] = (1024, 2048, 4096)
    N: int = 1_000_000
    gpus: tuple[int, ...] = (1, 2, 4)
    chunks: tuple[int, ...] = (16,)
    precision: str = "fp32"
    repeats: int = 10
    warmup: int = 3
    unroll: int | None = None
    seed: int = 0
    params: LIFParams = field(default_factory=lambda: PRESETS["paper"])
    modes: tuple[str, ...] = MODES
    runs: tuple[int, ...] = (128,)


def model_speedup(k: int, ts: float, tc: float) -> float:
    """The paper's model: k*Ts / (k*(k-1)*Tc + Ts), i.e. Ts over (Ts/k + (k-1)*Tc)."""
    return k * ts / (k * (k - 1) * tc + ts)


def pipelined_model_speedup(runs: int, k: int, ts: float, tseg: float, tc: float) -> float:
    """R runs pipelined through k ranks: R*Ts / (R*tseg + (k-1)*(tseg + Tc)); the last rank ends after R
    segments and the fill (k-1 segments and hops). With tseg = Ts/k and Tc << tseg: k*R / (R + k - 1)."""
    return runs * ts / (runs * tseg + (k - 1) * (tseg + tc))


def optimal_gpus(ts: float, tc: float) -> float | None:
    """sqrt(Ts/Tc): the k where Ts/k + (k-1)*Tc is least (None without a hop time)."""
    return math.sqrt(ts / tc) if tc and tc > 0 else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    """One rank's time of ``fn()`` (CUDA events or perf_counter), after a barrier of ``group``."""

    def __init__(self, device: torch.device, group):
        self.device, self.group = device, group

    def __call__(self, fn) -> float:
        _sync(self.device)
        dist.barrier(group=self.group)
        if self.device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            return begin.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def _max_over(values: list[float], group, device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return t.tolist()


def _chunks(steps: int, n: int, chunks: int, dtype: torch.dtype, device: torch.device,
            generator: torch.Generator) -> list[torch.Tensor]:
    """A segment's input, chunk-major in one buffer: per chunk a contiguous ``[steps, n_c]`` view."""
    bounds = chunk_bounds(n, chunks)
    buf = torch.empty(steps * n, dtype=torch.float32, device=device)
    buf.normal_(0.3, 0.5, generator=generator)    # about a third of the paper neuron's steps spike
    buf = buf.to(dtype)
    out, offset = [], 0
    for lo, hi in bounds:
        out.append(buf[offset:offset + steps * (hi - lo)].view(steps, hi - lo))
        offset += steps * (hi - lo)
    return out


def _check(cfg: ScalingConfig, T: int, k: int, chunks: int, link: Link, group, device: torch.device) -> bool:
    """The k-rank pipeline on a small layer of the same T equals one op call (on the group's rank 0)."""
    dtype = PRECISIONS[cfg.precision]
    n = CHECK_NEURONS_PER_CHUNK * chunks
    g = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    x = (torch.randn(T, n, device=device, generator=g) * 0.5 + 0.3).to(dtype)
    gs = torch.randn(T, n, device=device, generator=g).to(dtype)
    steps, r = T // k, link.rank
    bounds = chunk_bounds(n, chunks)
    seg = slice(r * steps, (r + 1) * steps)
    xs = [x[seg, lo:hi].contiguous() for lo, hi in bounds]
    s, h = forward_segment(xs, cfg.params, link, 0)
    gx = backward_segment([gs[seg, lo:hi].contiguous() for lo, hi in bounds], h, cfg.params, link, 0)
    link.flush()
    mine = torch.cat([torch.cat(s, 1), torch.cat(gx, 1)], 1).float().contiguous()
    parts = [torch.empty_like(mine) for _ in range(k)]
    dist.all_gather(parts, mine, group=group)
    ok = torch.zeros((), device=device)
    if r == 0:
        got = torch.cat(parts, 0)
        xr = x.clone().requires_grad_(True)
        want_s, _ = segment_op.reference(xr, None, cfg.params)
        (want_gx,) = torch.autograd.grad(want_s, xr, gs)
        same = torch.equal(got[:, :n], want_s.detach().float()) and torch.allclose(
            got[:, n:], want_gx.float(), rtol=1e-6, atol=1e-6)
        ok.fill_(1.0 if same else 0.0)
    dist.broadcast(ok, src=link.ranks[0], group=group)
    return bool(ok.item())


def _fits(steps: int, n: int, itemsize: int, group, device: torch.device, tensors: int = 3) -> bool:
    """Whether ``tensors`` ``[steps, n]`` tensors (latency: input, and spikes + membrane or gradient +
    membrane) fit on every rank of ``group``. Memory cached by earlier cases is given back first."""
    if device.type != "cuda":
        return True
    gc.collect()
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    need = tensors * steps * n * itemsize
    ok = torch.tensor([1.0 if need <= MEMORY_HEADROOM * free else 0.0], device=device)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=group)
    return bool(ok.item())


def _measure(cfg: ScalingConfig, T: int, k: int, chunks: int, group, device: torch.device) -> dict:
    """Forward and backward times of the k-rank pipeline for T (on ranks 0..k-1); result on each."""
    dtype = PRECISIONS[cfg.precision]
    rank = dist.get_rank()
    link = Link(ranks=list(range(k)), rank=rank, group=group, chunks=chunks)
    out: dict = {"checked": False}
    try:
        out["checked"] = _check(cfg, T, k, chunks, link, group, device)
    except Exception as e:  # noqa: BLE001 - recorded as this case's status
        out["status"] = f"error: {type(e).__name__}: {' '.join(str(e).split())}"
        return out
    steps = T // k
    if not _fits(steps, cfg.N, torch.finfo(dtype).bits // 8, group, device):
        out["status"] = "oom"
        return out
    timing.peak_memory_reset(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1009 + rank)
    xs = _chunks(steps, cfg.N, chunks, dtype, device, gen)
    timer = _Timer(device, group)
    times: dict[str, list[float]] = {d: [] for d in DIRECTIONS}
    for i in range(cfg.warmup + cfg.repeats):
        kept: list = []
        t = timer(lambda: kept.append(forward_segment(xs, cfg.params, link, 0)))
        link.flush()
        if i >= cfg.warmup:
            times["forward"].append(t)
        del kept
    s, h = forward_segment(xs, cfg.params, link, 0)
    link.flush()
    del s
    for i in range(cfg.warmup + cfg.repeats):   # dL/ds: the input's values (any values time the same)
        kept = []
        t = timer(lambda: kept.append(backward_segment(xs, h, cfg.params, link, 0)))
        link.flush()
        if i >= cfg.warmup:
            times["backward"].append(t)
        del kept
    del h, xs
    _sync(device)
    for d in DIRECTIONS:
        times[d] = _max_over(times[d], group, device)
    peak = timing.peak_memory(device)
    if peak is not None:
        peak = int(_max_over([float(peak)], group, device)[0])
    out.update(status="ok", times=times, peak=peak)
    return out


def _check_runs(cfg: ScalingConfig, T: int, k: int, runs: int, link: Link, group, device: torch.device) -> bool:
    """``runs`` pipelined runs on a small layer of the same T, each its own input, equal one op call
    each (checked on the group's rank 0)."""
    dtype = PRECISIONS[cfg.precision]
    n = CHECK_NEURONS_PER_CHUNK
    g = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    x = (torch.randn(runs, T, n, device=device, generator=g) * 0.5 + 0.3).to(dtype)
    gs = torch.randn(runs, T, n, device=device, generator=g).to(dtype)
    steps, r = T // k, link.rank
    seg = slice(r * steps, (r + 1) * steps)
    fwd = forward_runs(runs, lambda q: x[q, seg].contiguous(), cfg.params, link)
    bwd = backward_runs(runs, lambda q: gs[q, seg].contiguous(), lambda q: fwd[q][1], cfg.params, link)
    link.flush()
    mine = torch.stack([torch.cat([f[0], b[0]], 1) for f, b in zip(fwd, bwd)]).float().contiguous()
    parts = [torch.empty_like(mine) for _ in range(k)]
    dist.all_gather(parts, mine, group=group)
    ok = torch.zeros((), device=device)
    if r == 0:
        got = torch.cat(parts, 1)               # [runs, T, 2n]: the ranks' segments in order
        same = True
        for q in range(runs):
            xr = x[q].clone().requires_grad_(True)
            want_s, _ = segment_op.reference(xr, None, cfg.params)
            (want_gx,) = torch.autograd.grad(want_s, xr, gs[q])
            same = same and torch.equal(got[q, :, :n], want_s.detach().float()) and torch.allclose(
                got[q, :, n:], want_gx.float(), rtol=1e-6, atol=1e-6)
        ok.fill_(1.0 if same else 0.0)
    dist.broadcast(ok, src=link.ranks[0], group=group)
    return bool(ok.item())


def _measure_runs(cfg: ScalingConfig, T: int, k: int, runs: int, group, device: torch.device) -> dict:
    """Forward and backward times of ``runs`` independent runs pipelined through k ranks, and of one
    segment alone on each rank (``tseg``); the result on each of ranks 0..k-1."""
    dtype = PRECISIONS[cfg.precision]
    rank = dist.get_rank()
    link = Link(ranks=list(range(k)), rank=rank, group=group, chunks=1, micro_batches=runs)
    out: dict = {"checked": False}
    try:
        out["checked"] = _check_runs(cfg, T, k, min(runs, CHECK_RUNS), link, group, device)
    except Exception as e:  # noqa: BLE001 - recorded as this case's status
        out["status"] = f"error: {type(e).__name__}: {' '.join(str(e).split())}"
        return out
    steps, itemsize = T // k, torch.finfo(dtype).bits // 8
    # inputs and kept membranes of the pool, and at most three more at once (spikes + h of the run
    # being written, or dL/dx, plus the segment timed alone)
    pool = next((p for p in (min(runs, INPUT_POOL), 1) if _fits(steps, cfg.N, itemsize, group, device, 2 * p + 3)),
                None)
    if pool is None:
        out["status"] = "oom"
        return out
    timing.peak_memory_reset(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1009 + rank)
    xs = [_chunks(steps, cfg.N, 1, dtype, device, gen)[0] for _ in range(pool)]
    timer = _Timer(device, group)
    p = cfg.params
    reps = range(cfg.warmup + cfg.repeats)
    # one segment of the whole layer alone (no messages): what each pipeline stage costs
    seg = {"forward": [timer(lambda: segment_op.forward(xs[0], None, p, True)) for _ in reps][cfg.warmup:]}
    _, h0, _ = segment_op.forward(xs[0], None, p, False)
    seg["backward"] = [timer(lambda: segment_op.backward(xs[0], h0, None, p, True)) for _ in reps][cfg.warmup:]
    del h0

    def drop(*_) -> None:    # a run's outputs are let go as soon as it is done: memory stays bounded
        return None

    times: dict[str, list[float]] = {d: [] for d in DIRECTIONS}
    for i in reps:
        t = timer(lambda: forward_runs(runs, lambda r: xs[r % pool], p, link, emit=drop))
        link.flush()
        if i >= cfg.warmup:
            times["forward"].append(t)
    hs = [segment_op.forward(x, None, p, False)[1] for x in xs]
    for i in reps:   # dL/ds: the input's values (any values time the same)
        t = timer(lambda: backward_runs(runs, lambda r: xs[r % pool], lambda r: hs[r % pool], p, link, emit=drop))
        link.flush()
        if i >= cfg.warmup:
            times["backward"].append(t)
    del hs, xs
    _sync(device)
    tseg = {}
    for d in DIRECTIONS:
        times[d] = _max_over(times[d], group, device)
        tseg[d] = _max_over([timing.summarize(seg[d]).median_ms], group, device)[0]
    peak = timing.peak_memory(device)
    if peak is not None:
        peak = int(_max_over([float(peak)], group, device)[0])
    out.update(status="ok", times=times, tseg=tseg, peak=peak)
    return out


def hop_time(cfg: ScalingConfig, chunks: int, device: torch.device) -> float | None:
    """Tc in ms: all of a layer's membrane chunks (N values, fp32) from rank 0 to rank 1, half the
    median round trip (ranks 0 and 1 only; None with one rank). Every rank must call it."""
    if dist.get_world_size() < 2:
        return None
    group = dist.new_group([0, 1])
    rank = dist.get_rank()
    result = None
    if rank < 2:
        bounds = chunk_bounds(cfg.N, chunks)
        bufs = [torch.zeros(hi - lo, device=device) for lo, hi in bounds]
        peer = 1 - rank
        timer = _Timer(device, group)

        def round_trip() -> None:
            for phase in (0, 1):
                sending = (phase == 0) == (rank == 0)
                works = [(dist.isend if sending else dist.irecv)(b, peer, group=group, tag=phase * len(bufs) + c)
                         for c, b in enumerate(bufs)]
                for w in works:
                    w.wait()

        times = [timer(round_trip) for _ in range(cfg.warmup + cfg.repeats)][cfg.warmup:]
        result = timing.summarize(times).median_ms / 2
    dist.barrier()
    return result


def run(cfg: ScalingConfig, device: torch.device) -> list[ScalingRecord]:
    """The sweep, in every rank of the job; the records on rank 0 (an empty list elsewhere)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    bad = [k for k in cfg.gpus if k > world]
    if bad:
        raise ValueError(f"gpus {bad} need more than the job's {world} processes")
    unknown = [m for m in cfg.modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown scaling mode {unknown[0]!r}; choose from: {', '.join(MODES)}")
    with segment_op.unroll(cfg.unroll):
        groups = {k: dist.new_group(list(range(k))) for k in sorted(set(cfg.gpus))}
        hop_chunks = sorted(set(cfg.chunks if "latency" in cfg.modes else ()) |
                            ({1} if "throughput" in cfg.modes else set()))
        hops = {c: hop_time(cfg, c, device) for c in hop_chunks}
        results: dict[tuple[str, int, int, int], dict] = {}   # (mode, T, k, chunks or runs)
        for T in cfg.Ts:
            for k in sorted(set(cfg.gpus)):
                cases = [("latency", c) for c in (cfg.chunks if k > 1 else (1,)) if "latency" in cfg.modes]
                cases += [("throughput", r) for r in cfg.runs if "throughput" in cfg.modes]
                for mode, c in cases:
                    if T % k:
                        res = {"status": na(f"T={T} is not divisible by {k} GPUs"), "checked": False}
                    elif rank < k:
                        measure = _measure if mode == "latency" else _measure_runs
                        res = measure(cfg, T, k, c, groups[k], device)
                    else:
                        res = {}
                    results[(mode, T, k, c)] = res
                    dist.barrier()
    if rank != 0:
        return []
    env = capture_env(device)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    for (mode, T, k, c), res in results.items():
        for d in DIRECTIONS:
            tm = timing.summarize(res["times"][d]) if res.get("status") == "ok" else None
            common = dict(backend="tfbench", precision=cfg.precision, T=T, N=cfg.N, gpus=k, direction=d,
                          device=device.type, device_name=env.device, neuron=neuron_text(cfg.params),
                          status=res.get("status", "error: no result"), checked=bool(res.get("checked")),
                          unroll=cfg.unroll, mode=mode, median_ms=tm.median_ms if tm else None,
                          p10_ms=tm.p10_ms if tm else None, p90_ms=tm.p90_ms if tm else None,
                          repeats=tm.repeats if tm else 0, peak_mem_bytes=res.get("peak"), env=env.as_dict(),
                          timestamp=stamp)
            if mode == "latency":
                records.append(ScalingRecord(chunks=c, runs=1, **common, **_latency_model(
                    tm, results.get(("latency", T, 1, 1), {}), d, k,
                    hops.get(c) if k > 1 else hops.get(cfg.chunks[0]))))
            else:
                records.append(ScalingRecord(chunks=1, runs=c, **common, **_throughput_model(
                    tm, results.get(("throughput", T, 1, c), {}), res, d, k, c, hops.get(1))))
    return records


def _latency_model(tm, base: dict, d: str, k: int, tc: float | None) -> dict:
    """Ts, Tc, the measured speed-up and the paper's model for a latency record."""
    ts = timing.summarize(base["times"][d]).median_ms if base.get("status") == "ok" else None
    speedup = ts / tm.median_ms if (tm and ts) else None
    return dict(ts_ms=ts, tc_ms=tc, speedup=speedup,
                model_speedup=model_speedup(k, ts, tc) if (ts and tc is not None) else None,
                efficiency=speedup / k if speedup else None,
                optimal_gpus=optimal_gpus(ts, tc) if (ts and tc) else None)


def _throughput_model(tm, base: dict, res: dict, d: str, k: int, runs: int, tc: float | None) -> dict:
    """Ts (one run on one GPU), tseg, Tc, the measured speed-up and the pipelined runs' model."""
    one = timing.summarize(base["times"][d]).median_ms if base.get("status") == "ok" else None
    ts = one / runs if one else None
    tseg = res.get("tseg", {}).get(d) if res.get("status") == "ok" else None
    speedup = one / tm.median_ms if (tm and one) else None
    hop = tc if k > 1 else 0.0
    model = pipelined_model_speedup(runs, k, ts, tseg, hop) if (ts and tseg and hop is not None) else None
    return dict(ts_ms=ts, tc_ms=tc if k > 1 else None, tseg_ms=tseg, speedup=speedup, model_speedup=model,
                efficiency=speedup / k if speedup else None, optimal_gpus=None)
