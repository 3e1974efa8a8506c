"""Pipelined independent runs (runs.py) and micro-batches in the network pipeline, on CPU ranks (gloo).

- R independent runs pipelined through k ranks give, bit for bit in fp32, what one process gives
  running each run's T steps alone: spikes, final membranes, dL/dx and dL/dv0 (k = 2 and 4; R = 1
  and several, so that several runs are in flight at once).
- Spiking-ResNet18 with micro-batches equals the single-process reference with the same
  per-segment, per-micro-batch BatchNorm (float64, every spike exactly, gradients to 1e-9), and with
  BatchNorm on its running statistics it equals today's whole-batch pipeline to fp32 rounding.
"""

from __future__ import annotations

import pytest
import torch

from tfbench.bench.scaling import pipelined_model_speedup
from tfbench.parallel import segment_op
from tfbench.parallel.runs import forward_runs
from tfbench.parallel.temporal import Link

from . import workers
from .test_temporal import _check_network, reference


def _one_process(d: dict, r: int):
    """Run r's T steps in one call of the op, with autograd: spikes, v_T, dL/dx, dL/dv0."""
    x = d["x"][r].clone().requires_grad_(True)
    v0 = d["v0"][r].clone().requires_grad_(True)
    s, v_T = segment_op.reference(x, v0, workers.PARAMS)
    gx, gv0 = torch.autograd.grad((s, v_T), (x, v0), (d["gs"][r], d["gv"][r]))
    return s.detach(), v_T.detach(), gx, gv0


@pytest.mark.parametrize("k,cases", [(2, (1, 6)), (4, (1, 3))])   # 6 > RECV_AHEAD: receives posted on the way
def test_pipelined_runs_equal_each_run_alone(tmp_path, k, cases):
    T = 8
    results = workers.spawn(workers.pipelined_runs, k, str(tmp_path), T, cases)
    for runs in cases:
        d = workers.runs_input(T, runs)
        assert d["x"].dtype == torch.float32
        for r in range(runs):
            s, v_T, gx, gv0 = _one_process(d, r)
            got_s = torch.cat([res[runs]["s"][r] for res in results])      # the ranks' segments in order
            got_gx = torch.cat([res[runs]["gx"][r] for res in results])
            assert torch.equal(got_s, s), f"R={runs} run {r}: spikes differ"
            assert 0 < s[T // k:].sum() < s[T // k:].numel()    # later segments spike: their v0 matters
            assert torch.equal(results[-1][runs]["v_T"][r], v_T), f"R={runs} run {r}: final membrane"
            assert torch.equal(got_gx, gx), f"R={runs} run {r}: dL/dx"
            assert torch.equal(results[0][runs]["gv0"][r], gv0), f"R={runs} run {r}: dL/dv0"
            # only the ends keep a run's end states; the middle ranks sent theirs on
            assert all(res[runs]["v_T"][r] is None for res in results[:-1])
            assert all(res[runs]["gv0"][r] is None for res in results[1:])
        # the runs are independent: different inputs, different spikes
        assert runs == 1 or not torch.equal(results[0][runs]["s"][0], results[0][runs]["s"][1])


def test_one_rank_runs_and_link_limits():
    """Without neighbours the runs are the op's segments in turn; a link refuses more runs than its tags."""
    d = workers.runs_input(4, 2)
    link = Link(ranks=[0], rank=0, micro_batches=2)
    out = forward_runs(2, lambda r: d["x"][r], workers.PARAMS, link, v0_of=lambda r: d["v0"][r], final=True)
    for r, (s, _, v_T) in enumerate(out):
        want_s, want_v = _one_process(d, r)[:2]
        assert torch.equal(s, want_s) and torch.equal(v_T, want_v)
    with pytest.raises(ValueError, match="3 runs on a link made for 2 micro-batches"):
        forward_runs(3, lambda r: d["x"][0], workers.PARAMS, link)


def test_pipelined_model():
    """R runs on k ranks: R segments plus the fill; with tseg = Ts/k and no hop, k*R/(R+k-1)."""
    assert pipelined_model_speedup(128, 4, 12.0, 3.0, 0.0) == pytest.approx(4 * 128 / 131)
    assert pipelined_model_speedup(1, 4, 12.0, 3.0, 0.0) == pytest.approx(1.0)   # one run: no overlap
    assert pipelined_model_speedup(64, 4, 12.0, 3.0, 0.1) == pytest.approx(64 * 12 / (64 * 3 + 3 * 3.1))


def test_micro_batched_network_equals_reference(tmp_path):
    """k=2, a batch of 3 in 2 micro-batches (2 + 1 samples): every spike, the logits, loss and every
    gradient against one process running each micro-batch's segments in turn (per-micro-batch BN)."""
    k, T, micro, batch = 2, 4, 2, 3
    ref = reference(T, k, micro_batches=micro, batch=batch)
    assert sum(s.sum() for s in ref["spikes"][-1]) > 0
    results = workers.spawn(workers.temporal_network, k, str(tmp_path), T, 1, micro, batch)
    _check_network(results, ref, k, micro_batches=micro)
    # the micro-batches' BN statistics really differ from the whole batch's: not today's pipeline
    whole = reference(T, k, batch=batch)
    assert not torch.allclose(whole["loss"], ref["loss"], rtol=1e-6, atol=0)


def test_micro_batches_with_running_bn_equal_the_whole_batch(tmp_path):
    """BN on running statistics (per-sample maths): 2 micro-batches give today's whole-batch pipeline's
    loss, logits and gradients to fp32 rounding (only the order of the sums over samples differs)."""
    k, T, micro, batch = 2, 4, 2, 4
    results = workers.spawn(workers.micro_batched_against_whole, k, str(tmp_path), T, micro, batch)
    for g, r in enumerate(results):
        assert sum(r["spiked"]) > 0
        torch.testing.assert_close(r["micro"]["loss"], r["whole"]["loss"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r["micro"]["logits"], r["whole"]["logits"], rtol=1e-5, atol=1e-6)
        for name, want in r["whole"]["grads"].items():
            # fp32: 1e-5 relative to each gradient tensor's largest element (sums over samples reordered)
            torch.testing.assert_close(r["micro"]["grads"][name], want, rtol=1e-5,
                                       atol=1e-5 * float(want.abs().max()), msg=f"rank {g} {name}")
