"""``lif(..., save="input")``: the op keeping x (and membrane checkpoints) instead of h, on every device.

The maths is the same as ``save="h"``: against the float64 reference on every parameter combination,
and against ``save="h"`` itself: spikes and v_T bit for bit in every dtype (the recomputed h is the
forward's), gradients bit for bit on the CPU in fp32 and to 1e-6 on GPUs; in bf16/fp16 the gradient
uses the unrounded h, so it is compared with the reference. Outputs start as NaN (conftest.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfbench.ops.lif import LIF, PRESETS, LIFParams, lif, lif_reference, op
from tfbench.ops.lif.alloc import CKPT, ckpt_rows
from tests.conftest import DEVICES

from .lif_cases import ALL_PARAMS, loss_weights, make_input, masked, reference64, rel_err, run_with_grads, tie_mask

FP32_RTOL = 1e-5
GRAD_SCALE = 1e-2  # as test_lif.py: tiny random layers' gradients can cancel to almost nothing
STEPS = (1, 5, CKPT, CKPT + 1, 2 * CKPT + 3)  # below, at, just past and well past a segment boundary


def _recompute(x, v0, **kw):
    return lif(x, v0, save="input", **kw)


def _kept(x, v0, **kw):
    return lif(x, v0, save="h", **kw)


def _same_as_kept(x: torch.Tensor, v0: torch.Tensor | None, p: LIFParams, ws, wv) -> None:
    """save="input" against save="h" on the same inputs: spikes, v_T exactly; gradients (fp32) closely."""
    a = run_with_grads(_recompute, x, v0, p, ws, wv)
    b = run_with_grads(_kept, x, v0, p, ws, wv)
    assert torch.equal(a[0], b[0]), "spikes differ from save='h'"
    assert torch.equal(a[1], b[1]), "v_T differs from save='h'"
    if x.dtype in (torch.float32, torch.float64):
        for got, want in zip(a[2:], b[2:]):
            if want is None:
                continue
            if x.device.type == "cpu":
                assert torch.equal(got, want)
            else:
                assert rel_err(got, want, GRAD_SCALE) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", ALL_PARAMS, ids=lambda p: f"{p.decay_input}-{p.v_reset}-{p.detach_reset}-{p.surrogate}")
@pytest.mark.parametrize("with_v0", [False, True])
def test_every_parameter_combination(device, p, with_v0):
    for steps in STEPS:
        x = make_input((steps, 3, 5, 4), p, device=device, seed=hash((p, with_v0, steps)) % 1000)
        v0 = (torch.rand(x.shape[1:], device=device) * p.v_threshold) if with_v0 else None
        ws, wv = loss_weights(x)
        mask = tie_mask(x, v0, p)
        s, v, gx, gv0 = run_with_grads(_recompute, x, v0, p, ws, wv)
        rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv)
        assert s.dtype == x.dtype and s.shape == x.shape and v.dtype == torch.float32
        assert not torch.isnan(s).any() and not torch.isnan(gx).any()
        assert torch.equal(masked(s, mask, True), masked(rs, mask, True)), "spikes differ away from ties"
        assert rel_err(masked(v, mask, False), masked(rv, mask, False), p.v_threshold) < FP32_RTOL
        assert rel_err(masked(gx, mask, True), masked(rgx, mask, True), GRAD_SCALE) < FP32_RTOL
        if with_v0:
            assert rel_err(masked(gv0, mask, False), masked(rgv0, mask, False), GRAD_SCALE) < FP32_RTOL
        _same_as_kept(x, v0, p, ws, wv)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.integers(1, 40),
       trailing=st.lists(st.integers(1, 9), min_size=0, max_size=3),
       tau=st.one_of(st.floats(1.05, 20.0), st.just(math.inf)),
       decay=st.booleans(), thr=st.floats(0.2, 2.0),
       reset=st.one_of(st.none(), st.floats(-0.5, 0.1).map(lambda r: round(r, 4))),
       detach=st.booleans(), sg=st.sampled_from(["sigmoid", "atan", "rect"]), alpha=st.floats(0.5, 6.0),
       with_v0=st.booleans(), device=st.sampled_from(DEVICES), seed=st.integers(0, 10_000))
def test_random_shapes_and_parameters(steps, trailing, tau, decay, thr, reset, detach, sg, alpha, with_v0,
                                      device, seed):
    if math.isinf(tau):
        decay = False
    p = LIFParams(tau, decay, thr, reset, detach, sg, alpha).validate()
    x = make_input((steps, *trailing), p, device=device, seed=seed)
    v0 = torch.rand(x.shape[1:], device=device) * thr if with_v0 else None
    ws, wv = loss_weights(x)
    mask = tie_mask(x, v0, p)
    s, v, gx, gv0 = run_with_grads(_recompute, x, v0, p, ws, wv)
    rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    assert rel_err(masked(v, mask, False), masked(rv, mask, False), p.v_threshold) < FP32_RTOL
    assert rel_err(masked(gx, mask, True), masked(rgx, mask, True), GRAD_SCALE) < FP32_RTOL
    if with_v0:
        assert rel_err(masked(gv0, mask, False), masked(rgv0, mask, False), GRAD_SCALE) < FP32_RTOL
    _same_as_kept(x, v0, p, ws, wv)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["spikingjelly", "paper"])
def test_half_precision(device, dtype, name):
    """Spikes and v_T as save="h" bit for bit; dL/dx within twice the plain PyTorch loop's error in
    that dtype, and no further from the float64 truth than save="h"'s (it differentiates the unrounded h)."""
    p = PRESETS[name]
    x = make_input((2 * CKPT + 5, 4096), p, dtype=dtype, device=device, seed=7)
    ws, wv = loss_weights(x)
    truth = reference64(x, None, p, ws, wv)
    fused = run_with_grads(_recompute, x, None, p, ws, wv)
    kept = run_with_grads(_kept, x, None, p, ws, wv)
    plain = run_with_grads(lif_reference, x, None, p, ws, wv)
    assert fused[0].dtype == dtype and fused[2].dtype == dtype
    assert torch.equal(fused[0], kept[0]) and torch.equal(fused[1], kept[1])
    err_fused, err_plain, err_kept = (rel_err(r[2], truth[2]) for r in (fused, plain, kept))
    assert err_fused <= 2 * err_plain + 1e-7, f"dL/dx: fused {err_fused:.3g} vs plain {err_plain:.3g}"
    assert err_fused <= 1.05 * err_kept + 1e-7, f"dL/dx: input {err_fused:.3g} vs h {err_kept:.3g}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_backward_recomputes_the_forward_spikes(device, dtype):
    """The spike the backward recomputes is the forward's, element by element, also for membranes a
    hair from the threshold (where a rounded h would flip). With a detached hard reset, gs = 0 and
    dL/dv_T = 1, dL/dx at the last step is (1 - s) / tau: zero exactly where the backward saw a spike."""
    p = LIFParams(tau=2.0, v_threshold=0.3, v_reset=0.0, detach_reset=True)
    steps = CKPT + 1  # the last step is the first of a second segment: recomputed from a checkpoint
    x = (0.6 + (torch.rand(steps, 20000, dtype=torch.float64) - 0.5) * 4e-3).to(dtype).to(device)
    x.requires_grad_(True)
    s, v = lif(x, save="input", **p.as_kwargs())
    (gx,) = torch.autograd.grad(v.sum(), x)
    assert torch.equal(gx[-1] == 0, s[-1] == 1)
    assert 0.05 < s[-1].float().mean().item() < 0.95  # both sides of the threshold are exercised
    assert torch.equal(s, lif(x.detach(), save="h", **p.as_kwargs())[0])


