"""The pre-timing check: spikes equal to the reference's (docs/neurons.md) except after a near-tie."""

from __future__ import annotations

import torch

from tfbench.bench.check import check_layer, membrane_reference, unexplained_mismatches
from tfbench.ops.lif import PRESETS, lif_reference


def test_reference_matches_lif_reference() -> None:
    p = PRESETS["paper"]
    x = torch.randn(6, 300, generator=torch.Generator().manual_seed(0)) * 0.5
    s, h = membrane_reference(x, p)
    assert torch.equal(s.float(), lif_reference(x.double(), **p.as_kwargs())[0].float())
    assert torch.equal(s, (h >= p.v_threshold).double())


def test_flipped_spike_is_caught_unless_at_a_tie() -> None:
    p = PRESETS["paper"]
    x = torch.randn(6, 300, generator=torch.Generator().manual_seed(1)) * 0.5
    s, h = membrane_reference(x, p)
    assert unexplained_mismatches(s, x, p) == 0
    far = ((h - p.v_threshold).abs() > 0.05).nonzero()[0]
    wrong = s.clone()
    wrong[far[0], far[1]] = 1 - wrong[far[0], far[1]]
    assert unexplained_mismatches(wrong, x, p) == 1
    # a neuron that sits exactly on the threshold may fire or not (> vs >=): not counted
    x2 = x.clone()
    x2[0, 7] = p.v_threshold                               # h[0] = x[0] from rest: an exact tie
    s2, _ = membrane_reference(x2, p)
    strict = s2.clone()
    strict[0, 7] = 0
    assert unexplained_mismatches(strict, x2, p) == 0


def test_check_layer_rejects_a_wrong_neuron() -> None:
    p = PRESETS["paper"]

    class NoReset(torch.nn.Module):   # integrates without resetting: wrong after the first spike
        def forward(self, x):
            v = torch.cumsum(x, 0)
            return (v >= p.v_threshold).float()

    assert not check_layer(NoReset(), p, "cpu")
    assert check_layer(_Ref(p), p, "cpu")


class _Ref(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return lif_reference(x, **self.p.as_kwargs())[0]


# ------------------------------------------------------------------------------------------------
# PLIF through every backend (the harness's `--neuron PLIF`)
# ------------------------------------------------------------------------------------------------
import pytest  # noqa: E402

from tfbench.backends import BACKENDS, Unsupported, get  # noqa: E402
from tfbench.ops.neurons import PLIF_PRESETS, PLIFParams  # noqa: E402
from tfbench.ops.reference import plif_reference  # noqa: E402

PLIF_CANNOT = {"norse": "learnable membrane time constant", "spikingjelly014": "no mapping for PLIFParams",
               "spikingjelly014-torch": "no mapping for PLIFParams"}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("name", ["paper", "spikingjelly"])
def test_every_backend_builds_plif_or_says_why(backend: str, name: str) -> None:
    """Each backend's layer factory takes a PLIF description: its layer (and single-step layer) passes
    the correctness gate, or it raises Unsupported naming the reason."""
    p = PLIF_PRESETS[name].validate()
    b = get(backend)
    reason = b.unavailable("cpu")
    if reason is not None:  # not installed here, or runs elsewhere (a GPU, a peer environment of its own)
        pytest.skip(f"{backend}: {reason}")
    if backend in PLIF_CANNOT:
        with pytest.raises(Unsupported, match=PLIF_CANNOT[backend]):
            b.layer(p)
        return
    layer = b.layer(p)
    assert check_layer(layer, p, "cpu")
    assert any(param.numel() == 1 for param in layer.parameters()), "PLIF's time constant must be learnable"
    x = torch.randn(8, 512, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.3
    step = b.step_layer(p)
    step.reset_state()
    with torch.no_grad():
        stepped = torch.stack([step(x[t]) for t in range(x.shape[0])])
    assert unexplained_mismatches(stepped, x, p) == 0


def test_the_gate_rejects_a_plif_with_the_wrong_time_constant() -> None:
    p = PLIF_PRESETS["paper"].validate()
    wrong = get("tfbench").layer(PLIFParams(**{**p.as_kwargs(), "init_tau": 3.0}))
    assert not check_layer(wrong, p, "cpu")


def test_snntorch_plif_learns_beta_not_w() -> None:
    """The stated difference, exactly: snnTorch's PLIF (Leaky, learn_beta) learns beta = 1 - 1/tau, so
    its gradient is dL/dbeta = -dL/dk where tfbench's (SpikingJelly's) is dL/dw = dL/dk k (1 - k);
    with the reset detached (snnTorch always detaches it) the two agree through that factor."""
    p = PLIFParams(init_tau=1.25, decay_input=False, v_threshold=0.3, detach_reset=True).validate()
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(4)) * 0.3 + 0.2
    ws = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    snn_layer = get("snntorch").layer(p)
    (snn_layer(x) * ws).sum().backward()
    (beta,) = [q for q in snn_layer.parameters()]
    w = torch.tensor(p.init_w(), requires_grad=True)
    (plif_reference(x, w, v_threshold=0.3, decay_input=False, detach_reset=True)[0] * ws).sum().backward()
    k = torch.sigmoid(w.detach())
    assert torch.allclose(beta.grad, -w.grad / (k * (1 - k)), rtol=1e-4, atol=1e-6)
    assert "beta" in get("snntorch").differences
