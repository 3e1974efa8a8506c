"""The fused LIF op against the plain-loop reference, on every device present, through the path
users get (the C++ op of kernels/tfbench_ops.cpp, registered with PyTorch's dispatcher).

Spikes must be equal in fp32 away from ties; v_T, dL/dx and dL/dv0 within the element-wise error
bounds of cases.error_bounds (derived there from the op's roundings for the case's T, tau and
surrogate); bf16/fp16 no worse than twice the plain PyTorch loop's error in that dtype. Outputs
start as NaN (conftest.py), so an element the kernel never wrote fails.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tfbench
from tfbench.ops import LIF, PRESETS, LIFParams, lif_reference, library
from tfbench.ops.functional import lif
from tests.conftest import DEVICES

from .cases import (ALL_PARAMS, assert_within, error_bounds, loss_weights, make_input, make_v0, masked, param_id,
                    reference64, rel_err, run_with_grads, tie_mask)


def lif_fn(x, v0, learned, p, save="h"):
    return lif(x, v0, **p.as_kwargs(), save=save)


def check_against_reference(x: torch.Tensor, v0: torch.Tensor | None, p: LIFParams, save: str = "h",
                            seed: int = 1) -> None:
    mask = tie_mask(x, v0, p)
    assert mask.float().mean() > 0.5, "the test input is mostly ties: pick other values"
    ws, wv = loss_weights(x, seed)
    s, v, gx, gv0, _ = run_with_grads(lif_fn, x, v0, p, ws, wv, save=save)
    rs, rv, rgx, rgv0, _ = reference64(x, v0, p, ws, wv)
    bound = error_bounds(x, v0, p, ws, wv)
    assert s.dtype == x.dtype and s.shape == x.shape and s.device == x.device
    assert v.dtype == torch.float32 and v.shape == x.shape[1:]
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True)), "spikes differ away from ties"
    assert_within(masked(v, mask, False), masked(rv, mask, False), bound["v_T"][mask], "v_T")
    assert_within(masked(gx, mask, True), masked(rgx, mask, True), bound["gx"][:, mask], "dL/dx")
    if v0 is not None:
        assert gv0.dtype == v0.dtype
        assert_within(masked(gv0, mask, False), masked(rgv0, mask, False), bound["gv0"][mask], "dL/dv0")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", ALL_PARAMS, ids=param_id)
@pytest.mark.parametrize("with_v0", [False, True])
def test_every_parameter_combination(device, p, with_v0):
    seed = ALL_PARAMS.index(p) * 2 + with_v0
    x = make_input((9, 3, 5, 4), p, device=device, seed=seed)
    v0 = make_v0(x.shape[1:], p, device=device, seed=seed) if with_v0 else None
    check_against_reference(x, v0, p)


@settings(max_examples=40)
@given(steps=st.integers(1, 40),
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
    v0 = make_v0(x.shape[1:], p, device=device, seed=seed) if with_v0 else None  # seeded: the same every run
    mask = tie_mask(x, v0, p)
    ws, wv = loss_weights(x, seed)
    s, v, gx, gv0, _ = run_with_grads(lif_fn, x, v0, p, ws, wv)
    rs, rv, rgx, rgv0, _ = reference64(x, v0, p, ws, wv)
    bound = error_bounds(x, v0, p, ws, wv)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    assert_within(masked(v, mask, False), masked(rv, mask, False), bound["v_T"][mask], "v_T")
    assert_within(masked(gx, mask, True), masked(rgx, mask, True), bound["gx"][:, mask], "dL/dx")
    if with_v0:
        assert_within(masked(gv0, mask, False), masked(rgv0, mask, False), bound["gv0"][mask], "dL/dv0")


def test_the_error_bounds_catch_a_wrong_neuron():
    """The bounds are tight enough to matter: a tau off by one part in 10^4 breaks them."""
    p = PRESETS["spikingjelly"]
    x = make_input((16, 512), p, seed=3)
    v0 = make_v0((512,), p, seed=3)
    ws, wv = loss_weights(x, 3)
    bound = error_bounds(x, v0, p, ws, wv)
    _, v, gx, _, _ = run_with_grads(lif_fn, x, v0, LIFParams(tau=p.tau * (1 + 1e-4)), ws, wv)
    mask = tie_mask(x, v0, p)
    rs, rv, rgx, _, _ = reference64(x, v0, p, ws, wv)
    with pytest.raises(AssertionError, match="exceeds its bound"):
        assert_within(masked(v, mask, False), masked(rv, mask, False), bound["v_T"][mask], "v_T")
    with pytest.raises(AssertionError, match="exceeds its bound"):
        assert_within(masked(gx, mask, True), masked(rgx, mask, True), bound["gx"][:, mask], "dL/dx")


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
    v0 = make_v0((10, 8), p, device=device, seed=4).t()[::2]  # [4, 10], strided
    check_against_reference(base[:, ::2], v0, p)


@pytest.mark.parametrize("device", DEVICES)
def test_eager_calls_run_the_registered_cpp_op(device):
    """The path users get is the one these tests exercise: the C++ autograd node of the registered op."""
    assert library.native(), library.IMPLEMENTATION
    x = make_input((4, 32), PRESETS["paper"], device=device).requires_grad_(True)
    s, _ = lif(x, **PRESETS["paper"].as_kwargs())
    assert "NeuronFunction" in s.grad_fn.name()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["spikingjelly", "paper"])
def test_half_precision_within_twice_plain_pytorch_error(device, dtype, name):
    p = PRESETS[name]
    x = make_input((16, 4096), p, dtype=dtype, device=device, seed=7)
    ws, wv = loss_weights(x)
    truth = reference64(x, None, p, ws, wv)  # float64 on the very same (rounded) inputs
    fused = run_with_grads(lif_fn, x, None, p, ws, wv)
    plain = run_with_grads(lambda a, b, c, q: lif_reference(a, b, **q.as_kwargs()), x, None, p, ws, wv)
    assert fused[0].dtype == dtype and fused[2].dtype == dtype
    for i, what in [(0, "spikes"), (1, "v_T"), (2, "dL/dx")]:
        err_fused, err_plain = rel_err(fused[i], truth[i]), rel_err(plain[i], truth[i])
        assert err_fused <= 2 * err_plain + 1e-7, f"{what}: fused {err_fused:.3g} vs plain {err_plain:.3g}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_kept_membrane_gives_back_the_forward_spikes(device, dtype):
    """h is stored rounded; the spike recomputed from it in backward must be the forward's spike."""
    p = LIFParams(tau=2.0, v_threshold=0.3).validate()
    # Many membranes a hair from the threshold, on both sides: rounding to nearest would flip them.
    g = torch.Generator().manual_seed(0)
    x = (0.6 + (torch.rand(4, 20000, generator=g, dtype=torch.float64) - 0.5) * 4e-3).to(dtype).to(device)
    s, h, _ = library.forward(x, None, [], "lif", p.kernel_constants(), p.kernel_switches(), False, True)
    assert torch.equal(s, (h.float() >= p.v_threshold).to(dtype))


