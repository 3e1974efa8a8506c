"""Spiking-ResNet18/34/50: torchvision's layout, the neuron injected, [T*B] <-> [T, B] around each neuron."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from tfbench import models
from tfbench.backends import get
from tfbench.ops.lif import PRESETS


class Recorder(nn.Module):
    """A neuron that records the shapes it is called with and acts as a ReLU."""

    calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Recorder.calls.append(tuple(x.shape))
        return torch.relu(x)


def test_registry_and_miss_message() -> None:
    assert list(models.ARCHS)[:6] == ["Spiking-ResNet18", "Spiking-ResNet34", "Spiking-ResNet50", "ResNet18",
                                      "ResNet34", "ResNet50"]
    zoo = [a for a in models.ARCHS if a.startswith("sj:")]      # SpikingJelly's zoo, each with its ANN twin
    assert "sj:spiking_resnet18" in zoo and models.ann_twin("sj:spiking_resnet18") == "sj:spiking_resnet18-ann"
    assert len(zoo) == 2 * len([a for a in zoo if not a.endswith("-ann")])
    assert models.get("spiking-resnet50").name == "Spiking-ResNet50"
    with pytest.raises(ValueError, match="unknown arch 'VGG'; choose from: Spiking-ResNet18, "):
        models.get("VGG")
    assert models.ann_twin("Spiking-ResNet34") == "ResNet34"


@pytest.mark.parametrize(("arch", "tv"), [("ResNet18", "resnet18"), ("ResNet34", "resnet34"),
                                          ("ResNet50", "resnet50")])
def test_same_parameters_as_torchvision(arch: str, tv: str) -> None:
    """The layout is torchvision's: the same parameter shapes, in the same order."""
    ours = models.build(arch, None, num_classes=10)
    ref = getattr(torchvision.models, tv)(num_classes=10)
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in ref.parameters()]
    spiking = models.build("Spiking-" + arch, nn.ReLU, num_classes=10)
    assert [tuple(p.shape) for p in spiking.parameters()] == [tuple(p.shape) for p in ours.parameters()]


def test_neuron_sees_time_first_and_output_is_time_averaged() -> None:
    Recorder.calls = []
    net = models.build("Spiking-ResNet18", Recorder, in_channels=3, num_classes=7)
    steps, batch = 3, 2
    x = torch.rand(steps, batch, 3, 32, 32)
    y = net(x)
    assert y.shape == (batch, 7)
    assert len(Recorder.calls) == 17      # stem + 2 per BasicBlock x 8
    assert all(c[:2] == (steps, batch) for c in Recorder.calls)
    assert Recorder.calls[0] == (steps, batch, 64, 16, 16)
    # logits = mean over T of the per-step logits: check against running the T*B batch by hand
    net.eval()
    flat = net._features(x.flatten(0, 1)).unflatten(0, (steps, batch))
    torch.testing.assert_close(net(x), flat.mean(0))


def test_in_channels_and_classes() -> None:
    net = models.build("Spiking-ResNet50", nn.ReLU, in_channels=2, num_classes=11)
    assert net.conv1.in_channels == 2 and net.fc.out_features == 11
    assert net(torch.rand(2, 1, 2, 34, 34)).shape == (1, 11)
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        net(torch.rand(1, 2, 34, 34))


def test_single_step_mode_equals_multi_step_in_eval() -> None:
    """Stepping the whole network per time step gives the same logits (BN in eval mode: no batch stats)."""
    p = PRESETS["paper"]
    b = get("tfbench")
    torch.manual_seed(0)
    multi = models.build("Spiking-ResNet18", lambda: b.layer(p), num_classes=10).eval()
    single = models.build("Spiking-ResNet18", lambda: b.step_layer(p), num_classes=10, step_mode="single").eval()
    single.load_state_dict(multi.state_dict())
    x = (torch.rand(4, 2, 3, 28, 28) < 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(single(x), multi(x))
        torch.testing.assert_close(single(x), multi(x))   # state is reset between batches


def test_unknown_step_mode() -> None:
    with pytest.raises(ValueError, match="choose from: multi, single"):
        models.build("Spiking-ResNet18", nn.ReLU, step_mode="both")
