"""--lean in the harness: refused before any work where it cannot apply, n/a for a backend whose neuron
cannot take BatchNorm in, recorded in the key only when set, and the same training as without it."""

from __future__ import annotations

import pytest
import torch

from tfbench.bench.config import normalize
from tfbench.bench.train import train
from tfbench.results.schema import RunConfig, RunRecord, config_key

TINY = dict(dataset="MNIST", synthetic=True, T=2, batch_size=2, epochs=1, max_steps=2, device="cpu")


@pytest.mark.parametrize("changes, words", [
    (dict(arch="sj:spiking_resnet18"), "lean applies to tfbench's Spiking-ResNets"),
    (dict(arch="ResNet18"), "ResNet18 is an ANN"),
    (dict(step_mode="single"), "needs step-mode multi"),
    (dict(parallel="temporal", world_size=2, T=4, chunks=2), r"got chunks 2; choose --chunks 1"),
])
def test_lean_refuses_before_any_work(changes, words) -> None:
    with pytest.raises(ValueError, match=words):
        normalize(RunConfig(lean=True, **{**TINY, **changes}))


def test_lean_in_the_temporal_pipeline_is_accepted() -> None:
    cfg = normalize(RunConfig(lean=True, **{**TINY, "parallel": "temporal", "world_size": 2, "T": 4}))
    assert cfg.lean and cfg.parallel == "temporal" and cfg.chunks == 1


def test_lean_with_a_backend_that_cannot_fold_is_na() -> None:
    rec = train(RunConfig(backend="torch", lean=True, **TINY))
    assert rec.status.startswith("n/a: lean folds BatchNorm into tfbench's neuron"), rec.status


def test_lean_is_in_the_key_only_when_set() -> None:
    """A record made before the option existed (no lean field) keeps its key; a lean one gets another."""
    plain, lean = (RunRecord(**normalize(RunConfig(lean=v, **TINY)).__dict__) for v in (False, True))
    before = {k: v for k, v in plain.config().items() if k != "lean"}
    assert "lean" not in plain.config() and config_key(before) == plain.key
    assert lean.config()["lean"] is True and lean.key != plain.key


def test_lean_first_step_has_the_defaults_loss() -> None:
    """The same seed, data and network through the harness: the first step's loss agrees to fp32 rounding, the
    records say lean and checked, the parameter counts agree. (One step: Adam's first
    update is about lr times the sign of each gradient, so a gradient that is zero but for rounding moves its
    weight by +-lr either way, and the second step's loss then differs by more than rounding on some CPUs.
    That the gradients agree is tests/ops/test_norm.py's and tests/models'.)"""
    recs = [train(RunConfig(lean=v, **{**TINY, "max_steps": 1})) for v in (False, True)]
    assert all(r.status == "ok" for r in recs), [r.status for r in recs]
    assert recs[1].options == "lean" and recs[1].checked
    assert recs[0].train_loss[0] == pytest.approx(recs[1].train_loss[0], rel=1e-5)
    assert recs[0].n_params == recs[1].n_params


def test_the_lean_check_fails_a_wrong_fold() -> None:
    """check_norm_layer passes tfbench's fused op and fails one that skips BatchNorm's shift."""
    from tfbench.bench.check import check_norm_layer
    from tfbench.bench.config import NEURONS
    from tfbench.ops import LIF

    p = NEURONS["LIF"]
    layer = LIF(**p.as_kwargs())
    assert check_norm_layer(layer, p, "cpu")

    class Unshifted(LIF):
        def forward_norm(self, z, bn, residual=None, residual_bits=None):
            with torch.no_grad():
                bias, bn.bias.data = bn.bias.data.clone(), torch.zeros_like(bn.bias)
            try:
                return super().forward_norm(z, bn, residual, residual_bits)
            finally:
                bn.bias.data = bias

    assert not check_norm_layer(Unshifted(**p.as_kwargs()), p, "cpu")