@pytest.mark.parametrize("device", DEVICES)
def test_keeps_the_input_and_checkpoints_not_h(device):
    """What autograd holds for backward: x itself (no copy) and [ckpt_rows(T), *] fp32 membranes."""
    p = PRESETS["paper"]
    steps = 2 * CKPT + 1
    x = make_input((steps, 6, 5), p, device=device).requires_grad_(True)
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        s, _ = lif(x, save="input", **p.as_kwargs())
    kept = [t for t in saved if t is not None]
    assert any(t.data_ptr() == x.data_ptr() and t.shape == x.shape for t in kept)
    assert any(t.shape == (ckpt_rows(steps), 6, 5) and t.dtype == torch.float32 for t in kept)
    assert sum(t.numel() * t.element_size() for t in kept if t.data_ptr() != x.data_ptr()) \
        == ckpt_rows(steps) * 30 * 4
    s.sum().backward()
    assert x.grad is not None and not torch.isnan(x.grad).any()


def test_checkpoint_rows():
    assert [ckpt_rows(t) for t in (1, CKPT - 1, CKPT, CKPT + 1, 2 * CKPT, 2 * CKPT + 1)] == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_input_and_v0_in_another_dtype(device):
    p = PRESETS["paper"]
    base = make_input((CKPT + 3, 8, 10), p, device=device, seed=3)
    x = base.transpose(1, 2)[:, ::2]
    assert not x.is_contiguous()
    v0 = torch.rand(8, 5, device=device, dtype=torch.float64).t() * 0.2  # [5, 8], strided, float64
    assert not v0.is_contiguous() and v0.shape == x.shape[1:]
    ws, wv = loss_weights(x)
    s, v, gx, gv0 = run_with_grads(_recompute, x, v0, p, ws, wv)
    rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv)
    mask = tie_mask(x, v0, p)
    assert gv0.dtype == torch.float64 and gx.shape == x.shape
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    assert rel_err(masked(gx, mask, True), masked(rgx, mask, True)) < FP32_RTOL
    assert rel_err(masked(gv0, mask, False), masked(rgv0, mask, False)) < FP32_RTOL
    _same_as_kept(x, v0, p, ws, wv)


