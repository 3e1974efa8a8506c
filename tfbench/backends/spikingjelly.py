"""SpikingJelly 2.0 ``LIFNode`` / ``ParametricLIFNode`` in multi-step mode: its own fused GPU kernel,
or its pure-torch path.

SpikingJelly 2.0 chooses each neuron's GPU implementation from ``SJ_LIF_CUDA_IMPLEMENTATION`` /
``SJ_PLIF_CUDA_IMPLEMENTATION`` (auto|cuda|triton|torch), read once at import. The ``spikingjelly``
backend uses its automatic choice (on a GPU without a source build of its native kernels, that is
its Triton kernel); the ``spikingjelly-torch`` backend asks for its torch path. Both set the switch
SpikingJelly reads, ``spikingjelly._ops.<neuron>._selection``, so that both run in one process on
the same inputs; which implementation ran is recorded (``implementation()``).

A PLIF neuron (tfbench's ``PLIFParams``) is ``ParametricLIFNode`` exactly: the same w, initialised to
-log(init_tau - 1), and the same forward expression (docs/neurons.md, "PLIF").
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..ops.neurons import LIFParams, NeuronParams, PLIFParams
from .base import Unsupported, require

DIFFERENCES = "none (sigmoid, atan and rect surrogates: SpikingJelly's Sigmoid, ATan and Rect)"

# tfbench's surrogates and SpikingJelly's classes of the same maths (docs/neurons.md): SpikingJelly's
# Rect is alpha inside |u| < 0.5/alpha, tfbench's rect.
SURROGATE_CLASSES = {"sigmoid": "Sigmoid", "atan": "ATan", "rect": "Rect"}


def make_node(p: NeuronParams, **extra):
    """SpikingJelly's own multi-step node for tfbench's neuron ``p``: ``LIFNode`` (``IFNode`` for tau =
    inf) or ``ParametricLIFNode``, from whichever ``spikingjelly`` is importable (2.0 here, 0.0.0.0.14
    in its worker); ``extra`` goes to the node (0.0.0.0.14's ``backend``). Unsupported where that
    SpikingJelly has no class for the surrogate."""
    from spikingjelly.activation_based import neuron, surrogate

    sg = getattr(surrogate, SURROGATE_CLASSES.get(p.surrogate, ""), None)
    if sg is None:
        raise Unsupported(f"this SpikingJelly has no '{p.surrogate}' surrogate")
    common = dict(v_threshold=p.v_threshold, v_reset=p.v_reset, surrogate_function=sg(alpha=p.alpha),
                  detach_reset=p.detach_reset, step_mode="m", **extra)
    if isinstance(p, PLIFParams):
        return neuron.ParametricLIFNode(init_tau=float(p.init_tau), decay_input=p.decay_input, **common)
    if math.isinf(p.tau):
        return neuron.IFNode(**common)
    return neuron.LIFNode(tau=p.tau, decay_input=p.decay_input, **common)

_USED = {"kind": "lif"}  # the neuron kind a SpikingJelly layer last ran in this process (implementation())


def _selection(kind: str):
    import importlib

    return importlib.import_module(f"spikingjelly._ops.{kind}")._selection


def _set_implementation(requested: str, kind: str = "lif") -> None:
    selection = _selection(kind)
    _USED["kind"] = kind
    if selection._requested != requested:
        with selection._lock:
            selection._requested = requested
            selection._selections.clear()
            selection._compiled_selections.clear()


def _forget_fallbacks(kind: str) -> None:
    """Drop SpikingJelly's record of earlier torch-reference fallbacks, so that ``implementation()``
    reports what this layer's runs used, not what an earlier run in the process did."""
    selection = _selection(kind)
    with selection._lock:
        for key in [k for k in selection._selections if isinstance(k, tuple)]:
            del selection._selections[key]


def implementation(device, kind: str | None = None) -> str:
    """The implementation SpikingJelly's neuron ran on ``device``: 'triton', 'cuda', 'torch' or 'cpu'.

    ``kind``: 'lif' or 'plif' (default: the kind a SpikingJelly layer last ran). Where its automatic
    choice fell back to its torch reference for some calls (SpikingJelly 2.0.0 does so for bf16/fp16
    autocast), the fallback and its reason are appended.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return "cpu"
    selection = _selection(kind or _USED["kind"])
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = str(selection.diagnostics(device)["implementation"])
    fallbacks = [key[1] for key in list(selection._selections) if isinstance(key, tuple) and key[0] == index]
    if fallbacks:
        name += "; torch-reference fallback: " + "; ".join(fallbacks)
    return name


class SpikingJellyLIF(nn.Module):
    """``LIFNode`` (``IFNode`` for tau = inf) or ``ParametricLIFNode``, ``step_mode='m'``, reset before
    every call so that each batch starts at rest."""

    def __init__(self, p: NeuronParams, requested: str):
        super().__init__()
        require(p, (LIFParams, PLIFParams), "SpikingJelly")
        self.kind = "plif" if isinstance(p, PLIFParams) else "lif"
        self.node = make_node(p)
        self.requested = requested
        _forget_fallbacks(self.kind)

    def forward(self, x: Tensor) -> Tensor:
        _set_implementation(self.requested, self.kind)
        self.node.reset()
        try:
            return self.node(x)
        except RuntimeError as exc:
            # SpikingJelly 2.0.0 refuses an explicit implementation for an input it would only run on
            # its automatic torch-reference fallback (e.g. bf16 autocast with the torch path requested)
            if "cannot run this execution profile" in str(exc):
                raise Unsupported(f"SpikingJelly refuses SJ_{self.kind.upper()}_CUDA_IMPLEMENTATION="
                                  f"{self.requested} here: {str(exc).split(': ', 1)[-1]}") from exc
            raise


def make_auto(p: NeuronParams) -> SpikingJellyLIF:
    """Its automatically selected GPU implementation (Triton on a GPU without a source build)."""
    return SpikingJellyLIF(p, "auto")


def make_torch(p: NeuronParams) -> SpikingJellyLIF:
    """Its pure-torch path."""
    return SpikingJellyLIF(p, "torch")
