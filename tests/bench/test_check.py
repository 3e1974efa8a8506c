"""The pre-timing check: spikes equal to LIF_SPEC's except after a near-tie."""

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
