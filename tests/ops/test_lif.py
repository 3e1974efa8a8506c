"""The fused LIF op against the plain-loop reference, on every device present.

Spikes must be equal in fp32 away from ties; v_T, dL/dx and dL/dv0 within 1e-5 relative (fp32);
bf16/fp16 no worse than twice the plain PyTorch loop's error in that dtype. Outputs start as NaN
(conftest.py), so an element the kernel never wrote fails.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfbench
from tfbench.ops.lif import LIF, PRESETS, LIFParams, lif, lif_reference, op
from tests.conftest import DEVICES

from .lif_cases import ALL_PARAMS, loss_weights, make_input, masked, reference64, rel_err, run_with_grads, tie_mask

FP32_RTOL = 1e-5
# Gradients are sums of terms of order alpha; in a layer of one or two neurons they can cancel to
# almost nothing, so tiny random layers measure the error against this scale as well.
GRAD_SCALE = 1e-2


def _lif_fn(x, v0, **kw):
    return lif(x, v0, **kw)


def check_against_reference(x: torch.Tensor, v0: torch.Tensor | None, p: LIFParams) -> None:
    ws, wv = loss_weights(x)
    mask = tie_mask(x, v0, p)
    assert mask.float().mean() > 0.5, "the test input is mostly ties: pick other values"
    s, v, gx, gv0 = run_with_grads(_lif_fn, x, v0, p, ws, wv)
    rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv)
    assert s.dtype == x.dtype and s.shape == x.shape and s.device == x.device
    assert v.dtype == torch.float32 and v.shape == x.shape[1:]
    assert not torch.isnan(s).any() and not torch.isnan(gx).any()
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True)), "spikes differ away from ties"
    assert rel_err(masked(v, mask, False), masked(rv, mask, False), p.v_threshold) < FP32_RTOL
    assert rel_err(masked(gx, mask, True), masked(rgx, mask, True)) < FP32_RTOL
    if v0 is not None:
        assert gv0.dtype == v0.dtype
        assert rel_err(masked(gv0, mask, False), masked(rgv0, mask, False)) < FP32_RTOL


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", ALL_PARAMS, ids=lambda p: f"{p.decay_input}-{p.v_reset}-{p.detach_reset}-{p.surrogate}")
@pytest.mark.parametrize("with_v0", [False, True])
def test_every_parameter_combination(device, p, with_v0):
    x = make_input((9, 3, 5, 4), p, device=device, seed=hash((p, with_v0)) % 1000)
    v0 = (torch.rand(x.shape[1:], device=device) * p.v_threshold) if with_v0 else None
    check_against_reference(x, v0, p)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.integers(1, 24),
       trailing=st.lists(st.integers(1, 9), min_size=0, max_size=3),
       tau=st.one_of(st.floats(1.05, 20.0), st.just(math.inf)),
       decay=st.booleans(), thr=st.floats(0.2, 2.0),
       reset=st.one_of(st.none(), st.floats(-0.5, 0.1).map(lambda r: round(r, 4))),  # no subnormal resets
       detach=st.booleans(), sg=st.sampled_from(["sigmoid", "atan", "rect"]), alpha=st.floats(0.5, 6.0),
       with_v0=st.booleans(), device=st.sampled_from(DEVICES), seed=st.integers(0, 10_000))
def test_random_shapes_and_parameters(steps, trailing, tau, decay, thr, reset, detach, sg, alpha, with_v0,
                                      device, seed):
    if math.isinf(tau):
        decay = False  # the IF neuron: tau=inf with decay_input=True is rejected (tested below)
    p = LIFParams(tau, decay, thr, reset, detach, sg, alpha).validate()
    x = make_input((steps, *trailing), p, device=device, seed=seed)
    v0 = torch.rand(x.shape[1:], device=device) * thr if with_v0 else None
    ws, wv = loss_weights(x)
    mask = tie_mask(x, v0, p)
    s, v, gx, gv0 = run_with_grads(_lif_fn, x, v0, p, ws, wv)
    rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    assert rel_err(masked(v, mask, False), masked(rv, mask, False), p.v_threshold) < FP32_RTOL
    assert rel_err(masked(gx, mask, True), masked(rgx, mask, True), GRAD_SCALE) < FP32_RTOL
    if with_v0:
        assert rel_err(masked(gv0, mask, False), masked(rgv0, mask, False), GRAD_SCALE) < FP32_RTOL


@pytest.mark.parametrize("device", DEVICES)
def test_one_time_step(device):
    p = PRESETS["spikingjelly"]
    check_against_reference(make_input((1, 64), p, device=device), None, p)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_input(device):
    p = PRESETS["paper"]
    base = make_input((6, 8, 10), p, device=device, seed=3)
    x = base.transpose(1, 2)[:, ::2]  # strided in both trailing dims
    assert not x.is_contiguous()
    check_against_reference(x, None, p)
    v0 = torch.rand(10, 8, device=device).t()[::2]  # [4, 10], strided
    check_against_reference(base[:, ::2], v0, p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("via_dispatcher", [False, True])
def test_both_eager_routes_agree(device, via_dispatcher, monkeypatch):
    monkeypatch.setattr(op, "EAGER_VIA_DISPATCHER", via_dispatcher)
    p = PRESETS["spikingjelly"]
    check_against_reference(make_input((5, 33), p, device=device), torch.zeros(33, device=device), p)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["spikingjelly", "paper"])
def test_half_precision_within_twice_plain_pytorch_error(device, dtype, name):
    p = PRESETS[name]
    x = make_input((16, 4096), p, dtype=dtype, device=device, seed=7)
    ws, wv = loss_weights(x)
    truth = reference64(x, None, p, ws, wv)  # float64 on the very same (rounded) inputs
    fused = run_with_grads(_lif_fn, x, None, p, ws, wv)
    plain = run_with_grads(lif_reference, x, None, p, ws, wv)  # the plain loop in bf16/fp16
    assert fused[0].dtype == dtype and fused[2].dtype == dtype
    for i, what in [(0, "spikes"), (1, "v_T"), (2, "dL/dx")]:
        err_fused, err_plain = rel_err(fused[i], truth[i]), rel_err(plain[i], truth[i])
        assert err_fused <= 2 * err_plain + 1e-7, f"{what}: fused {err_fused:.3g} vs plain {err_plain:.3g}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_kept_membrane_gives_back_the_forward_spikes(device, dtype):
    """h is stored rounded; the spike recomputed from it in backward must be the forward's spike."""
    p = LIFParams(tau=2.0, v_threshold=0.3)
    # Many membranes a hair from the threshold, on both sides: rounding to nearest would flip them.
    x = (0.6 + (torch.rand(4, 20000, dtype=torch.float64) - 0.5) * 4e-3).to(dtype).to(device)
    s, h, _ = torch.ops.tfbench.lif_forward(x, None, *p.as_kwargs().values())
    assert torch.equal(s, (h.float() >= p.v_threshold).to(dtype))


