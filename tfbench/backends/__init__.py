"""Neuron backends: one small adapter per library, in a plain registry.

``get(name)`` returns a :class:`Backend`; ``backend.layer(params)`` builds the multi-step layer that
every spiking layer of a model gets. Names are matched case-insensitively; an unknown name raises
ValueError listing the known ones.
"""

from __future__ import annotations

from . import spikingjelly, tfbench_fused, torch_loop
from .base import Backend, Unsupported

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        tfbench_fused.BACKEND,
        torch_loop.BACKEND,
        spikingjelly.BACKEND,
        spikingjelly.BACKEND_TORCH,
    )
}


def get(name: str) -> Backend:
    """The backend called ``name`` (case-insensitive)."""
    try:
        return BACKENDS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "Unsupported", "get"]
