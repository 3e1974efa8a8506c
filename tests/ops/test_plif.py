"""PLIF (learnable membrane time constant, SpikingJelly's ``ParametricLIFNode``): the fused op against
the float64 reference and against SpikingJelly itself, on every device present.

Spikes equal away from ties; v_T, dL/dx, dL/dv0 and dL/dw within cases.error_bounds (dL/dw: the
per-term errors plus the reduction's). Neurons at a tie get zero loss weights, so that they add
exactly nothing to dL/dw in either computation. Outputs start as NaN (conftest.py).
"""

from __future__ import annotations

import math

import pytest
import torch

import tfbench
from tfbench.ops import PLIF, PLIF_PRESETS, PLIFParams, library, plif, plif_reference
from tests.conftest import DEVICES, HAS_CUDA

from .cases import (ALL_PLIF, assert_within, error_bounds, loss_weights, make_input, make_v0, make_w, masked,
                    param_id, reference64, rel_err, run_with_grads, tie_mask)


def plif_fn(x, v0, learned, p, save="h"):
    (w,) = learned
    kw = {k: v for k, v in p.as_kwargs().items() if k != "init_tau"}
    return plif(x, w, v0, **kw, save=save)


def check_against_reference(x, v0, w, p: PLIFParams, save: str = "h", seed: int = 1):
    mask = tie_mask(x, v0, p, (w,))
    assert mask.float().mean() > 0.5, "the test input is mostly ties: pick other values"
    ws, wv = loss_weights(x, seed, mask)
    s, v, gx, gv0, (gw,) = run_with_grads(plif_fn, x, v0, p, ws, wv, (w,), save=save)
    rs, rv, rgx, rgv0, (rgw,) = reference64(x, v0, p, ws, wv, (w,))
    bound = error_bounds(x, v0, p, ws, wv, (w,))
    assert s.dtype == x.dtype and s.shape == x.shape and gw.shape == w.shape and gw.dtype == w.dtype
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True)), "spikes differ away from ties"
    assert_within(masked(v, mask, False), masked(rv, mask, False), bound["v_T"][mask], "v_T")
    assert_within(masked(gx, mask, True), masked(rgx, mask, True), bound["gx"][:, mask], "dL/dx")
    if v0 is not None:
        assert_within(masked(gv0, mask, False), masked(rgv0, mask, False), bound["gv0"][mask], "dL/dv0")
    assert_within(gw, rgw, bound["gw"], "dL/dw")
    return s, v, gx, gv0, gw


CKPT_PLUS = library.CKPT + 3  # two checkpoint segments


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", ALL_PLIF, ids=param_id)
@pytest.mark.parametrize("save", ["h", "input"])
def test_every_parameter_combination(device, p, save):
    """One w for the layer and one per channel, with and without v0, both saves; T past a checkpoint."""
    seed = ALL_PLIF.index(p) * 4 + (save == "input") * 2
    for channels, with_v0 in ((None, False), (5, True)):
        x = make_input((CKPT_PLUS, 3, 5, 4), p, device=device, seed=seed)
        v0 = make_v0(x.shape[1:], p, device=device, seed=seed) if with_v0 else None
        w = make_w(p, channels, seed, device)
        check_against_reference(x, v0, w, p, save, seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(7, 2, 3), (9, 2, 6, 3, 3), (16, 4, 64, 4, 4)])
def test_per_channel_layouts(device, shape):
    """Channels of one, a few and many neurons (the partial sums' group size follows the channel's)."""
    p = PLIF_PRESETS["paper"].validate()
    x = make_input(shape, p, device=device, seed=sum(shape))
    check_against_reference(x, None, make_w(p, shape[2], 1, device), p)
    check_against_reference(x, None, make_w(p, None, 2, device), p)


