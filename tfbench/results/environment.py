"""The environment recorded beside every measurement: GPU, driver, CUDA, torch, libraries, git commit."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

PEER_DISTRIBUTIONS = ("spikingjelly", "snntorch", "norse", "triton")


@dataclass(frozen=True)
class Environment:
    host: str
    python: str
    torch: str
    cuda: str | None
    device: str               # "NVIDIA H100 80GB HBM3", or the CPU's name
    device_count: int
    driver: str | None
    tfbench: str
    git_commit: str | None
    libraries: dict[str, str] = field(default_factory=dict)
    device_memory_bytes: int | None = None   # the GPU's total memory (None on the CPU): where out-of-memory starts

    def as_dict(self) -> dict:
        return asdict(self)


def _driver_version() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _git_commit() -> str | None:
    """HEAD (+dirty), or $TFBENCH_GIT_COMMIT where the tree has no git metadata (a copied working tree)."""
    if os.environ.get("TFBENCH_GIT_COMMIT"):
        return os.environ["TFBENCH_GIT_COMMIT"]
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def capture(device: torch.device | str = "cpu") -> Environment:
    """Read the environment once; ``device`` names the device the measurement runs on."""
    import tfbench

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        count = torch.cuda.device_count()
        memory = int(torch.cuda.get_device_properties(device).total_memory)
    else:
        name = platform.processor() or platform.machine()
        count, memory = 0, None
    libraries = {}
    for dist in PEER_DISTRIBUTIONS:
        try:
            libraries[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return Environment(host=socket.gethostname(), python=platform.python_version(), torch=torch.__version__,
                       cuda=torch.version.cuda, device=name, device_count=count,
                       driver=_driver_version() if device.type == "cuda" else None,
                       tfbench=tfbench.__version__, git_commit=_git_commit(), libraries=libraries,
                       device_memory_bytes=memory)
