"""The fused LIF op as the pipelines call it: the one place tfbench/parallel touches the op's API.

A time segment of a layer runs the op from a given membrane ``v0`` to its final membrane ``v_T``
(forward) and back from ``dL/dv_T`` to ``dL/dv0`` (backward); the pipelines (temporal.py, runs.py)
pass those two tensors from rank to rank and call nothing else of the op. bench/scaling.py also
reaches the op only through here (the reference it checks against and the kernel's unroll).

When the op's API changes, this module is what changes: keep the five names below and their
contracts (shapes, dtypes, ``None`` for a state not asked for).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor

from ..ops.lif import LIFParams, lif
# The op's host functions (what lif()'s eager path calls), not torch.ops.tfbench.*: the dispatcher's
# first call in a process imports torch's compiler stack (~2 s on a CPU), which the wavefront would
# pay once per rank in turn, and it costs ~20 us more per call (per chunk or run here).
from ..ops.lif.op import _backward_impl, _forward_impl

__all__ = ["LIFParams", "backward", "forward", "membrane_dtype", "reference", "unroll"]


def membrane_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of ``v0``/``v_T`` and their gradients for storage ``dtype``: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def forward(x: Tensor, v0: Tensor | None, p: LIFParams, want_v_last: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """One segment forward, no autograd: ``x`` ``[steps, *]`` (fp32, bf16, fp16 or fp64), ``v0`` ``[*]`` in
    ``membrane_dtype(x.dtype)`` or None (the resting membrane). Returns the spikes and the kept
    pre-reset membrane h (each x's shape and dtype) and ``v_T`` ``[*]`` (None unless ``want_v_last``)."""
    s, h, v_last = _forward_impl(x, v0, p, want_v_last)
    return s, h, (v_last if want_v_last else None)


def backward(gs: Tensor, h: Tensor, gv_last: Tensor | None, p: LIFParams,
             want_gv0: bool) -> tuple[Tensor, Tensor | None]:
    """One segment backward: ``gs`` dL/ds (h's shape, any float dtype), ``h`` from ``forward``, ``gv_last``
    dL/dv_T ``[*]`` or None (zero). Returns dL/dx (h's shape and dtype) and dL/dv0 (None unless ``want_gv0``)."""
    gx, gv0 = _backward_impl(gs, h, gv_last, p, want_gv0)
    return gx, (gv0 if want_gv0 else None)


def reference(x: Tensor, v0: Tensor | None, p: LIFParams) -> tuple[Tensor, Tensor]:
    """All of ``x``'s steps in one call of the public op, with autograd: ``(spikes, v_T)``. What the
    pipelines must equal, and the membrane-carrying neuron of reference.py."""
    return lif(x, v0, **p.as_kwargs())


@contextlib.contextmanager
def unroll(steps: int | None) -> Iterator[None]:
    """The CUDA kernel's time unroll set to ``steps`` inside the block (None: the op's default)."""
    from ..ops.lif import cuda as lif_cuda

    saved = lif_cuda.TUNING
    if steps is not None:
        lif_cuda.TUNING = dataclasses.replace(saved, unroll=steps)
    try:
        yield
    finally:
        lif_cuda.TUNING = saved
