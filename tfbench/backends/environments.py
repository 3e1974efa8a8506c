"""Peer libraries that cannot share tfbench's environment: each installed into a folder of its own.

SpikingJelly 0.0.0.0.14, the paper's baseline, is the same distribution as SpikingJelly 2.0 (one
``spikingjelly`` package), so both cannot be installed side by side. A :class:`PeerEnvironment`
installs such a library (``pip install --no-deps --target``: it uses tfbench's own torch) into
``$TFBENCH_CACHE_DIR/peers/<name>-<versions>-py<X.Y>`` (default ``~/.cache/tfbench``), keyed by
what it holds, and a run with one of its backends executes in a worker process with that folder
first on its path (tfbench/bench/worker.py); the record comes back into the same store.

It is installed on first use, with a progress line, or ahead with ``tfbench peers install``;
offline and not installed, its backends are n/a with the command that installs it.
``TFBENCH_NO_AUTO_INSTALL=1`` turns the install on first use off (the test suite sets it).

Compatibility shims are explicit and applied in the worker only, before the library is imported:
``numpy-aliases`` puts back ``np.int``, ``np.float`` and ``np.bool`` (removed in NumPy 1.24), which
SpikingJelly 0.0.0.0.14's CuPy back end still uses (``value.dtype == np.int`` in
``auto_cuda/base.py``): without them its first CuPy call raises AttributeError.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ACTIVE_ENV = "TFBENCH_PEER_ENV"            # set in a worker: the environment it runs in
NO_AUTO_INSTALL = "TFBENCH_NO_AUTO_INSTALL"
COMPLETE = ".tfbench-complete"             # written last: a folder without it is an interrupted install
INSTALL_TIMEOUT_S = 600


def _cupy_requirement() -> list[str]:
    """The CuPy wheel matching torch's CUDA (cupy-cuda13x for CUDA 13), when a GPU is here and CuPy is
    not importable already; none otherwise (the CPU back end needs no CuPy)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("cupy") is not None:
        return []
    major = (torch.version.cuda or "").split(".")[0]
    return [f"cupy-cuda{major}x=={CUPY_VERSION}"] if major else []


CUPY_VERSION = "14.2.0"   # the newest CuPy for CUDA 12 and 13 when this was pinned; it ran SpikingJelly 0.0.0.0.14


def restore_numpy_aliases() -> list[str]:
    """Put back the NumPy aliases removed in 1.24 (``np.int``, ``np.float``, ``np.bool``) as the
    builtins they stood for; returns the names it added (none where they exist)."""
    import numpy as np

    added = []
    for name, value in (("int", int), ("float", float), ("bool", bool)):
        if name not in np.__dict__:
            setattr(np, name, value)
            added.append(name)
    return added


SHIMS: dict[str, Callable[[], object]] = {"numpy-aliases": restore_numpy_aliases}


def cache_root() -> Path:
    """``$TFBENCH_CACHE_DIR`` (the kernels' cache root too), else ``~/.cache/tfbench``."""
    env = os.environ.get("TFBENCH_CACHE_DIR")
    return Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfbench"


@dataclass(frozen=True)
class PeerEnvironment:
    """A peer library installed apart: its pip requirements, the module that proves it imports, its shims."""

    name: str                       # e.g. "spikingjelly014"
    title: str                      # e.g. "SpikingJelly 0.0.0.0.14"
    requirements: tuple[str, ...]   # pinned, installed with --no-deps (torch, numpy, ... are tfbench's)
    probe_module: str               # imported in the worker to check the install
    shims: tuple[str, ...] = ()     # names in SHIMS, applied in the worker before the library is imported
    gpu_requirements: Callable[[], list[str]] = field(default=lambda: [], compare=False)

    def folder(self) -> Path:
        """The install folder, keyed by the requirements and the Python version."""
        versions = "-".join(r.replace("==", "-") for r in self.requirements)
        py = "py{}{}".format(*platform.python_version_tuple()[:2])
        return cache_root() / "peers" / f"{versions}-{py}"

    def installed(self) -> bool:
        return (self.folder() / COMPLETE).is_file()

    @property
    def active(self) -> bool:
        """Whether this process is a worker running in this environment."""
        return os.environ.get(ACTIVE_ENV) == self.name

    def install_command(self) -> str:
        return f"tfbench peers install {self.name}"

    def install(self, find_links: Path | None = None, say: Callable[[str], None] | None = None) -> Path:
        """Install into ``folder()`` (from PyPI, or only from ``find_links`` when given: offline
        machines); raises ``RuntimeError`` with pip's last line when it fails."""
        folder = self.folder()
        requirements = [*self.requirements, *self.gpu_requirements()]
        (say or (lambda _: None))(f"installing {self.title} ({', '.join(requirements)}) into {folder} ...")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / COMPLETE).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", str(folder),
               "--disable-pip-version-check"]
        if find_links is not None:
            cmd += ["--no-index", "--find-links", str(find_links)]
        try:
            out = subprocess.run(cmd + requirements, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pip did not finish within {INSTALL_TIMEOUT_S} s") from None
        if out.returncode != 0:
            lines = [line for line in (out.stderr or out.stdout).splitlines() if line.strip()
                     and not line.startswith("WARNING")]
            raise RuntimeError(lines[-1].strip() if lines else f"pip exited with {out.returncode}")
        (folder / COMPLETE).write_text("\n".join(requirements) + "\n")
        return folder

    def unavailable(self, say: Callable[[str], None] | None = None) -> str | None:
        """None when installed (installing it now on first use if allowed), else why not and how to."""
        if self.installed():
            return None
        if os.environ.get(NO_AUTO_INSTALL) == "1":
            return f"{self.title} is not installed; run: {self.install_command()}"
        try:
            self.install(say=say or (lambda text: print(text, file=sys.stderr, flush=True)))
        except RuntimeError as e:
            return f"{self.title} is not installed and could not be installed here ({e}); run: {self.install_command()}"
        return None


ENVIRONMENTS: dict[str, PeerEnvironment] = {
    e.name: e
    for e in (
        PeerEnvironment("spikingjelly014", "SpikingJelly 0.0.0.0.14", ("spikingjelly==0.0.0.0.14",),
                        probe_module="spikingjelly.activation_based.neuron", shims=("numpy-aliases",),
                        gpu_requirements=_cupy_requirement),
    )
}


def get(name: str) -> PeerEnvironment:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ValueError(f"unknown peer environment {name!r}; choose from: {', '.join(ENVIRONMENTS)}") from None
