"""Does inductor compile a ResNet's last stage, where the maps are 1x1? (kernels/NOTES.md, "--compile")

The smallest network that reaches it: a stride-2 3x3 convolution from 2x2 to 1x1 maps, then a 3x3
convolution on the 1x1 maps (ResNet18's layer4 on CIFAR-10-sized input), BN, ReLU, pooling, a linear
layer; compiled with torch.compile, forward and backward, NCHW and channels-last, with inductor's
layout optimisation on (its default) and off. No tfbench code involved.

    python scripts/compile_repro.py            # on a GPU
"""

from __future__ import annotations

import sys

import torch
from torch import nn


def attempt(channels_last: bool, layout_optimization: bool, device: str) -> str:
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(256, 512, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(512), nn.ReLU(),
                        nn.Conv2d(512, 512, 3, padding=1, bias=False), nn.BatchNorm2d(512), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)).to(device)
    x = torch.randn(32, 256, 2, 2, device=device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    with inductor_config.patch(layout_optimization=layout_optimization):
        try:
            loss = torch.compile(net)(x).sum()
            loss.backward()
            torch.cuda.synchronize() if device == "cuda" else None
            return "ok"
        except Exception as exc:  # noqa: BLE001 - the point is which fail, and how
            lines = [line for line in str(exc).splitlines() if line.strip()]
            return f"FAILED: {type(exc).__name__}: {' | '.join(lines[:3])[:400]}"


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}")
    for channels_last in (False, True):
        for layout in (True, False):
            result = attempt(channels_last, layout, device)
            print(f"  {'channels-last' if channels_last else 'NCHW':13s} layout_optimization={layout!s:5s}: {result}",
                  flush=True)


if __name__ == "__main__":
    main()