@pytest.mark.parametrize("device", DEVICES)
def test_keeping_the_input_equals_keeping_h(device):
    """save="input" and save="h": spikes, v_T bit for bit; in fp32 on the CPU every gradient (dL/dw too)."""
    p = PLIF_PRESETS["spikingjelly"].validate()
    x = make_input((2 * library.CKPT + 1, 2, 4, 6), p, device=device, seed=4)
    v0 = make_v0(x.shape[1:], p, device=device, seed=4)
    w = make_w(p, 4, 4, device)
    ws, wv = loss_weights(x, 4)
    a = run_with_grads(plif_fn, x, v0, p, ws, wv, (w,), save="input")
    b = run_with_grads(plif_fn, x, v0, p, ws, wv, (w,), save="h")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    if device == "cpu":
        assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3]) and torch.equal(a[4][0], b[4][0])
    else:  # the same operations, but NVRTC may contract a product into an fma differently in the two kernels
        for got, want in ((a[2], b[2]), (a[3], b[3]), (a[4][0], b[4][0])):
            assert rel_err(got, want) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("save", ["h", "input"])
def test_dw_is_the_same_bits_on_every_run(device, save):
    """dL/dw is reduced in a fixed order (block partial sums, then one reduction): run to run, bit for bit."""
    p = PLIF_PRESETS["paper"].validate()
    x = make_input((12, 8, 16, 8, 8), p, device=device, seed=9).requires_grad_(True)
    for channels in (None, 16):
        w = make_w(p, channels, 9, device).requires_grad_(True)
        grads = []
        for _ in range(3):
            s, v = plif(x, w, v_threshold=p.v_threshold, decay_input=p.decay_input, save=save)
            grads.append(torch.autograd.grad((s * x).sum() + v.sum(), w)[0])
        assert all(torch.equal(g, grads[0]) for g in grads[1:])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_within_twice_plain_pytorch_error(device, dtype):
    """bf16/fp16 storage: spikes, dL/dx and dL/dw (fp32 arithmetic and reduction) no further from the
    float64 truth than twice the plain PyTorch loop in that dtype."""
    p = PLIF_PRESETS["spikingjelly"].validate()
    x = make_input((16, 8, 512), p, dtype=dtype, device=device, seed=7)
    w = make_w(p, None, 7, device)
    ws, wv = loss_weights(x)
    truth = reference64(x, None, p, ws, wv, (w,))
    fused = run_with_grads(plif_fn, x, None, p, ws, wv, (w,))
    plain = run_with_grads(lambda a, b, c, q: plif_reference(a, c[0], b, v_threshold=q.v_threshold), x, None, p,
                           ws, wv, (w,))
    assert fused[0].dtype == dtype and fused[4][0].dtype == torch.float32
    for name, i in [("spikes", 0), ("v_T", 1), ("dL/dx", 2)]:
        err_fused, err_plain = rel_err(fused[i], truth[i]), rel_err(plain[i], truth[i])
        assert err_fused <= 2 * err_plain + 1e-7, f"{name}: fused {err_fused:.3g} vs plain {err_plain:.3g}"
    err_fused, err_plain = rel_err(fused[4][0], truth[4][0]), rel_err(plain[4][0], truth[4][0])
    assert err_fused <= 2 * err_plain + 1e-7, f"dL/dw: fused {err_fused:.3g} vs plain {err_plain:.3g}"


