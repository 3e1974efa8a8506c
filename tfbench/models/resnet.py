"""Spiking-ResNet18/34/50 written once, in torchvision's layout, with the neuron injected.

The layout is torchvision's (and SpikingJelly's ``spiking_resnet``, which the paper trained): a 7x7
stride-2 stem, 3x3 max-pool, four stages of BasicBlock (18/34) or Bottleneck (50) blocks, global
average pool, one linear classifier. Every ReLU of the ANN is a spiking layer.

Multi-step mode (``step_mode="multi"``, the default): the input ``[T, B, C, H, W]`` is flattened to
``[T*B, C, H, W]`` once; convs, BN, pooling and the classifier run on ``[T*B, ...]`` as ordinary
PyTorch ops, and each spiking layer reshapes ``[T*B, ...] -> [T, B, ...]`` around its neuron, which
sees all T steps at once (the temporal-fusion layout). Single-step mode (``step_mode="single"``) runs
the whole network once per time step on ``[B, ...]``, the way snnTorch and Norse tutorials train; its
neurons carry their membrane between the T calls and are reset before each batch.

The output is the class logits averaged over T: ``[B, num_classes]``. With ``neuron=nn.ReLU`` the
same code is the ANN ResNet at batch T*B: the floor a spiking network is measured against (the
LIF costs nothing there).

Lean (``lean=True``, multi-step, a neuron with ``norm_args``: tfbench's LIF and PLIF): the same
network and parameters, run so that backward keeps less. Every conv -> BatchNorm (-> residual add,
the downsample's BatchNorm folded in too) -> neuron is one fused node (``Spiking.fold_conv``: tfbench/ops/norm.py), which keeps the
convolution's output, the membrane every 8 steps and its input spikes as bits (``Spiking.pack``);
the stem's (with the max-pool after it) keeps its image instead and runs its convolution again in
backward; the downsample's convolution of spikes keeps its input as bits too. The blocks below are written
once; ``fold_conv``/``pack``/``conv_spikes`` are the plain ops when the network is not lean.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

Neuron = Callable[[], nn.Module]


class Spiking(nn.Module):
    """Wraps one neuron. Multi-step: ``[T*B, *] -> [T, B, *] -> neuron -> [T*B, *]``; single-step: as is."""

    def __init__(self, neuron: nn.Module):
        super().__init__()
        self.neuron = neuron
        self.T = 1                # set by the network before each forward (multi-step mode)
        self.multi_step = True
        self.lean = False         # set by the network: BatchNorm folded in, spikes kept as bits

    def fold_conv(self, conv: nn.Conv2d, bn: nn.Module, x: Tensor, bits: Tensor | None = None,
                  residual: Tensor | None = None, residual_bits: Tensor | None = None,
                  pool: nn.MaxPool2d | None = None, recompute: bool | None = None,
                  residual_bn: nn.Module | None = None) -> Tensor:
        """``self(bn(conv(x)) + residual_bn(residual))`` for x ``[T*B, C, H, W]`` (no ``residual_bn``: the
        residual as it is), then ``pool`` when given. Lean: one fused autograd node
        (``tfbench.ops.norm.conv_norm_neuron``; a neuron whose membrane crosses calls, the temporal pipeline's,
        runs it through its ``carry(run, x, neurons)`` with the node's v0 and v_T) that keeps ``bits``
        (``pack(x)``, x spikes) and conv(x), or
        without bits x itself, recomputing conv(x) in backward (the stem: its input is kept anyway);
        ``recompute=True`` with bits: the bits only, conv(x) recomputed from them (the stem of spikes);
        ``residual_bn`` folded in too (the downsample's: its output never stored). ``residual_bits``: the
        residual's ``pack``, when it is spikes. Else the convolution, the BatchNorms, the add, the neuron and
        the pool."""
        if not self.lean:
            y = bn(conv(x))
            if residual is not None:
                y = y + (residual if residual_bn is None else residual_bn(residual))
            s = self(y)
            return s if pool is None else pool(s)
        from ..ops import norm

        def run(v0: Tensor | None = None, return_state: bool = False):
            return norm.conv_norm_neuron(conv, x, bn, *self.neuron.norm_args(), self.T, bits, residual, residual_bits,
                                         pool, recompute, residual_bn, v0, return_state)

        carry = getattr(self.neuron, "carry", None)
        return run() if carry is None else carry(run, x, norm.conv_neurons(conv, x, self.T))

    def pack(self, x: Tensor) -> Tensor | None:
        """The spikes ``x`` as bits (``tfbench.ops.norm.pack_spikes``) when lean, else None."""
        if not self.lean:
            return None
        from ..ops import norm

        return norm.pack_spikes(x)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # channels-last memory: the neuron is elementwise over everything but T, so it gets the
            # same memory as a contiguous [..., H, W, C] view instead of a copy to NCHW
            return self._run(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self._run(x)

    def _run(self, x: Tensor) -> Tensor:
        if not self.multi_step:
            return self.neuron(x)
        return self.neuron(x.unflatten(0, (self.T, -1))).flatten(0, 1)

    def reset_state(self) -> None:
        reset = getattr(self.neuron, "reset_state", None)
        if reset is not None:
            reset()


def conv_spikes(conv: nn.Conv2d, x: Tensor, bits: Tensor | None) -> Tensor:
    """``conv(x)``, keeping x as ``bits`` for backward when given (x must then be spikes)."""
    if bits is None:
        return conv(x)
    from ..ops import norm

    return norm.spike_conv2d(conv, x, bits)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-BN-spike-conv3x3-BN, plus the shortcut, then spike (torchvision's BasicBlock)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, neuron: Neuron):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.sn1 = Spiking(neuron())
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes * self.expansion, stride)
        self.sn2 = Spiking(neuron())

    def forward(self, x: Tensor) -> Tensor:
        bits = self.sn1.pack(x)
        identity, identity_bits, identity_bn = _shortcut(self.downsample, x, bits)
        out = self.sn1.fold_conv(self.conv1, self.bn1, x, bits)
        return self.sn2.fold_conv(self.conv2, self.bn2, out, self.sn2.pack(out), identity, identity_bits,
                                  residual_bn=identity_bn)


class Bottleneck(nn.Module):
    """conv1x1-BN-spike-conv3x3-BN-spike-conv1x1-BN, plus the shortcut, then spike (stride on the 3x3)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, neuron: Neuron):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.sn1 = Spiking(neuron())
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.sn2 = Spiking(neuron())
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = _downsample(cin, planes * self.expansion, stride)
        self.sn3 = Spiking(neuron())

    def forward(self, x: Tensor) -> Tensor:
        bits = self.sn1.pack(x)
        identity, identity_bits, identity_bn = _shortcut(self.downsample, x, bits)
        out = self.sn1.fold_conv(self.conv1, self.bn1, x, bits)
        out = self.sn2.fold_conv(self.conv2, self.bn2, out, self.sn2.pack(out))
        return self.sn3.fold_conv(self.conv3, self.bn3, out, self.sn3.pack(out), identity, identity_bits,
                                  residual_bn=identity_bn)


def _shortcut(downsample: nn.Sequential | None, x: Tensor,
              bits: Tensor | None) -> tuple[Tensor, Tensor | None, nn.Module | None]:
    """The block's shortcut of its input spikes x, before its BatchNorm: (x, x's bits, None) for the
    identity, (the downsample's convolution of x, None, its BatchNorm) else; the block's last neuron
    applies that BatchNorm (folded into it when lean)."""
    if downsample is None:
        return x, bits, None
    conv, bn = downsample
    return conv_spikes(conv, x, bits), None, bn


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class SpikingResNet(nn.Module):
    """A ResNet whose every activation is ``neuron()``; input ``[T, B, C, H, W]``, output ``[B, classes]``.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet18.
        neuron: factory of one neuron layer. Multi-step: ``[T, B, *] -> [T, B, *]``; single-step:
            ``[B, *] -> [B, *]`` keeping its membrane until ``reset_state()``.
        in_channels, num_classes: input channels (3 for the paper's rate-coded images) and classes.
        step_mode: ``"multi"`` (all T steps per layer call) or ``"single"`` (the network per step).
        lean: fold BatchNorm into the neurons and keep spikes as bits (module docstring; multi-step,
            tfbench's neurons). The parameters and state_dict are the same either way.
        spike_input: the input is spikes, 0 or 1 only (rate-coded images); lean then keeps the stem's
            input as bits too. The flag is the caller's word (the harness takes it from the dataset's
            encoding): a non-binary input with it set would be kept wrong.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], neuron: Neuron, *,
                 in_channels: int = 3, num_classes: int = 10, step_mode: str = "multi", lean: bool = False,
                 spike_input: bool = False):
        super().__init__()
        if step_mode not in ("multi", "single"):
            raise ValueError(f"unknown step mode {step_mode!r}; choose from: multi, single")
        if lean and step_mode != "multi":
            raise ValueError("lean runs all T steps of a layer at once: it needs step_mode='multi'")
        self.step_mode = step_mode
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.sn1 = Spiking(neuron())
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        stages = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stage = []
            for j in range(blocks):
                stage.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1, neuron))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self._spiking = [m for m in self.modules() if isinstance(m, Spiking)]
        for m in self._spiking:
            m.multi_step = step_mode == "multi"
            if lean and not hasattr(m.neuron, "norm_args"):
                raise ValueError(f"lean folds BatchNorm into the neuron: {type(m.neuron).__name__} cannot take it "
                                 "(tfbench's LIF and PLIF can)")
            m.lean = lean
        self.lean = lean
        self.spike_input = spike_input
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _features(self, x: Tensor) -> Tensor:
        bits = self.sn1.pack(x) if self.spike_input else None   # lean: the input spikes kept as bits
        x = self.sn1.fold_conv(self.conv1, self.bn1, x, bits, pool=self.maxpool, recompute=True)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)   # one stage at a time: no stage's input outlives the next stage's call
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        """x: ``[T, B, C, H, W]`` (any float dtype). Returns logits averaged over T: ``[B, num_classes]``."""
        if x.dim() != 5:
            raise ValueError(f"expected input [T, B, C, H, W], got shape {tuple(x.shape)}")
        steps = x.shape[0]
        if self.step_mode == "multi":
            for m in self._spiking:
                m.T = steps
            return self._features(x.flatten(0, 1)).unflatten(0, (steps, -1)).mean(0)
        for m in self._spiking:
            m.reset_state()
        out = self._features(x[0])
        for t in range(1, steps):
            out = out + self._features(x[t])
        return out / steps
