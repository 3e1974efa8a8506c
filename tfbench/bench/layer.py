"""The single-layer sweep (the paper's Fig. 5): every backend on the same ``[T, N]`` input, for one
neuron (LIF, IF or PLIF: a ``tfbench.ops.neurons`` description).

For each cell: the backend's spikes are checked against the float64 reference first (``checked``),
then forward, backward or both are timed with CUDA events after warm-up (bench/timing.py), in eager
mode or replayed from a CUDA graph. The floor beside each time is the bytes the op must move
(docs/neurons.md: 12 B/element per direction in fp32, 6 in bf16/fp16; a backend that keeps less for
backward gives its own count, ``Backend.bytes_per_element``) over the copy bandwidth measured in
the same process. A cell that cannot run is recorded as "n/a: reason", "oom" or "error: ...",
and the sweep goes on.
"""

from __future__ import annotations

import datetime as _dt
import gc
from collections.abc import Callable
from pathlib import Path

import torch

from .. import backends as backend_registry
from ..backends import Unsupported
from ..ops.neurons import NeuronParams
from ..results import environment
from ..results.schema import LayerRecord
from .timing import copy_bandwidth, peak_memory, peak_memory_reset, time_fn

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DIRECTIONS = ("forward", "backward", "both")
MODES = ("eager", "graph")
CHECK_NEURONS = 1 << 16   # spikes checked against the float64 reference on this many neurons (cost stays small)
TIE_EPS = 1e-4            # membranes this close to threshold may round either way: excluded from the check


def bytes_per_element(precision: str, direction: str, steps: int = 1, backend: str | None = None) -> float:
    """Bytes each element must cross device memory: the backend's own count where it gives one
    (``Backend.bytes_per_element``), else docs/neurons.md "Floors": x, s, h forward; gs, h, gx backward
    (the same for every neuron: PLIF's partial sums of dL/dw are a few bytes per block)."""
    dtype = PRECISIONS[precision]
    rule = None
    if backend is not None:
        try:
            rule = backend_registry.get(backend).bytes_per_element
        except ValueError:
            rule = None  # an unknown backend is recorded as n/a below; its floor is the default one
    if rule is not None:
        return rule(dtype, steps, direction)
    size = torch.empty((), dtype=dtype).element_size()
    return (6 if direction == "both" else 3) * size


def _input(steps: int, n: int, dtype: torch.dtype, device: torch.device, p: NeuronParams, seed: int) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    scale = p.v_threshold * (p.tau if p.decay_input and p.tau != float("inf") else 1.0)
    x = torch.randn(steps, n, generator=g, device=device, dtype=torch.float32) * 0.8 + 0.6
    return (x * scale).to(dtype)


def check_spikes(layer: torch.nn.Module, x: torch.Tensor, p: NeuronParams) -> bool:
    """Whether the layer's spikes are right, on the first CHECK_NEURONS neurons.

    fp32: equal to the float64 reference away from ties. bf16/fp16: no more spikes differ from the
    float64 reference than twice the plain PyTorch loop's in that dtype (the STYLE.md yardstick).
    """
    from ..ops.reference import neuron_reference
    from .check import learned_of

    xs = x[:, :CHECK_NEURONS].contiguous()
    learned = learned_of(p)
    with torch.no_grad():
        s = layer(xs).double()
        ref, _, h, _ = neuron_reference(xs.double(), None, p, learned, return_membrane=True)
        if xs.dtype != torch.float32:
            plain, _ = neuron_reference(xs, None, p, tuple(w.to(xs.device) for w in learned))
            wrong = (s != ref.to(s.device)).double().mean().item()
            return wrong <= 2 * (plain.double() != ref).double().mean().item() + 1e-4
        near = ((h - p.v_threshold).abs() < TIE_EPS).any(0)   # ties: rounding decides the spike
    return bool(torch.equal(s[:, ~near], ref[:, ~near]))


def _grad(layer, x, gs):
    """Forward and backward, returning dL/dx: nothing accumulates into x.grad (that would add a pass)."""
    return torch.autograd.grad(layer(x), x, gs)


def _timed_call(layer, x, gs, direction: str, device: torch.device, warmup: int, repeats: int):
    if direction == "forward":
        return time_fn(lambda: layer(x), device, warmup=warmup, repeats=repeats)
    if direction == "both":
        return time_fn(lambda: _grad(layer, x, gs), device, warmup=warmup, repeats=repeats)
    # backward alone: an untimed forward before each timed backward
    for _ in range(warmup):
        _grad(layer, x, gs)
    times = []
    for _ in range(repeats):
        out = layer(x)
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            torch.autograd.grad(out, x, gs)
            end.record()
            torch.cuda.synchronize(device)
            times.append(begin.elapsed_time(end))
        else:
            import time
            t0 = time.perf_counter()
            torch.autograd.grad(out, x, gs)
            times.append((time.perf_counter() - t0) * 1e3)
    from .timing import summarize
    return summarize(times)


