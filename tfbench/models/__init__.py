"""Models: Spiking-ResNet18/34/50 (and their ANN twins), written once with the neuron injected.

``build(arch, neuron, in_channels=..., num_classes=..., step_mode=...)`` looks the architecture up in
``ARCHS`` (case-insensitive; a miss lists the known names). ``Spiking-ResNet*`` take the backend's
neuron; ``ResNet*`` are the same networks with ReLU (the ANN at batch T*B), ignoring ``neuron``.
Nothing here imports a peer library: the neuron comes from ``tfbench.backends``. The registry is
plain data: importing it does not import torch (resnet.py is loaded by ``build``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arch:
    """One architecture: its block (``"basic"`` or ``"bottleneck"``), blocks per stage, whether its
    activations are spiking neurons or ReLU, and its ANN twin. ``builder`` (``"module:function"``)
    builds an architecture that is not tfbench's own ResNet (SpikingJelly's model zoo), imported only
    when it is built."""

    name: str
    block: str
    layers: tuple[int, int, int, int]
    spiking: bool
    twin: str = ""              # the ANN twin's name (itself for an ANN)
    builder: str | None = None


_ZOO_BUILDER = "tfbench.integrations.spikingjelly.zoo:build"
# SpikingJelly 2.0's model zoo (tfbench/integrations/spikingjelly/zoo.py MODELS), each with its ANN twin
_ZOO = ("spiking_resnet18", "spiking_resnet34", "spiking_resnet50", "sew_resnet18", "sew_resnet34",
        "spiking_vgg11_bn", "spiking_vgg16_bn")

ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("Spiking-ResNet18", "basic", (2, 2, 2, 2), True, "ResNet18"),
        Arch("Spiking-ResNet34", "basic", (3, 4, 6, 3), True, "ResNet34"),
        Arch("Spiking-ResNet50", "bottleneck", (3, 4, 6, 3), True, "ResNet50"),
        Arch("ResNet18", "basic", (2, 2, 2, 2), False, "ResNet18"),
        Arch("ResNet34", "basic", (3, 4, 6, 3), False, "ResNet34"),
        Arch("ResNet50", "bottleneck", (3, 4, 6, 3), False, "ResNet50"),
        *(Arch(f"sj:{m}", "", (0, 0, 0, 0), True, f"sj:{m}-ann", _ZOO_BUILDER) for m in _ZOO),
        *(Arch(f"sj:{m}-ann", "", (0, 0, 0, 0), False, f"sj:{m}-ann", _ZOO_BUILDER) for m in _ZOO),
    )
}


def get(name: str) -> Arch:
    """The architecture called ``name`` (case-insensitive); ValueError listing the known names."""
    for key, arch in ARCHS.items():
        if key.lower() == str(name).lower():
            return arch
    raise ValueError(f"unknown arch {name!r}; choose from: {', '.join(ARCHS)}")


def ann_twin(name: str) -> str:
    """The ANN of a spiking architecture (``Spiking-ResNet18 -> ResNet18``); an ANN maps to itself."""
    return get(name).twin


def build(arch: str, neuron, *, in_channels: int = 3, num_classes: int = 10, step_mode: str = "multi",
          backend=None, params=None, lean: bool = False, spike_input: bool = False):
    """The network ``arch`` with ``neuron()`` in every spiking layer (``nn.ReLU`` for an ANN arch).

    Input ``[T, B, in_channels, H, W]``, output logits ``[B, num_classes]`` averaged over T.
    ``backend`` and ``params`` (the neuron's parameters) are for architectures built elsewhere
    (``Arch.builder``: SpikingJelly's zoo builds its own neurons from them). ``lean``: BatchNorm
    folded into the neurons and spikes kept as bits (resnet.py; tfbench's own spiking ResNets only);
    ``spike_input``: the input is spikes (0/1), which the lean stem then keeps as bits.
    """
    from torch import nn

    from . import resnet

    a = get(arch)
    if a.spiking and neuron is None:
        raise ValueError(f"{a.name} needs a neuron factory")
    if lean and (not a.spiking or a.builder is not None):
        raise ValueError(f"lean applies to tfbench's spiking ResNets, not {a.name}")
    if a.builder is not None:
        module, _, function = a.builder.partition(":")
        build_elsewhere = getattr(importlib.import_module(module), function)
        return build_elsewhere(a.name, neuron, in_channels=in_channels, num_classes=num_classes, step_mode=step_mode,
                               backend=backend, params=params)
    factory = neuron if a.spiking else nn.ReLU
    block = {"basic": resnet.BasicBlock, "bottleneck": resnet.Bottleneck}[a.block]
    return resnet.SpikingResNet(block, list(a.layers), factory, in_channels=in_channels, num_classes=num_classes,
                                step_mode=step_mode, lean=lean, spike_input=spike_input)


_LAZY = {"BasicBlock", "Bottleneck", "Spiking", "SpikingResNet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY or name == "resnet":
        module = importlib.import_module(f"{__name__}.resnet")
        return module if name == "resnet" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ARCHS", "Arch", "BasicBlock", "Bottleneck", "Spiking", "SpikingResNet", "ann_twin", "build", "get"]
