"""Neuron backends: one small adapter per library, in a plain registry.

``get(name)`` returns a :class:`Backend`; ``backend.layer(params)`` builds the multi-step layer that
every spiking layer of a model gets. Names are matched case-insensitively; an unknown name raises
ValueError listing the known ones.
"""

from __future__ import annotations

from . import norse, snntorch, spikingjelly, tfbench_fused, tfbench_recompute, torch_loop
from .base import Backend, Unsupported
from .single_step import with_step_layer

BACKENDS: dict[str, Backend] = {
    b.name: with_step_layer(b)
    for b in (
        tfbench_fused.BACKEND,
        torch_loop.BACKEND,
        spikingjelly.BACKEND,
        spikingjelly.BACKEND_TORCH,
        snntorch.BACKEND,
        norse.BACKEND,
        tfbench_recompute.BACKEND,   # the fused op keeping x instead of h (lif(..., save="input"))
    )
}


def get(name: str) -> Backend:
    """The backend called ``name`` (case-insensitive)."""
    try:
        return BACKENDS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "Unsupported", "get"]
