"""SpikingJelly's model zoo as harness architectures (``--arch sj:spiking_resnet18``, ...).

``build(arch, neuron, *, in_channels, num_classes, step_mode, backend, params)`` builds the model with
SpikingJelly's own constructor (``spikingjelly.activation_based.model``), multi-step
(``functional.set_step_mode(net, 'm')``), wrapped so that the harness sees what its own networks
give: input ``[T, B, C, H, W]``, logits averaged over T ``[B, classes]``, every neuron reset before
each batch (``functional.reset_net``). The spiking layers are, by the backend's ``zoo`` mode:

- ``"layer"``: the backend's own multi-step layer (``backend.layer(params)``) in every neuron's place;
- ``"accelerated"``: SpikingJelly's own ``LIFNode``/``IFNode`` for ``params``, then
  ``tfbench.accelerate(model)``: the model a SpikingJelly user has, on tfbench's fused op.

An ANN twin (``sj:<model>-ann``) is the same constructor with ReLU in every neuron's place.
"""

from __future__ import annotations

import importlib

from torch import Tensor, nn

from ...backends import Unsupported
from ...backends.spikingjelly import make_node

# harness name -> (SpikingJelly module, constructor, extra arguments)
MODELS: dict[str, tuple[str, str, dict]] = {
    "spiking_resnet18": ("spiking_resnet", "spiking_resnet18", {}),
    "spiking_resnet34": ("spiking_resnet", "spiking_resnet34", {}),
    "spiking_resnet50": ("spiking_resnet", "spiking_resnet50", {}),
    "sew_resnet18": ("sew_resnet", "sew_resnet18", {"cnf": "ADD"}),
    "sew_resnet34": ("sew_resnet", "sew_resnet34", {"cnf": "ADD"}),
    "spiking_vgg11_bn": ("spiking_vgg", "spiking_vgg11_bn", {}),
    "spiking_vgg16_bn": ("spiking_vgg", "spiking_vgg16_bn", {}),
}
PREFIX = "sj:"
ANN_SUFFIX = "-ann"


class ZooNet(nn.Module):
    """A SpikingJelly zoo model as the harness runs it: ``[T, B, C, H, W]`` -> logits ``[B, classes]``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        from spikingjelly.activation_based import functional

        if x.dim() != 5:
            raise ValueError(f"expected input [T, B, C, H, W], got shape {tuple(x.shape)}")
        functional.reset_net(self.net)
        return self.net(x).mean(0)


def build(arch: str, neuron, *, in_channels: int = 3, num_classes: int = 10, step_mode: str = "multi",
          backend=None, params=None) -> nn.Module:
    """SpikingJelly's model ``arch`` (``sj:<name>`` or ``sj:<name>-ann``) with the backend's neurons."""
    from spikingjelly.activation_based import functional

    name = arch.removeprefix(PREFIX)
    ann = name.endswith(ANN_SUFFIX)
    name = name.removesuffix(ANN_SUFFIX)
    module, constructor, extra = MODELS[name]
    if in_channels != 3:
        raise Unsupported(f"SpikingJelly's {constructor} has a 3-channel stem; use in-channels 3")
    if step_mode != "multi":
        raise Unsupported("SpikingJelly's zoo models run multi-step here (step-mode multi)")
    mode = "ann" if ann else getattr(backend, "zoo", "layer")
    if mode == "ann":
        def spiking_neuron(**_kw):
            return nn.ReLU()
    elif mode == "accelerated":
        def spiking_neuron(**_kw):
            return make_node(params)
    else:
        def spiking_neuron(**_kw):
            return neuron()
    make = getattr(importlib.import_module(f"spikingjelly.activation_based.model.{module}"), constructor)
    net = make(spiking_neuron=spiking_neuron, num_classes=num_classes, **extra)
    functional.set_step_mode(net, "m")
    if mode == "accelerated":
        from .accelerate import accelerate

        report = accelerate(net, save=getattr(backend, "zoo_save", "h"))
        if report.refused:
            raise Unsupported(f"tfbench.accelerate refused {len(report.refused)} neurons: {report.refused[0].detail}")
    return ZooNet(net)