@pytest.mark.parametrize("decay", [True, False])
@pytest.mark.parametrize("save", ["h", "input"])
def test_gradcheck_float64(decay, save):
    """With detach_reset the map (x, v0, w) -> v_T is piecewise smooth and the op's backward its exact
    derivative, dL/dw included."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(library.CKPT + 3, 2, 3, 2, generator=g, dtype=torch.float64) * 1.2).requires_grad_(True)
    v0 = (torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    for w in (torch.tensor(0.3, dtype=torch.float64), torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)):
        w.requires_grad_(True)
        kw = dict(decay_input=decay, v_threshold=0.9, v_reset=0.1, detach_reset=True, save=save)
        assert torch.autograd.gradcheck(lambda a, b, c: plif(a, c, b, **kw)[1], (x, v0, w), eps=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("save_input", [False, True])
def test_opcheck(device, save_input):
    p = PLIF_PRESETS["paper"].validate()
    args = (p.kernel_constants(), p.kernel_switches())
    steps = 17 if save_input else 5
    x = make_input((steps, 2, 3, 4), p, device=device).requires_grad_(True)
    for w in (make_w(p, None, 1, device), make_w(p, 3, 1, device)):
        w.requires_grad_(True)
        torch.library.opcheck(library.FORWARD, (x, None, [w], "plif", *args, save_input, True))
        v0 = make_v0((2, 3, 4), p, device=device)
        _, kept, _ = library.forward(x.detach(), v0, [w.detach()], "plif", *args, save_input, True)
        g = torch.Generator().manual_seed(3)
        gs = torch.randn(x.shape, generator=g).to(device)
        torch.library.opcheck(library.BACKWARD, (gs, None, kept, x.detach() if save_input else None, v0,
                                                 [w.detach()], "plif", *args, save_input, True))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_cpu(backend):
    layer = PLIF.from_preset("paper", channels=3)
    with torch.no_grad():
        layer.w.add_(torch.tensor([0.0, 0.2, -0.3]))

    def step(x):
        return layer(x * 2.0).mean(0)

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    x = make_input((6, 2, 3, 4), layer.params).requires_grad_(True)
    out = compiled(x)
    out.sum().backward()
    gx, gw = x.grad.clone(), layer.w.grad.clone()
    x.grad, layer.w.grad = None, None
    step(x).sum().backward()
    assert torch.equal(out, step(x))
    assert torch.equal(gx, x.grad) and torch.equal(gw, layer.w.grad)


def test_module():
    layer = PLIF(init_tau=3.0, v_threshold=0.5)
    assert layer.w.shape == () and layer.w.dtype == torch.float32
    assert layer.w.item() == pytest.approx(-math.log(2.0))
    assert layer.tau.item() == pytest.approx(3.0)
    assert [name for name, _ in layer.named_parameters()] == ["w"]
    assert "tau=3" in repr(layer) and "init_tau=3" in repr(layer)
    per = PLIF(channels=4)
    assert per.w.shape == (4,) and "[4 channels]" in repr(per)
    x = make_input((5, 2, 4, 3), per.params)
    s, v = per(x, return_state=True)
    rs, rv = plif_reference(x.double(), per.w.detach().double(), v_threshold=1.0)
    mask = tie_mask(x, None, per.params, (per.w,))
    assert s.shape == x.shape and v.shape == x.shape[1:] and mask.any()
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    assert tfbench.PLIF is PLIF and tfbench.plif is plif
    assert PLIF.from_preset("paper").params == PLIF_PRESETS["paper"]
    with pytest.raises(ValueError, match="known: spikingjelly, paper"):
        PLIF.from_preset("nope")


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(init_tau=1.0), ValueError, r"init_tau must be a number > 1 .*got 1\.0"),
    (dict(init_tau=math.inf), ValueError, r"init_tau must be a number > 1 \(finite"),
    (dict(init_tau=[2.0]), TypeError, r"init_tau must be a number > 1 .*got \[2\.0\] \(list\)"),
    (dict(decay_input="no"), TypeError, r"decay_input must be True or False, got 'no'"),
    (dict(surrogate="relu"), ValueError, "surrogate must be one of 'sigmoid', 'atan', 'rect'"),
    (dict(channels=0), ValueError, r"channels must be None \(one w for the layer\) or an int >= 1, got 0"),
    (dict(channels=2.0), ValueError, r"channels must be None .* got 2\.0"),
    (dict(save="hh"), ValueError, "save must be one of 'h', 'input'"),
])
def test_bad_module_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        PLIF(**kwargs)


def test_bad_w():
    x = torch.rand(3, 2, 4, 5)
    with pytest.raises(TypeError, match="w must be a torch.Tensor"):
        plif(x, 0.3)
    with pytest.raises(TypeError, match="w must be a floating-point tensor"):
        plif(x, torch.tensor(1))
    with pytest.raises(ValueError, match=r"w must have shape \[\] \(one tau for the layer\) or \[4\]"):
        plif(x, torch.zeros(3))
    with pytest.raises(ValueError, match="x has no channel dim"):
        plif(torch.rand(3, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="w must be on x's device"):
        plif(x, torch.zeros((), device="meta"))
    with pytest.raises(ValueError, match="v_threshold must be a finite number"):
        plif(x, torch.zeros(()), v_threshold=math.nan)


# ------------------------------------------------------------------------------------------------
# SpikingJelly's ParametricLIFNode
# ------------------------------------------------------------------------------------------------
sj = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly is not installed")


def _sj_node(p: PLIFParams):
    from spikingjelly.activation_based import surrogate

    sg = surrogate.Sigmoid(alpha=p.alpha) if p.surrogate == "sigmoid" else surrogate.ATan(alpha=p.alpha)
    return sj.ParametricLIFNode(init_tau=p.init_tau, decay_input=p.decay_input, v_threshold=p.v_threshold,
                                v_reset=p.v_reset, surrogate_function=sg, detach_reset=p.detach_reset, step_mode="m")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [q for q in ALL_PLIF if q.surrogate != "rect"], ids=param_id)
def test_equals_spikingjelly(device, p):
    """Spikes as SpikingJelly 2.0's ParametricLIFNode computes them (bit for bit on the CPU, where both
    round each operation of the same expression the same way; away from ties on a GPU, where its
    Triton kernel may fuse them); dL/dx and dL/dw within the two computations' error bounds; a
    SpikingJelly checkpoint loads unchanged."""
    p = p.validate()
    node = _sj_node(p).to(device)
    layer = PLIF(**p.as_kwargs()).to(device)
    layer.load_state_dict(node.state_dict())
    assert torch.equal(layer.w, node.w)
    seed = ALL_PLIF.index(p)
    x = make_input((12, 4, 300), p, device=device, seed=seed)
    mask = tie_mask(x, None, p, (layer.w,))
    ws, _ = loss_weights(x, seed, mask)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    sa, sb = node(xa), layer(xb)
    ((sa.double() * ws.to(device)).sum()).backward()
    ((sb.double() * ws.to(device)).sum()).backward()
    if device == "cpu":
        assert torch.equal(sa, sb)
    else:
        assert torch.equal(masked(sa, mask, True), masked(sb, mask, True))
    bound = error_bounds(x, None, p, ws, torch.zeros(x.shape[1:], dtype=torch.float64), (layer.w.detach(),))
    assert_within(masked(xb.grad, mask, True), masked(xa.grad, mask, True), 2 * bound["gx"][:, mask], "dL/dx")
    assert_within(layer.w.grad, node.w.grad, 2 * bound["gw"], "dL/dw")
    node.load_state_dict(layer.state_dict())  # and back


@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU")
@pytest.mark.cuda
def test_same_on_cpu_and_gpu():
    p = PLIF_PRESETS["paper"].validate()
    x = make_input((9, 2, 8, 5), p, seed=11)
    w = make_w(p, 8, 11)
    mask = tie_mask(x, None, p, (w,))
    ws, wv = loss_weights(x, 11, mask)
    a = run_with_grads(plif_fn, x, None, p, ws, wv, (w,))
    b = run_with_grads(plif_fn, x.cuda(), None, p, ws, wv, (w.cuda(),))
    assert torch.equal(masked(a[0], mask, True), masked(b[0], mask, True))
    bound = error_bounds(x, None, p, ws, wv, (w,))
    assert_within(b[4][0], a[4][0], 2 * bound["gw"], "dL/dw")
