"""Models: Spiking-ResNet18/34/50 (and their ANN twins, the floor), written once with the neuron injected.

``build(arch, neuron, in_channels=..., num_classes=..., step_mode=...)`` looks the architecture up in
``ARCHS`` (case-insensitive; a miss lists the known names). ``Spiking-ResNet*`` take the backend's
neuron; ``ResNet*`` are the same networks with ReLU (the ANN at batch T*B), ignoring ``neuron``.
Nothing here imports a peer library: the neuron comes from ``tfbench.backends``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .resnet import BasicBlock, Bottleneck, Neuron, Spiking, SpikingResNet


@dataclass(frozen=True)
class Arch:
    """One architecture: its blocks and whether its activations are spiking neurons or ReLU."""

    name: str
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]
    spiking: bool


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("Spiking-ResNet18", BasicBlock, (2, 2, 2, 2), True),
        Arch("Spiking-ResNet34", BasicBlock, (3, 4, 6, 3), True),
        Arch("Spiking-ResNet50", Bottleneck, (3, 4, 6, 3), True),
        Arch("ResNet18", BasicBlock, (2, 2, 2, 2), False),
        Arch("ResNet34", BasicBlock, (3, 4, 6, 3), False),
        Arch("ResNet50", Bottleneck, (3, 4, 6, 3), False),
    )
}


def get(name: str) -> Arch:
    """The architecture called ``name`` (case-insensitive); ValueError listing the known names."""
    for key, arch in ARCHS.items():
        if key.lower() == name.lower():
            return arch
    raise ValueError(f"unknown arch {name!r}; choose from: {', '.join(ARCHS)}")


def ann_twin(name: str) -> str:
    """The ANN of a spiking architecture (``Spiking-ResNet18 -> ResNet18``); an ANN maps to itself."""
    arch = get(name)
    return arch.name.removeprefix("Spiking-") if arch.spiking else arch.name


def build(arch: str, neuron: Neuron | None, *, in_channels: int = 3, num_classes: int = 10,
          step_mode: str = "multi") -> SpikingResNet:
    """The network ``arch`` with ``neuron()`` in every spiking layer (``nn.ReLU`` for an ANN arch).

    Input ``[T, B, in_channels, H, W]``, output logits ``[B, num_classes]`` averaged over T.
    """
    a = get(arch)
    if a.spiking and neuron is None:
        raise ValueError(f"{a.name} needs a neuron factory")
    factory: Neuron = neuron if a.spiking else nn.ReLU  # type: ignore[assignment]
    return SpikingResNet(a.block, list(a.layers), factory, in_channels=in_channels, num_classes=num_classes,
                         step_mode=step_mode)


__all__ = ["ARCHS", "Arch", "BasicBlock", "Bottleneck", "Spiking", "SpikingResNet", "ann_twin", "build", "get"]