def _graph_call(layer, x, gs, direction: str, device: torch.device, warmup: int, repeats: int):
    if device.type != "cuda":
        raise Unsupported("CUDA graphs need a GPU")
    if direction != "both":
        raise Unsupported("graph mode times forward+backward together")
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            _grad(layer, x, gs)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _grad(layer, x, gs)
    return time_fn(graph.replay, device, warmup=warmup, repeats=repeats)


def run_cell(backend: str, precision: str, steps: int, n: int, direction: str, mode: str, device: torch.device,
             p: NeuronParams, bandwidth: float | None, env: dict, warmup: int = 5, repeats: int = 50,
             seed: int = 0) -> LayerRecord:
    """Check, then time one (backend, precision, T, N, direction, mode) cell."""
    base = dict(backend=backend, precision=precision, T=steps, N=n, direction=direction, mode=mode,
                device=str(device), device_name=env.get("device", ""), neuron=repr(p), env=env,
                timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    nbytes = bytes_per_element(precision, direction, steps, backend)
    floor = None if bandwidth is None else nbytes * steps * n / bandwidth * 1e3
    base.update(bytes_per_element=nbytes, floor_ms=floor,
                copy_bandwidth_gbs=None if bandwidth is None else bandwidth / 1e9)
    try:
        b = backend_registry.get(backend)
    except ValueError as exc:
        return LayerRecord(**base, status=f"n/a: {exc}", checked=False)
    reason = b.unavailable(device)
    if reason:
        return LayerRecord(**base, status=f"n/a: {reason}", checked=False)
    implementation = ""
    try:
        layer = b.layer(p).to(device)   # a library's buffers (snnTorch's threshold, beta) live on the device
        x = _input(steps, n, PRECISIONS[precision], device, p, seed).requires_grad_(True)
        gs = torch.randn(steps, n, device=device, dtype=PRECISIONS[precision])
        checked = check_spikes(layer, x.detach(), p)
        if backend.startswith("spikingjelly"):
            from ..backends.spikingjelly import implementation as sj_implementation
            implementation = sj_implementation(device, getattr(layer, "kind", None))
        peak_memory_reset(device)
        call = _graph_call if mode == "graph" else _timed_call
        timing = call(layer, x, gs, direction, device, warmup, repeats)
        record = LayerRecord(**base, status="ok", checked=checked, implementation=implementation,
                             median_ms=timing.median_ms, p10_ms=timing.p10_ms, p90_ms=timing.p90_ms,
                             repeats=timing.repeats, peak_mem_bytes=peak_memory(device))
    except Unsupported as exc:
        record = LayerRecord(**base, status=f"n/a: {exc}", checked=False, implementation=implementation)
    except torch.OutOfMemoryError:
        record = LayerRecord(**base, status="oom", checked=False, implementation=implementation)
    except Exception as exc:  # a failing cell is recorded; the sweep goes on
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        record = LayerRecord(**base, status=f"error: {type(exc).__name__}: {message[:300]}", checked=False,
                             implementation=implementation)
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return record


def run_layer_sweep(backends: list[str], Ts: list[int], Ns: list[int], precisions: list[str],
                    directions: list[str], device: str, modes: list[str], params: NeuronParams,
                    store_path: Path | None = None, force: bool = False,
                    progress: Callable[[LayerRecord], None] | None = None,
                    warmup: int = 5, repeats: int = 50) -> list[LayerRecord]:
    """Run every cell of the grid; append each record to ``store_path`` (skipping done cells unless ``force``)."""
    dev = torch.device(device)
    for value, valid, what in [(precisions, PRECISIONS, "precision"), (directions, DIRECTIONS, "direction"),
                               (modes, MODES, "mode")]:
        for v in value:
            if v not in valid:
                raise ValueError(f"unknown {what} {v!r}; choose from: {', '.join(valid)}")
    params = params.validate()
    env = environment.capture(dev).as_dict()
    bandwidth = copy_bandwidth(dev) if dev.type == "cuda" else None
    store = None
    if store_path is not None:
        from ..results import store as store_module
        store = store_module
    records = []
    for precision in precisions:
        for steps in Ts:
            for n in Ns:
                for direction in directions:
                    for mode in modes:
                        if mode == "graph" and direction != "both":
                            continue
                        for backend in backends:
                            probe = LayerRecord(backend=backend, precision=precision, T=steps, N=n,
                                                direction=direction, mode=mode, device=str(dev),
                                                device_name=env.get("device", ""), neuron=repr(params),
                                                status="", checked=False)
                            if store is not None and not force and store.has(store_path, probe.key):
                                continue
                            record = run_cell(backend, precision, steps, n, direction, mode, dev, params,
                                              bandwidth, env, warmup=warmup, repeats=repeats)
                            if store is not None:
                                store.append(store_path, record.as_dict())
                            records.append(record)
                            if progress is not None:
                                progress(record)
    return records
