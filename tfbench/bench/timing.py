"""Timing done right: CUDA events around the region, warm-up first, median and spread of many repeats.

On a GPU each repeat is timed with a pair of CUDA events (no host clock, no sync inside the region);
on the CPU with ``time.perf_counter``. The memory-bandwidth floor is measured the same way, with a
large device-to-device copy, in the same process as what it is compared with.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: median, 10th and 90th percentile, over ``repeats`` timed calls."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: the relative spread."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else 0.0


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(times_ms: list[float]) -> Timing:
    values = sorted(times_ms)
    return Timing(statistics.median(values), _quantile(values, 0.1), _quantile(values, 0.9), len(values))


def time_fn(fn: Callable[[], object], device: torch.device | str, *, warmup: int = 5, repeats: int = 50,
            min_time_s: float = 0.0, max_time_s: float = 30.0) -> Timing:
    """Time ``fn()`` on ``device``: ``warmup`` untimed calls, then at least ``repeats`` timed ones.

    ``min_time_s`` keeps repeating (up to ``max_time_s``) so that very short calls get enough samples.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start_wall = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        pairs = []
        while len(pairs) < repeats or (time.perf_counter() - start_wall < min_time_s and len(pairs) < 100_000):
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            pairs.append((begin, end))
            if time.perf_counter() - start_wall > max_time_s and len(pairs) >= 3:
                break
        torch.cuda.synchronize(device)
        times = [b.elapsed_time(e) for b, e in pairs]
    else:
        while len(times) < repeats or (time.perf_counter() - start_wall < min_time_s and len(times) < 100_000):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            if time.perf_counter() - start_wall > max_time_s and len(times) >= 3:
                break
    return summarize(times)


def copy_bandwidth(device: torch.device | str, nbytes: int = 2 << 30, repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    device = torch.device(device)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    timing = time_fn(lambda: dst.copy_(src), device, warmup=3, repeats=repeats)
    return 2 * nbytes / (timing.median_ms * 1e-3)


class StepClock:
    """Times training steps alone: CUDA events around each step on a GPU (read once per epoch, after
    the epoch's closing synchronisation), ``perf_counter`` on the CPU. What happens between two
    ``run`` calls (fetching the next batch, reading the loss) is outside every timed region."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times_ms: list[float] = []
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def run(self, fn: Callable, *args):
        """``fn(*args)``, timed."""
        if self.device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            out = fn(*args)
            end.record()
            self._events.append((begin, end))
            return out
        t0 = time.perf_counter()
        out = fn(*args)
        self.times_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    def collect(self) -> None:
        """Read the recorded CUDA events; call with the device synchronised."""
        self.times_ms += [begin.elapsed_time(end) for begin, end in self._events]
        self._events.clear()


def synchronize(device: torch.device) -> None:
    """Wait for the device's work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_reset(device: torch.device | str) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device | str) -> int | None:
    """Peak bytes allocated on ``device`` since the last reset (None on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None
