"""Every backend against the reference (docs/neurons.md): the same spikes on the same input where the library can express the
neuron, an ``Unsupported`` naming why where it cannot, and the gradients where they are meant to agree."""

from __future__ import annotations

import math

import pytest
import torch

from tfbench.backends import BACKENDS, Unsupported, get
from tfbench.bench.check import unexplained_mismatches
from tfbench.ops.lif import PRESETS, LIFParams, lif_reference

# Where each library cannot express a neuron (the documented statement: see the adapters' docstrings).
# Each entry: (backend, neuron) -> a phrase the Unsupported message must contain.
CANNOT = {
    ("norse", "if"): "IF neuron",
    ("norse", "soft-if"): "IF neuron",
    ("norse", "paper-rect"): "rect",
    ("norse", "atan"): "atan",
    ("norse", "sigmoid-alpha2"): "alpha=4",
    ("snntorch", "soft-leaky"): "soft-reset",
    ("norse", "atan-detached"): "atan",
    ("norse", "rect-detached"): "rect",
}

NEURONS: dict[str, LIFParams] = {
    **PRESETS,
    "atan": LIFParams(tau=2.0, surrogate="atan", alpha=2.0),
    "sigmoid-alpha2": LIFParams(tau=2.0, alpha=2.0),
    "soft-leaky": LIFParams(tau=2.0, v_reset=None),
    "soft-if": LIFParams(tau=math.inf, decay_input=False, v_reset=None),
    "reset-nonzero": LIFParams(tau=1.5, decay_input=False, v_threshold=0.5, v_reset=-0.2),
    "detached": LIFParams(tau=1.25, decay_input=False, v_threshold=0.3, detach_reset=True),
    "atan-detached": LIFParams(tau=2.0, surrogate="atan", alpha=2.0, detach_reset=True),
    "rect-detached": LIFParams(tau=1.25, decay_input=False, v_threshold=0.3, surrogate="rect", alpha=1.0,
                               detach_reset=True),
}


def _input(p: LIFParams, steps: int = 12, n: int = 2048, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = max(abs(p.v_threshold - p.rest), 0.1) * (p.tau if (p.decay_input and math.isfinite(p.tau)) else 1.0)
    return (torch.randn(steps, n, generator=g) * 1.2 + 0.4) * scale


# the backends whose library shares tfbench's environment (the others run in worker processes:
# tests/backends/test_environments.py)
IN_PROCESS = [name for name, b in BACKENDS.items() if b.environment is None]


@pytest.mark.parametrize("neuron", list(NEURONS))
@pytest.mark.parametrize("backend", IN_PROCESS)
def test_same_spikes_as_the_reference_or_unsupported(backend: str, neuron: str) -> None:
    p = NEURONS[neuron]
    b = get(backend)
    expected_failure = CANNOT.get((backend, neuron))
    if expected_failure is not None:
        with pytest.raises(Unsupported, match=expected_failure):
            b.layer(p)
        with pytest.raises(Unsupported, match=expected_failure):
            b.step_layer(p)
        return
    x = _input(p)
    ref, _ = lif_reference(x, **p.as_kwargs())
    assert 0.02 < ref.mean() < 0.9, "the input must make the neurons both fire and stay silent"
    with torch.no_grad():
        spikes = b.layer(p)(x)
        step = b.step_layer(p)
        step.reset_state()
        stepped = torch.stack([step(x[t]) for t in range(x.shape[0])])
    assert spikes.shape == x.shape
    assert unexplained_mismatches(spikes, x, p) == 0
    assert unexplained_mismatches(stepped, x, p) == 0
    # the single-step layer forgets its membrane on reset_state(): a second sequence starts at rest
    with torch.no_grad():
        step.reset_state()
        again = torch.stack([step(x[t]) for t in range(x.shape[0])])
    assert torch.equal(again, stepped)


def test_every_backend_is_registered_and_named_in_misses() -> None:
    assert {"tfbench", "torch", "spikingjelly", "spikingjelly-torch", "snntorch", "norse"} <= set(BACKENDS)
    with pytest.raises(ValueError, match="unknown backend 'nope'; choose from: tfbench, torch"):
        get("nope")
    assert get("SnnTorch") is BACKENDS["snntorch"]


def _grad(layer: torch.nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (layer(x).float() * w).sum().backward()
    return x.grad


# Where the gradients must agree with the reference's (docs/neurons.md; its autograd): the library uses the same
# surrogate and the same reset path. snnTorch's reset is always detached, so only detach_reset=True
# neurons match it; Norse's tanh surrogate equals the sigmoid at alpha=4.
GRADIENTS_MATCH = [
    ("snntorch", "detached"), ("snntorch", "atan-detached"), ("snntorch", "rect-detached"), ("snntorch", "if"),
    ("norse", "paper"), ("norse", "spikingjelly"), ("norse", "detached"), ("norse", "reset-nonzero"),
    ("tfbench", "paper"), ("spikingjelly-torch", "paper"),
]


@pytest.mark.parametrize(("backend", "neuron"), GRADIENTS_MATCH)
def test_gradients_match_the_reference(backend: str, neuron: str) -> None:
    p = NEURONS[neuron]
    if neuron == "if":   # snnTorch detaches the reset: compare with the detached IF neuron
        p = LIFParams(tau=math.inf, decay_input=False, detach_reset=True)
    x = _input(p, steps=8, n=512, seed=1)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    got = _grad(get(backend).layer(p), x, w)
    ref = _grad(lambda t: lif_reference(t, **p.as_kwargs())[0], x, w)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_snntorch_gradients_differ_when_the_reset_is_not_detached() -> None:
    """The stated difference is real: with detach_reset=False (the paper's preset) snnTorch's
    gradients are not the reference's, although its spikes are."""
    p = PRESETS["paper"]
    x = _input(p, steps=8, n=512, seed=1)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    got = _grad(get("snntorch").layer(p), x, w)
    ref = _grad(lambda t: lif_reference(t, **p.as_kwargs())[0], x, w)
    assert not torch.allclose(got, ref, rtol=1e-3, atol=1e-4)
    assert "detached" in get("snntorch").differences


def test_differences_are_stated_for_the_peers() -> None:
    for name in ("snntorch", "norse"):
        assert get(name).differences, f"{name} must say where it differs from tfbench's neuron"
    assert "late" in get("snntorch").differences
