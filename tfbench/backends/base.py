"""What a neuron backend is: a name, the library behind it, and where its layers are made.

A backend's layer takes ``[T, *]`` input current and returns ``[T, *]`` spikes; it keeps no state
between calls (a new batch starts from the resting membrane). ``unavailable(device)`` gives the
reason a backend cannot run here (library missing or failing to import, no GPU path), or None when
it can: the harness shows that reason as "n/a: reason" instead of silently using something else.

A :class:`Backend` is plain data, so the registry (``tfbench/backends/__init__.py``) is read without
importing torch or any peer library (the command line's ``--help`` lists it). Its adapter module —
the layer classes, ``DIFFERENCES`` (where the library's neuron differs from tfbench's,
docs/neurons.md), and optionally ``bytes_per_element`` (its layer's bytes moved per element, for
its memory floor), ``implementation(device)`` (which kernel the library chose) and ``probe()`` (an
extra reason it cannot run) — is imported on first use.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable


def quiet_import(name: str) -> ModuleType:
    """Import a peer library without its import-time ``torch.jit.script`` deprecation warnings
    (snnTorch and Norse script helpers when imported; the warning is torch's, not the user's to act on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        return importlib.import_module(name)


class Unsupported(ValueError):
    """This backend's library cannot express the requested neuron (the message says what)."""


def require(p: Any, known: tuple[type, ...], library: str) -> None:
    """Unsupported unless the neuron description ``p`` is one the adapter maps (tfbench.ops.neurons:
    ``LIFParams``, ``PLIFParams``, ...): a neuron added later is "n/a" in an adapter until it maps
    it, never silently another neuron."""
    if not isinstance(p, known):
        raise Unsupported(f"{library}'s adapter has no mapping for {type(p).__name__}")


def _resolve(ref: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (the module imported now)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@functools.lru_cache(maxsize=None)
def _import_failure(modules: tuple[str, ...]) -> str | None:
    """Why one of ``modules`` fails to import (one line), or None when all import."""
    for name in modules:
        try:
            quiet_import(name)
        except Exception as e:  # noqa: BLE001 - any failure to import means the library cannot run here
            text = " ".join(str(e).split())[:200]
            return f"{name} fails to import ({type(e).__name__}: {text})"
    return None


@dataclass(frozen=True)
class Backend:
    """One neuron implementation the harness can put into every spiking layer.

    ``module`` is the adapter module; ``layer`` and ``step_layer`` name its factories
    (``"module:attribute"``, taking the neuron's parameters), ``step_layer`` None when the backend
    has no single-step layer. ``imports`` are the peer library's modules that must import for it to
    run (a library installed but broken is n/a, not an error retried on every run).
    """

    name: str
    description: str
    module: str
    layer_ref: str
    step_layer_ref: str | None = None
    distribution: str | None = None       # the pip distribution whose version is recorded
    imports: tuple[str, ...] = ()
    requires_cuda: bool = False
    environment: str | None = None        # a peer environment of its own (environments.py): runs in a worker
    # how SpikingJelly's zoo models get this backend's neuron (tfbench/integrations/spikingjelly/zoo.py):
    # "layer" (its layer in every neuron's place) or "accelerated" (SpikingJelly's own nodes, then
    # tfbench.accelerate, keeping ``zoo_save``)
    zoo: str = "layer"
    zoo_save: str = "h"
    # whether its layer can take BatchNorm in (``forward_norm``: tfbench/ops/norm.py), what --lean needs
    folds_norm: bool = False

    def peer_environment(self):
        """Its :class:`~tfbench.backends.environments.PeerEnvironment` (None: tfbench's own environment)."""
        if self.environment is None:
            return None
        from .environments import get

        return get(self.environment)

    @property
    def isolated(self) -> bool:
        """Whether a run with it must go to a worker process (it has an environment and this is not it)."""
        env = self.peer_environment()
        return env is not None and not env.active

    def adapter(self) -> ModuleType:
        """The adapter module (imported now: it imports torch)."""
        return importlib.import_module(self.module)

    def version(self) -> str | None:
        if self.distribution is None:
            return None
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def installed(self) -> bool:
        """Whether the library behind it is installed (tfbench's own backends always are)."""
        if self.isolated:
            return self.peer_environment().installed()
        return self.distribution is None or self.version() is not None

    def unavailable(self, device: Any = None) -> str | None:
        """None when the backend can run on ``device``, else a short reason. A backend with an
        environment of its own is checked here only for what needs no import (the device, the
        install, which it does on first use); the rest is checked in its worker."""
        if self.requires_cuda and (device is None or str(device).split(":")[0] != "cuda"):
            return f"{self.name} runs only on CUDA GPUs"
        if self.isolated:
            return self.peer_environment().unavailable()
        if not self.installed():
            return f"{self.distribution} is not installed (pip install 'tfbench[peers]')"
        failure = _import_failure(self.imports)
        if failure is not None:
            return f"{self.distribution} {self.version()} is installed but {failure}"
        probe = getattr(self.adapter(), "probe", None)
        return probe() if probe is not None else None

    @property
    def differences(self) -> str:
        """Where this library's neuron differs from tfbench's (docs/neurons.md); "" when it does not."""
        return getattr(self.adapter(), "DIFFERENCES", "")

    @property
    def bytes_per_element(self) -> Callable[..., float] | None:
        """``(dtype, T, direction) -> bytes`` its layer must move per element, for its memory floor;
        None: the rule of an op keeping h (x, s, h forward; gs, h, gx backward)."""
        return getattr(self.adapter(), "bytes_per_element", None)

    def implementation(self, device: Any) -> str:
        """Which implementation the library ran on ``device`` (e.g. SpikingJelly's selected kernel)."""
        fn = getattr(self.adapter(), "implementation", None)
        return fn(device) if fn is not None else ""

    def layer(self, params):
        """A fresh multi-step layer ``[T, *] -> [T, *]`` of this backend for the neuron ``params``."""
        return _resolve(self.layer_ref)(params.validate())

    def step_layer(self, params):
        """A fresh single-step layer ``[*] -> [*]`` for the neuron ``params``: it keeps its membrane
        between calls (the network is stepped one time step at a time) until ``reset_state()``."""
        if self.step_layer_ref is None:
            raise Unsupported(f"{self.name} has no single-step layer")
        return _resolve(self.step_layer_ref)(params.validate())