@pytest.mark.parametrize("device", DEVICES)
def test_through_the_dispatcher(device, monkeypatch):
    monkeypatch.setattr(op, "EAGER_VIA_DISPATCHER", True)
    p = PRESETS["spikingjelly"]
    x = make_input((CKPT + 5, 33), p, device=device)
    v0 = torch.zeros(33, device=device)
    ws, wv = loss_weights(x)
    via_op = run_with_grads(_recompute, x, v0, p, ws, wv)
    monkeypatch.setattr(op, "EAGER_VIA_DISPATCHER", False)
    eager = run_with_grads(_recompute, x, v0, p, ws, wv)
    for a, b in zip(via_op, eager):
        assert torch.equal(a, b)


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("via_dispatcher", [False, True])
def test_gradcheck_float64(hard, via_dispatcher, monkeypatch):
    """As test_lif.py's: with detach_reset, (x, v0) -> v_T is piecewise affine and backward exact."""
    monkeypatch.setattr(op, "EAGER_VIA_DISPATCHER", via_dispatcher)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(CKPT + 4, 7, generator=g, dtype=torch.float64) * 1.2).requires_grad_(True)
    v0 = (torch.rand(7, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    kw = dict(tau=1.7, v_threshold=0.9, v_reset=0.1 if hard else None, detach_reset=True, save="input")
    assert torch.autograd.gradcheck(lambda a, b: lif(a, b, **kw)[1], (x, v0), eps=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [PRESETS["paper"], LIFParams(v_reset=None, surrogate="atan", detach_reset=True)])
def test_opcheck(device, p):
    for steps in (5, 2 * CKPT + 1):
        x = make_input((steps, 24), p, device=device).requires_grad_(True)
        for v0 in (None, torch.rand(24, device=device, requires_grad=True)):
            torch.library.opcheck(torch.ops.tfbench.lif_forward_ckpt.default, (x, v0, *p.as_kwargs().values()))
        xs = x.detach()
        for v0 in (None, torch.rand(24, device=device)):
            _, ckpt, _ = torch.ops.tfbench.lif_forward_ckpt(xs, v0, *p.as_kwargs().values())
            assert ckpt.shape == (ckpt_rows(steps), 24)
            gs, gv = torch.randn(steps, 24, device=device), torch.randn(24, device=device)
            torch.library.opcheck(torch.ops.tfbench.lif_backward_recompute.default,
                                  (gs, xs, v0, ckpt, gv, *p.as_kwargs().values()))


def test_torch_compile_fullgraph_cpu():
    p = PRESETS["paper"]
    layer = LIF(**p.as_kwargs(), save="input")

    def step(x):
        return layer(x * 2.0).mean(0)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x = make_input((CKPT + 3, 3, 8), p).requires_grad_(True)
    out = compiled(x)
    out.sum().backward()
    gx = x.grad.clone()
    x.grad = None
    step(x).sum().backward()
    assert torch.equal(out, step(x))
    assert torch.equal(gx, x.grad)


def test_module_option():
    layer = LIF.from_preset("paper", save="input")
    assert layer.save == "input" and "save='input'" in repr(layer)
    assert "save" not in repr(LIF.from_preset("paper"))
    x = make_input((CKPT + 2, 2, 3), layer.params).requires_grad_(True)
    s, v = layer(x, return_state=True)
    rs, rv = LIF.from_preset("paper")(x, return_state=True)
    assert torch.equal(s, rs) and torch.equal(v, rv)
    assert layer(x).shape == x.shape


@pytest.mark.parametrize("bad", ["x", "H", None])
def test_bad_save_names_the_choices(bad):
    with pytest.raises(ValueError, match="save must be one of 'h', 'input'"):
        lif(torch.rand(3, 4), save=bad)
    with pytest.raises(ValueError, match="save must be one of 'h', 'input'"):
        LIF(save=bad)


def test_empty_neuron_axis():
    x = torch.rand(CKPT + 1, 0, 5, requires_grad=True)
    s, v = lif(x, save="input")
    assert s.shape == (CKPT + 1, 0, 5) and v.shape == (0, 5)
    s.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("dtype, steps, direction, expected", [
    (torch.float32, 16, "both", 24.0), (torch.bfloat16, 16, "both", 12.0), (torch.float32, 16, "forward", 12.0),
])
def test_bytes_per_element_keeping_h(dtype, steps, direction, expected):
    assert op.bytes_per_element(dtype, steps, direction, save="h") == expected


def test_bytes_per_element_keeping_the_input():
    f32, b16 = torch.float32, torch.bfloat16
    assert op.bytes_per_element(f32, CKPT, save="input") == 20.0                # one segment: no checkpoint
    assert op.bytes_per_element(f32, 2 * CKPT, save="input") == 20.0 + 8 / (2 * CKPT)
    assert op.bytes_per_element(f32, 4, save="input") == 20.0
    assert op.bytes_per_element(f32, 1024, save="input") == pytest.approx(20.0 + 8 * 127 / 1024)
    assert op.bytes_per_element(b16, 2 * CKPT, save="input") == 10.0 + 8 / (2 * CKPT)
    assert op.bytes_per_element(torch.float64, 2 * CKPT, save="input") == 40.0 + 16 / (2 * CKPT)
    for dtype in (f32, b16):
        parts = [op.bytes_per_element(dtype, 24, d, save="input") for d in ("forward", "backward")]
        assert sum(parts) == pytest.approx(op.bytes_per_element(dtype, 24, "both", save="input"))
    with pytest.raises(ValueError, match="save must be one of"):
        op.bytes_per_element(f32, 8, save="x")
