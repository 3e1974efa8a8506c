"""What a neuron backend is: a name, the library behind it, and a factory for a multi-step layer.

A backend's layer takes ``[T, *]`` input current and returns ``[T, *]`` spikes; it keeps no state
between calls (a new batch starts from the resting membrane). ``unavailable(device)`` gives the
reason a backend cannot run (library missing, no GPU path), or None when it can: the harness
shows that reason as "n/a: reason" instead of silently using something else.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from collections.abc import Callable
from types import ModuleType
from dataclasses import dataclass

import torch
from torch import nn

from ..ops.neurons import LIFParams, NeuronParams  # noqa: F401  (LIFParams: the common neuron)

# A neuron description (tfbench.ops.neurons: LIFParams, PLIFParams) -> a layer; raises Unsupported
# when the library cannot express that neuron.
LayerFactory = Callable[[NeuronParams], nn.Module]
# Bytes each element of [T, N] must cross device memory, from (storage dtype, T, direction)
BytesRule = Callable[[torch.dtype, int, str], float]


def quiet_import(name: str) -> ModuleType:
    """Import a peer library without its import-time ``torch.jit.script`` deprecation warnings
    (snnTorch and Norse script helpers when imported; the warning is torch's, not the user's to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        return importlib.import_module(name)


class Unsupported(ValueError):
    """This backend's library cannot express the requested neuron (the message says what)."""


def require(p: NeuronParams, known: tuple[type, ...], library: str) -> None:
    """Unsupported unless ``p`` is one of the descriptions the adapter maps (a neuron added to
    tfbench.ops later is "n/a" here until its adapter maps it, never silently another neuron)."""
    if not isinstance(p, known):
        raise Unsupported(f"{library}'s adapter has no mapping for {type(p).__name__}")


@dataclass(frozen=True)
class Backend:
    """One neuron implementation the harness can put into every spiking layer."""

    name: str
    description: str
    make_layer: LayerFactory
    distribution: str | None = None       # the pip distribution whose version is recorded
    differences: str = ""                 # where this library's neuron differs from docs/neurons.md
    requires_cuda: bool = False
    probe: Callable[[], str | None] | None = None  # extra check: None, or why it cannot run
    # single-step layer ``[*] -> [*]`` that keeps its membrane until ``reset_state()`` (``--step-mode single``)
    make_step_layer: LayerFactory | None = None
    # the bytes its layer must move per element, for its memory floor (bench/layer.py); None: docs/neurons.md's
    # rule for an op keeping h (x, s, h forward; gs, h, gx backward: 24 B fp32, 12 B bf16/fp16)
    bytes_per_element: BytesRule | None = None

    def version(self) -> str | None:
        if self.distribution is None:
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def unavailable(self, device: torch.device | str | None = None) -> str | None:
        """None when the backend can run on ``device``, else a short reason."""
        if self.distribution is not None and self.version() is None:
            return f"{self.distribution} is not installed (pip install 'tfbench[peers]')"
        if self.requires_cuda and (device is None or torch.device(device).type != "cuda"):
            return f"{self.name} runs only on CUDA GPUs"
        if self.probe is not None:
            return self.probe()
        return None

    def layer(self, params: NeuronParams) -> nn.Module:
        """A fresh multi-step layer ``[T, *] -> [T, *]`` of this backend for the neuron ``params``
        (``LIFParams`` or ``PLIFParams``; a PLIF layer's learnable parameter starts from its init_tau)."""
        return self.make_layer(params.validate())

    def step_layer(self, params: NeuronParams) -> nn.Module:
        """A fresh single-step layer ``[*] -> [*]`` for the neuron ``params``: it keeps its membrane
        between calls (the network is stepped one time step at a time) until ``reset_state()``."""
        if self.make_step_layer is None:
            raise Unsupported(f"{self.name} has no single-step layer")
        return self.make_step_layer(params.validate())