def _detached_membrane_fn(x, v0, hard, decay):
    kw = dict(tau=1.7, decay_input=decay, v_threshold=0.9, v_reset=0.1 if hard else None, detach_reset=True)
    return lif(x, v0, **kw)[1]


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize("decay", [True, False])
def test_gradcheck_float64(hard, decay):
    """gradcheck needs the true derivative; with detach_reset the map (x, v0) -> v_T is piecewise
    affine and the op's backward is its exact derivative (the surrogate enters only through the
    spike output, checked against the reference above)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 7, generator=g, dtype=torch.float64) * 1.2).requires_grad_(True)
    v0 = (torch.rand(7, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: _detached_membrane_fn(a, b, hard, decay), (x, v0), eps=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [PRESETS["paper"], LIFParams(v_reset=None, surrogate="atan", detach_reset=True)])
@pytest.mark.parametrize("save_input", [False, True])
def test_opcheck(device, p, save_input):
    """The registration passes PyTorch's own checks: schema, fake tensors, autograd, AOT dispatch."""
    p = p.validate()
    args = (p.kernel_constants(), p.kernel_switches())
    steps = 17 if save_input else 5
    x = make_input((steps, 24), p, device=device).requires_grad_(True)
    for v0 in (None, make_v0((24,), p, device=device).requires_grad_(True)):
        for want in (True, False):
            torch.library.opcheck(library.FORWARD, (x, v0, [], "lif", *args, save_input, want))
    xs = x.detach()
    v0 = make_v0((24,), p, device=device, seed=2)
    _, kept, _ = library.forward(xs, v0, [], "lif", *args, save_input, True)
    g = torch.Generator().manual_seed(5)
    gs, gv = torch.randn(steps, 24, generator=g).to(device), torch.randn(24, generator=g).to(device)
    for gv_last in (None, gv):
        torch.library.opcheck(library.BACKWARD, (gs, gv_last, kept, xs if save_input else None, v0, [], "lif",
                                                 *args, save_input, True))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_cpu(backend):
    p = PRESETS["paper"]
    layer = LIF(**p.as_kwargs())

    def step(x):
        return layer(x * 2.0).mean(0)

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    x = make_input((6, 3, 8), p).requires_grad_(True)
    out = compiled(x)
    out.sum().backward()
    gx = x.grad.clone()
    x.grad = None
    step(x).sum().backward()
    assert torch.equal(out, step(x))
    assert torch.equal(gx, x.grad)


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
    (dict(tau=1.0), ValueError, r"tau must be a number > 1 .*got 1\.0"),
    (dict(tau=0.5), ValueError, r"tau must be a number > 1"),
    (dict(tau=float("nan")), ValueError, r"tau must be a number > 1"),
    (dict(tau=[2.0]), TypeError, r"tau must be a number > 1 .*got \[2\.0\] \(list\)"),
    (dict(tau="2"), TypeError, r"tau must be a number > 1 .*got '2' \(str\)"),
    (dict(tau=True), TypeError, r"tau must be a number > 1 .*got True \(bool\)"),
    (dict(tau=math.inf), ValueError, "decay_input=False"),
    (dict(decay_input="no"), TypeError, r"decay_input must be True or False, got 'no' \(str\)"),
    (dict(decay_input=1), TypeError, r"decay_input must be True or False, got 1 \(int\)"),
    (dict(detach_reset="yes"), TypeError, r"detach_reset must be True or False, got 'yes'"),
    (dict(surrogate="relu"), ValueError, "surrogate must be one of 'sigmoid', 'atan', 'rect', got 'relu'"),
    (dict(surrogate=3), TypeError, r"surrogate must be one of 'sigmoid', 'atan', 'rect', got 3 \(int\)"),
    (dict(alpha=0.0), ValueError, r"alpha must be a number > 0, got 0\.0"),
    (dict(alpha="4"), TypeError, r"alpha must be a number > 0, got '4' \(str\)"),
    (dict(v_threshold=math.inf), ValueError, "v_threshold must be a finite number, got inf"),
    (dict(v_threshold=None), TypeError, r"v_threshold must be a finite number, got None \(NoneType\)"),
    (dict(v_reset=math.nan), ValueError, r"v_reset must be a finite number or None \(soft reset\), got nan"),
    (dict(v_reset="0"), TypeError, r"v_reset must be a finite number or None \(soft reset\), got '0'"),
    (dict(save="x"), ValueError, "save must be one of 'h', 'input', got 'x'"),
])
def test_bad_parameters(kwargs, error, match):
    """Each bad parameter: one TypeError/ValueError naming the argument, the value and what is valid."""
    with pytest.raises(error, match=match):
        lif(torch.rand(3, 4), **kwargs)
    if "save" not in kwargs:
        with pytest.raises(error, match=match):
            LIF(**kwargs)


