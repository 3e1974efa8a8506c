"""The temporal pipeline on CPU ranks (gloo) equals one process running the segments in turn.

Spikes of every layer on every segment exactly, logits and loss, and every parameter gradient
(float64: to 1e-9 relative, the all-reduce sums in another order) against ``reference.py``: the same
network with per-segment BatchNorm statistics and the membrane carried across segments by autograd.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tfbench import models
from tfbench.ops.lif import lif
from tfbench.parallel.reference import CarryLIF, segmented_forward
from tfbench.parallel.temporal import chunk_bounds, segment

from . import workers


def reference(T: int, k: int, micro_batches: int = 1, batch: int = workers.BATCH, frozen: tuple[str, ...] = ()) -> dict:
    """One process: the network on the k segments in turn (each micro-batch on its own). ``spikes[g]``
    is what rank g's layers produce, in its call order: micro-batch by micro-batch, layer by layer.
    ``frozen``: the parameters under these prefixes take no gradient (``workers.freeze``)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.build(workers.ARCH, lambda: CarryLIF(workers.PARAMS), num_classes=workers.CLASSES).double()
    workers.freeze(model, frozen)
    spikes = []
    for m in model.modules():
        if isinstance(m, CarryLIF):
            m.register_forward_hook(lambda mod, inp, out: spikes.append(out.detach().clone()))
    x, y = workers.network_input(T, batch=batch)
    logits = segmented_forward(model, x, k, micro_batches)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    micro = min(micro_batches, batch)
    layers = len(spikes) // (k * micro)
    # the reference's call order: micro-batch, then segment, then layer
    calls = [spikes[i * layers:(i + 1) * layers] for i in range(k * micro)]
    return {"logits": logits.detach(), "loss": loss.detach(), "layers": layers,
            "spikes": [[s for m in range(micro) for s in calls[m * k + g]] for g in range(k)],
            "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}}


def _check_network(results: list[dict], ref: dict, k: int, micro_batches: int = 1) -> None:
    for g, r in enumerate(results):
        assert ref["layers"] == 17                        # Spiking-ResNet18: stem + 2 per BasicBlock
        assert len(r["spikes"]) == 17 * micro_batches
        for layer, (got, want) in enumerate(zip(r["spikes"], ref["spikes"][g])):
            assert torch.equal(got, want), f"rank {g} call {layer}: spikes differ"
        torch.testing.assert_close(r["logits"], ref["logits"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r["loss"], ref["loss"], rtol=1e-12, atol=1e-12)
        assert r["grads"].keys() == ref["grads"].keys()
        for name, want in ref["grads"].items():
            torch.testing.assert_close(r["grads"][name], want, rtol=1e-9, atol=1e-12, msg=f"rank {g} {name}")
    # after one step the ranks hold the same parameters and, in evaluation, the same logits
    for r in results[1:]:
        for name, p in results[0]["params"].items():
            assert torch.equal(r["params"][name], p), name
        assert torch.equal(r["eval_logits"], results[0]["eval_logits"])


@pytest.mark.parametrize("k,T,chunks", [(2, 4, 1), (4, 8, 3)])
def test_network_equals_single_process(tmp_path, k, T, chunks):
    ref = reference(T, k)
    # the segments' spikes really depend on the boundary membranes: not one process per segment from rest
    assert sum(s.sum() for s in ref["spikes"][-1]) > 0
    results = workers.spawn(workers.temporal_network, k, str(tmp_path), T, chunks)
    _check_network(results, ref, k)


@pytest.mark.parametrize("micro_batches, frozen", [(1, ()), (2, ()), (1, ("conv1", "bn1"))],
                         ids=["whole-batch", "micro-batches", "frozen-stem"])
def test_lean_network_equals_the_default_pipeline(tmp_path, micro_batches, frozen):
    """Lean (BatchNorm folded into the fused conv -> BN -> LIF nodes, v0 / v_T exchanged around each node):
    the reference's logits, loss and gradients, and after one step the default pipeline's parameters, BatchNorm
    statistics (averaged over the ranks) and evaluation logits (float64: to rounding, BatchNorm's sums are
    made in another order). "frozen-stem": the stem takes no gradient, so no v_T before the first block
    needs one, but the next rank still sends its dL/dv0."""
    k, T = 2, 4
    ref = reference(T, k, micro_batches, frozen=frozen)
    (tmp_path / "lean").mkdir()
    (tmp_path / "default").mkdir()
    lean = workers.spawn(workers.temporal_network, k, str(tmp_path / "lean"), T, 1, micro_batches, workers.BATCH,
                         True, frozen)
    default = workers.spawn(workers.temporal_network, k, str(tmp_path / "default"), T, 1, micro_batches,
                            workers.BATCH, False, frozen)
    for g, (r, d) in enumerate(zip(lean, default)):
        torch.testing.assert_close(r["logits"], ref["logits"], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r["loss"], ref["loss"], rtol=1e-12, atol=1e-12)
        assert r["grads"].keys() == ref["grads"].keys()
        for name, want in ref["grads"].items():
            torch.testing.assert_close(r["grads"][name], want, rtol=1e-9, atol=1e-12, msg=f"rank {g} {name}")
        for name, want in d["params"].items():
            torch.testing.assert_close(r["params"][name], want, rtol=1e-9, atol=1e-12, msg=f"rank {g} {name}")
        for name, want in d["buffers"].items():
            torch.testing.assert_close(r["buffers"][name], want, rtol=1e-9, atol=1e-12, msg=f"rank {g} {name}")
        torch.testing.assert_close(r["eval_logits"], d["eval_logits"], rtol=1e-9, atol=1e-12)
    assert torch.equal(lean[1]["eval_logits"], lean[0]["eval_logits"])


@pytest.mark.slow
def test_network_on_eight_ranks(tmp_path):
    """The 8-rank pipeline (T=8: one step per rank) on CPU, as issue 7 needs it."""
    ref = reference(8, 8)
    results = workers.spawn(workers.temporal_network, 8, str(tmp_path), 8, 2, timeout_s=600)
    _check_network(results, ref, 8)


@pytest.mark.parametrize("k,chunks", [(2, 4), (4, 2)])
def test_layer_with_chunks_equals_the_op(tmp_path, k, chunks):
    T, n = 8, 64
    results = workers.spawn(workers.temporal_layer, k, str(tmp_path), T, n, chunks)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(T, n, generator=g, dtype=torch.float64) * 0.5 + 0.3).requires_grad_(True)
    gs = torch.randn(T, n, generator=g, dtype=torch.float64)
    s, _ = lif(x, **workers.PARAMS.as_kwargs())
    (gx,) = torch.autograd.grad(s, x, gs)
    # each rank's chunks side by side ([T/k, n], neurons in order), the ranks' segments one after another
    got_s = torch.cat([r["s"] for r in results])
    got_gx = torch.cat([r["gx"] for r in results])
    assert torch.equal(got_s, s.detach())
    assert 0 < s.sum() < s.numel()
    torch.testing.assert_close(got_gx, gx, rtol=1e-12, atol=1e-12)


def test_segments_and_chunks():
    assert [segment(8, r, 4) for r in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    with pytest.raises(ValueError, match=r"T=6, 4 processes; choose T a multiple of 4"):
        segment(6, 0, 4)
    assert chunk_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert chunk_bounds(2, 5) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="chunks must be >= 1, got 0"):
        chunk_bounds(4, 0)


def test_a_model_without_pipelined_neurons_is_refused():
    from torch import nn

    from tfbench.parallel.temporal import Link, TemporalParallel

    with pytest.raises(ValueError, match="Sequential has no PipelinedLIF layer"):
        TemporalParallel(nn.Sequential(nn.Linear(2, 2)), Link(ranks=[0], rank=0))