def _detached_membrane_fn(x, v0, hard, decay):
    kw = dict(tau=1.7, decay_input=decay, v_threshold=0.9, v_reset=0.1 if hard else None, detach_reset=True)
    return lif(x, v0, **kw)[1]


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("decay", [True, False])
@pytest.mark.parametrize("via_dispatcher", [False, True])
def test_gradcheck_float64(hard, decay, via_dispatcher, monkeypatch):
    """gradcheck needs the true derivative; with detach_reset the map (x, v0) -> v_T is piecewise
    affine and the op's backward is its exact derivative (the surrogate enters only through the
    spike output, checked against the reference above)."""
    monkeypatch.setattr(op, "EAGER_VIA_DISPATCHER", via_dispatcher)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 7, generator=g, dtype=torch.float64) * 1.2).requires_grad_(True)
    v0 = (torch.rand(7, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: _detached_membrane_fn(a, b, hard, decay), (x, v0), eps=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [PRESETS["paper"], LIFParams(v_reset=None, surrogate="atan", detach_reset=True)])
def test_opcheck(device, p):
    x = make_input((5, 24), p, device=device).requires_grad_(True)
    for v0 in (None, torch.rand(24, device=device, requires_grad=True)):
        torch.library.opcheck(torch.ops.tfbench.lif_forward.default, (x, v0, *p.as_kwargs().values()))
    gs, h = torch.randn(5, 24, device=device), make_input((5, 24), p, device=device)
    torch.library.opcheck(torch.ops.tfbench.lif_backward.default, (gs, h, None, *p.as_kwargs().values()))


def test_torch_compile_fullgraph_cpu():
    p = PRESETS["paper"]
    layer = LIF(**p.as_kwargs())

    def step(x):
        return layer(x * 2.0).mean(0)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x = make_input((6, 3, 8), p).requires_grad_(True)
    out = compiled(x)
    out.sum().backward()
    gx = x.grad.clone()
    x.grad = None
    step(x).sum().backward()
    assert torch.equal(out, step(x))
    assert torch.allclose(gx, x.grad)


def test_module_and_presets():
    layer = LIF.from_preset("paper")
    assert layer.params == PRESETS["paper"]
    assert "tau=1.25" in repr(layer) and "v_threshold=0.3" in repr(layer)
    x = make_input((4, 2, 3), layer.params)
    s, v = layer(x, return_state=True)
    rs, rv = lif_reference(x, **layer.params.as_kwargs())
    assert torch.equal(s, rs) and v.shape == (2, 3)
    assert LIF.from_preset("if").params.tau == math.inf
    assert tfbench.LIF is LIF and tfbench.lif is lif
    with pytest.raises(ValueError, match="known: spikingjelly, paper"):
        LIF.from_preset("nope")


def test_if_neuron_integrates_without_leak():
    x = torch.full((4, 1), 0.3)
    s, v = lif(x, tau=math.inf, decay_input=False, v_threshold=1.0, v_reset=0.0)
    assert s.flatten().tolist() == [0.0, 0.0, 0.0, 1.0]  # 0.3, 0.6, 0.9, 1.2 >= 1
    assert v.item() == 0.0


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(tau=1.0), ValueError, "tau must be > 1"),
    (dict(tau=0.5), ValueError, "tau must be > 1"),
    (dict(tau=float("nan")), ValueError, "tau must be > 1"),
    (dict(tau=math.inf), ValueError, "decay_input=False"),
    (dict(surrogate="relu"), ValueError, "surrogate must be one of sigmoid, atan, rect"),
    (dict(alpha=0.0), ValueError, "alpha must be"),
    (dict(v_threshold=math.inf), ValueError, "v_threshold"),
    (dict(v_reset=math.nan), ValueError, "v_reset"),
])
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        lif(torch.rand(3, 4), **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="0-dimensional"):
        lif(torch.tensor(1.0))
    with pytest.raises(ValueError, match="T >= 1"):
        lif(torch.rand(0, 4))
    with pytest.raises(TypeError, match="x must be float32, bfloat16 or float16"):
        lif(torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        lif([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"v0 must have x.shape\[1:\] = \(4,\), got \(5,\)"):
        lif(torch.rand(3, 4), torch.rand(5))
    with pytest.raises(TypeError, match="v0 must be a floating-point"):
        lif(torch.rand(3, 4), torch.ones(4, dtype=torch.int32))
    with pytest.raises(ValueError, match="v0 must be on x's device"):
        lif(torch.rand(3, 4), torch.rand(4, device="meta"))
    with pytest.raises(ValueError, match="CPU or CUDA device"):
        lif(torch.rand(3, 4, device="meta"))


def test_empty_neuron_axis():
    s, v = lif(torch.rand(3, 0, 5))
    assert s.shape == (3, 0, 5) and v.shape == (0, 5)