def test_a_valid_call_after_an_invalid_one_of_equal_hash():
    """True and 1 hash alike: the validation cache must not let decay_input=1 through after True."""
    lif(torch.rand(3, 4), decay_input=True)
    with pytest.raises(TypeError, match="decay_input must be True or False"):
        lif(torch.rand(3, 4), decay_input=1)


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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_infinite_input_gives_the_reference_spikes(device, v_reset):
    """+inf input: the op and the reference agree (a hard reset returns to v_reset: the reference
    selects, it does not multiply 0 by inf), and a NaN input stops its neuron for good in both
    (documented: no spikes, NaN membrane)."""
    x = torch.full((5, 4), 0.4)
    x[1, 0] = math.inf
    x[2, 1] = math.nan
    x[0, 2] = -math.inf
    x = x.to(device)
    kw = dict(tau=2.0, v_threshold=0.5, v_reset=v_reset)
    s, v = lif(x, **kw)
    rs, rv = lif_reference(x.double().cpu(), **kw)
    assert torch.equal(s.cpu().double(), rs)
    assert torch.equal(v.cpu().double().isnan(), rv.isnan())
    finite = ~rv.isnan()
    assert torch.allclose(v.cpu().double()[finite], rv[finite], rtol=1e-6, atol=1e-6)
    assert s[2:, 1].sum() == 0 and torch.isnan(v[1])  # the NaN neuron never fires again
    assert s[1, 0] == 1  # +inf fires


def test_the_public_names_are_the_functions_whatever_was_imported_first():
    """``tfbench.ops.lif`` is a package: importing it must not turn ``tfbench.lif`` into that module."""
    code = ("import tfbench.ops.lif, tfbench.ops.neurons.plif, tfbench.backends.tfbench_fused\n"
            "import tfbench\n"
            "assert callable(tfbench.lif) and tfbench.lif.__module__ == 'tfbench.ops.functional'\n"
            "assert tfbench.plif.__module__ == 'tfbench.ops.functional' and tfbench.ops.lif.lif is tfbench.lif\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_neuron_descriptions_import_without_torch():
    """The command line's --help reads the neuron descriptions: they must not import torch."""
    code = ("import sys\n"
            "import tfbench, tfbench.ops, tfbench.ops.neurons, tfbench.ops.neurons.lif, tfbench.ops.neurons.plif\n"
            "import tfbench.ops.lif\n"
            "from tfbench.ops.neurons import PRESETS, PLIF_PRESETS, PLIFParams\n"
            "PLIFParams(init_tau=1.25).validate(); PRESETS['paper'].as_kwargs()\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
