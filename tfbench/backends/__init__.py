"""Neuron backends: one small adapter module per library, in a plain registry.

``get(name)`` returns a :class:`Backend`; ``backend.layer(params)`` builds the multi-step layer that
every spiking layer of a model gets. Names are matched case-insensitively; an unknown name raises
ValueError listing the known ones. The registry is plain data (no torch, no peer library is imported
to read it); each adapter is imported when its backend is first used.
"""

from __future__ import annotations

from .base import Backend, Unsupported

_PKG = __name__

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("tfbench", "tfbench's temporal-fusion LIF: one forward and one backward kernel for all T steps",
                f"{_PKG}.tfbench_fused", f"{_PKG}.tfbench_fused:make_layer",
                f"{_PKG}.single_step:FusedLIFStep", zoo="accelerated", folds_norm=True),
        Backend("torch", "plain PyTorch loop over T (autograd through each step): the serial baseline",
                f"{_PKG}.torch_loop", f"{_PKG}.torch_loop:TorchLoopLIF", f"{_PKG}.single_step:TorchLoopLIFStep"),
        Backend("spikingjelly", "SpikingJelly 2.0 LIFNode, multi-step, its own fused GPU kernel (automatic selection)",
                f"{_PKG}.spikingjelly", f"{_PKG}.spikingjelly:make_auto", f"{_PKG}.single_step:spikingjelly_auto",
                distribution="spikingjelly", imports=("spikingjelly.activation_based.neuron",)),
        Backend("spikingjelly-torch", "SpikingJelly 2.0 LIFNode, multi-step, its pure-torch path "
                "(SJ_LIF_CUDA_IMPLEMENTATION=torch)",
                f"{_PKG}.spikingjelly", f"{_PKG}.spikingjelly:make_torch", f"{_PKG}.single_step:spikingjelly_torch",
                distribution="spikingjelly", imports=("spikingjelly.activation_based.neuron",)),
        Backend("snntorch", "snnTorch 1.0 Leaky, one call per time step in a Python loop (as its tutorials train)",
                f"{_PKG}.snntorch", f"{_PKG}.snntorch:SnnTorchLIF", f"{_PKG}.snntorch:SnnTorchLIFStep",
                distribution="snntorch", imports=("snntorch",)),
        Backend("norse", "Norse 1.1 LIFBoxCell (LIF without synaptic current), one call per time step",
                f"{_PKG}.norse", f"{_PKG}.norse:NorseLIF", f"{_PKG}.norse:NorseLIFStep",
                distribution="norse", imports=("norse.torch",)),
        Backend("spikingjelly014", "SpikingJelly 0.0.0.0.14 LIFNode, multi-step, its CuPy back end (the paper's "
                "SJ-CuPy baseline), in its own environment",
                f"{_PKG}.spikingjelly014", f"{_PKG}.spikingjelly014:make_cupy", distribution="spikingjelly",
                imports=("spikingjelly.activation_based.neuron", "cupy"), requires_cuda=True,
                environment="spikingjelly014"),
        Backend("spikingjelly014-torch", "SpikingJelly 0.0.0.0.14 LIFNode, multi-step, its PyTorch back end (the "
                "paper's SJ-PyTorch baseline), in its own environment",
                f"{_PKG}.spikingjelly014", f"{_PKG}.spikingjelly014:make_torch", distribution="spikingjelly",
                imports=("spikingjelly.activation_based.neuron",), environment="spikingjelly014"),
        Backend("tfbench-recompute", "tfbench's temporal-fusion LIF keeping x (not h) for backward: h recomputed "
                "from x and a membrane checkpoint every 8 steps",
                f"{_PKG}.tfbench_recompute", f"{_PKG}.tfbench_recompute:make_layer",
                f"{_PKG}.tfbench_recompute:make_step_layer", zoo="accelerated", zoo_save="input", folds_norm=True),
    )
}


def get(name: str) -> Backend:
    """The backend called ``name`` (case-insensitive)."""
    try:
        return BACKENDS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "Unsupported", "get"]
