"""BatchNorm folded into the fused neuron, and spikes kept as bits (tfbench/ops/norm.py), on every device present.

The fused path is checked against the composition it replaces: ``nn.BatchNorm2d``, the residual add,
then tfbench's neuron op (itself checked against the float64 reference in test_lif.py/test_plif.py).
In float64 the two agree to float64 rounding (spikes equal, gradients and running statistics to
1e-10 relative); in float32 the fused op is compared with that composition in float64, spikes equal
away from ties (cases.tie_mask on BatchNorm's float64 output) and gradients within a bound that
follows from the case (T steps of roundings and the per-channel sums over N elements). Outputs of
the C++ op start as NaN (conftest.py), so an element the kernels never write fails.
"""

from __future__ import annotations

import math
import zlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfbench import models
from tfbench.ops import LIF, PLIF, library, norm
from tests.conftest import DEVICES

from .cases import UNIT_ROUNDOFF, C_BACKWARD, C_FORWARD, generator, tie_mask

pytestmark = pytest.mark.skipif(norm.available() is not None, reason=str(norm.available()))

# T = 19: three membrane segments of the recomputing backward (8 + 8 + 3 steps), the last one partial
T, B, C, H, W = 19, 3, 5, 4, 4


def _bn(channels: int, dtype, device, seed: int, affine: bool = True, momentum: float | None = 0.1):
    bn = nn.BatchNorm2d(channels, affine=affine, momentum=momentum).to(device=device, dtype=dtype)
    g = generator(seed)
    with torch.no_grad():
        if affine:
            bn.weight.copy_(torch.rand(channels, generator=g, dtype=torch.float64) + 0.5)
            bn.bias.copy_(torch.rand(channels, generator=g, dtype=torch.float64) * 0.8 - 0.2)
        bn.running_mean.copy_(torch.randn(channels, generator=g, dtype=torch.float64) * 0.1)
        bn.running_var.copy_(torch.rand(channels, generator=g, dtype=torch.float64) + 0.5)
    return bn


def _neuron(kind: str, device, dtype):
    if kind == "LIF":
        return LIF(tau=2.0, v_threshold=1.0, surrogate="sigmoid", alpha=4.0, save="input")
    layer = PLIF(init_tau=2.0, channels=C if kind == "PLIF-channel" else None, save="input")
    with torch.no_grad():
        layer.w.add_(torch.linspace(-0.3, 0.3, layer.w.numel()).view(layer.w.shape))
    return layer.to(device=device, dtype=torch.float32)


def _inputs(dtype, device, seed: int, channels_last: bool, residual: str):
    """z, and the residual: None, spikes ("dense", "bits") or ("normed") a BatchNorm's input (a downsample's
    convolution output)."""
    g = generator(seed)
    z = (torch.randn(T * B, C, H, W, generator=g, dtype=torch.float64) * 1.5 + 0.3).to(device=device, dtype=dtype)
    r = None
    if residual == "normed":
        r = (torch.randn(T * B, C, H, W, generator=g, dtype=torch.float64) * 0.7 - 0.2).to(device=device, dtype=dtype)
    elif residual != "none":
        r = (torch.rand(T * B, C, H, W, generator=g, dtype=torch.float64) < 0.4).to(device=device, dtype=dtype)
    if channels_last:
        z = z.contiguous(memory_format=torch.channels_last)
        r = None if r is None else r.contiguous(memory_format=torch.channels_last)
    return z, r


def _fused(z, r, residual: str, bn, layer, rbn=None):
    bits = norm.pack_spikes(r) if residual == "bits" else None
    r4 = None if r is None else norm.time_major(r, T)
    return norm.from_time_major(layer.forward_norm(norm.time_major(z, T), bn, r4, bits, rbn), z)


def _composed(z, r, bn, layer, rbn=None):
    y = bn(z)
    if r is not None:
        y = y + (r if rbn is None else rbn(r))
    return layer(y.unflatten(0, (T, -1))).flatten(0, 1)


def _grads(fn, z, r, bn, layer, weights, rbn=None):
    """fn(z, r)'s spikes and the gradients of (s * weights).sum(): z's, r's, the learned tensors', bn's
    weight and bias (and rbn's, the residual's BatchNorm, when given), and rbn's running statistics."""
    z = z.detach().clone().requires_grad_(True)
    r = None if r is None else r.detach().clone().requires_grad_(True)
    s = fn(z, r)
    (s.double() * weights).sum().backward()
    learned = [p.grad.detach().clone() for p in layer.parameters()]
    out = dict(s=s.detach(), gz=z.grad, gr=None if r is None else r.grad, learned=learned)
    if bn.affine:
        out.update(gw=bn.weight.grad.detach().clone(), gb=bn.bias.grad.detach().clone())
    if rbn is not None:
        out.update(rgw=rbn.weight.grad.detach().clone(), rgb=rbn.bias.grad.detach().clone(),
                   rrunning=(rbn.running_mean.clone(), rbn.running_var.clone(), int(rbn.num_batches_tracked)))
    return out


def _rel(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@pytest.fixture(params=["epilogue", "recompute"])
def dz_pass(request):
    """How the norm op's backward writes dL/dz after the pass that sums for BatchNorm: an elementwise
    epilogue from the gy that pass stored (z up to ``epilogue_bytes``, and every layer with a residual),
    or a second pass recomputing the membrane (``epilogue_bytes`` 0: the layers without a residual)."""
    before = library.set_option("epilogue_bytes", -1)
    library.set_option("epilogue_bytes", before if request.param == "epilogue" else 0)
    yield request.param
    library.set_option("epilogue_bytes", before)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["LIF", "PLIF", "PLIF-channel"])
@pytest.mark.parametrize("residual", ["none", "dense", "bits", "normed"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_float64_matches_batchnorm_then_neuron(device, kind, residual, channels_last, training, dz_pass):
    """"normed": the residual has a BatchNorm of its own (a downsample's), folded in; it is trained or
    evaluated as the layer's own BatchNorm is, its running statistics without momentum (the cumulative
    average) to cover that too."""
    seed = zlib.crc32(f"{kind}-{residual}-{channels_last}-{training}".encode()) % 1000
    z, r = _inputs(torch.float64, device, seed, channels_last, residual)
    weights = torch.randn(z.shape, generator=generator(seed + 1), dtype=torch.float64).to(device)
    results = []
    for fn in ("fused", "composed"):
        bn = _bn(C, torch.float64, device, seed).train(training)
        rbn = _bn(C, torch.float64, device, seed + 2, momentum=None).train(training) if residual == "normed" else None
        layer = _neuron(kind, device, torch.float64).double()
        if fn == "fused":
            results.append(_grads(lambda a, b: _fused(a, b, residual, bn, layer, rbn), z, r, bn, layer, weights, rbn))
        else:
            results.append(_grads(lambda a, b: _composed(a, b, bn, layer, rbn), z, r, bn, layer, weights, rbn))
        results[-1]["running"] = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    got, want = results
    assert torch.equal(got["s"], want["s"]), "spikes differ"
    assert got["s"].is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for name in ("gz", "gw", "gb") + (("gr",) if residual != "none" else ()) + (
            ("rgw", "rgb") if residual == "normed" else ()):
        assert _rel(got[name], want[name]) < 1e-10, name
    for a, b in zip(got["learned"], want["learned"]):
        assert _rel(a, b) < 1e-10, "dL/dw"
    for key in ("running", "rrunning") if residual == "normed" else ("running",):
        for a, b in zip(got[key][:2], want[key][:2]):
            assert _rel(a, b) < 1e-12, key
        assert got[key][2] == want[key][2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("residual", ["none", "bits", "normed"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_float32_against_float64(device, residual, channels_last):
    """fp32 fused against the float64 composition. Away from ties the spikes are equal; the gradients
    differ by the fp32 roundings: per element about (C_FORWARD + C_BACKWARD) per step over T steps,
    and the per-channel sums' (N = T*B*H*W terms, summed in order: N u relative at worst), so the
    norm-wise relative error is below u ((C_FORWARD + C_BACKWARD) T + 2 N) times 4 for the epilogue's
    terms; the same for the running statistics (N u), and for a residual's own BatchNorm ("normed")."""
    seed = 11 + 2 * channels_last + ["none", "bits", "normed"].index(residual) * 5
    z32, r32 = _inputs(torch.float32, device, seed, channels_last, residual)
    z64, r64 = z32.double(), None if r32 is None else r32.double()
    bn64 = _bn(C, torch.float64, "cpu", seed)
    rbn64 = _bn(C, torch.float64, "cpu", seed + 3) if residual == "normed" else None
    layer64 = _neuron("LIF", "cpu", torch.float64)
    with torch.no_grad():
        y64 = F.batch_norm(z64.cpu(), None, None, bn64.weight, bn64.bias, True, 0.0, bn64.eps)
        if rbn64 is not None:
            y64 = y64 + F.batch_norm(r64.cpu(), None, None, rbn64.weight, rbn64.bias, True, 0.0, rbn64.eps)
        elif r64 is not None:
            y64 = y64 + r64.cpu()
    mask = tie_mask(y64.unflatten(0, (T, -1)), None, layer64.params)
    assert mask.float().mean() > 0.8, "the test input is mostly ties: pick other values"
    keep = mask.view(1, B, C, H, W).expand(T, -1, -1, -1, -1).reshape(y64.shape).double()
    weights = torch.randn(z32.shape, generator=generator(seed + 1), dtype=torch.float64) * keep
    want = _grads(lambda a, b: _composed(a, b, bn64, layer64, rbn64), z64.cpu(), None if r64 is None else r64.cpu(),
                  bn64, layer64, weights, rbn64)
    bn32 = _bn(C, torch.float32, device, seed)
    rbn32 = _bn(C, torch.float32, device, seed + 3) if residual == "normed" else None
    layer32 = _neuron("LIF", device, torch.float32)
    got = _grads(lambda a, b: _fused(a, b, residual, bn32, layer32, rbn32), z32, r32, bn32, layer32,
                 weights.to(device), rbn32)
    s, s_ref = got["s"].cpu().double(), want["s"]
    assert torch.equal(s[keep.bool()], s_ref[keep.bool()]), "spikes differ away from ties"
    u = UNIT_ROUNDOFF[torch.float32]
    n = T * B * H * W
    bound = 4 * u * ((C_FORWARD + C_BACKWARD) * T + 2 * n)
    for name in ("gz", "gw", "gb") + (("gr",) if residual != "none" else ()) + (
            ("rgw", "rgb") if residual == "normed" else ()):
        assert _rel(got[name], want[name]) < bound, f"{name}: {_rel(got[name], want[name]):.3g} >= {bound:.3g}"
    for a, b in [(bn32, bn64)] + ([(rbn32, rbn64)] if residual == "normed" else []):
        assert _rel(a.running_mean, b.running_mean) < 4 * n * u
        assert _rel(a.running_var, b.running_var) < 4 * n * u


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["LIF", "PLIF-channel"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_dz_epilogue_equals_the_recomputing_pass_in_float32(device, kind, channels_last):
    """float32: dL/dz from the stored gy (the elementwise epilogue) and from the second recomputing pass
    are the same operations on the same gy, so the same bits; every other output too."""
    z, r = _inputs(torch.float32, device, 21 + channels_last, channels_last, "none")
    weights = torch.randn(z.shape, generator=generator(22)).to(device)
    results = []
    for epilogue_bytes in (2**40, 0):
        before = library.set_option("epilogue_bytes", epilogue_bytes)
        try:
            bn = _bn(C, torch.float32, device, 23)
            layer = _neuron(kind, device, torch.float32)
            results.append(_grads(lambda a, b: _fused(a, b, "none", bn, layer), z, r, bn, layer, weights))
        finally:
            library.set_option("epilogue_bytes", before)
    for name in ("s", "gz", "gw", "gb"):
        assert torch.equal(results[0][name], results[1][name]), name
    for a, b in zip(results[0]["learned"], results[1]["learned"]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_bits_residual_with_neurons_not_a_multiple_of_8(device):
    """n = B*C*H*W = 27: a step's bits start inside a byte (t * n is not a multiple of 8)."""
    g = generator(13)
    z = torch.randn(T * 1, 3, 3, 3, generator=g, dtype=torch.float64).to(device)
    r = (torch.rand(T * 1, 3, 3, 3, generator=g, dtype=torch.float64) < 0.5).double().to(device)
    outs = []
    for residual in ("dense", "bits"):
        bn = _bn(3, torch.float64, device, 14)
        layer = _neuron("LIF", device, torch.float64)
        zi, ri = z.clone().requires_grad_(True), r.clone().requires_grad_(True)
        bits = norm.pack_spikes(ri) if residual == "bits" else None
        s = norm.from_time_major(layer.forward_norm(norm.time_major(zi, T), bn, norm.time_major(ri, T), bits), zi)
        (s * torch.arange(s.numel(), dtype=torch.float64, device=device).view(s.shape).sin()).sum().backward()
        outs.append((s.detach(), zi.grad, ri.grad))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_as_close_as_the_composition(device, dtype):
    """In bf16/fp16 the fused op keeps y in float32 where the composition rounds BatchNorm's output and the
    sum to the storage dtype: against the float64 composition, its dL/dz error is at most twice the
    composition's own (and its spikes differ from float64's at no more neurons than twice as many)."""
    z64, r64 = _inputs(torch.float64, "cpu", 17, False, "bits")
    weights = torch.randn(z64.shape, generator=generator(18), dtype=torch.float64)
    bn64 = _bn(C, torch.float64, "cpu", 19)
    want = _grads(lambda a, b: _composed(a, b, bn64, _neuron("LIF", "cpu", torch.float64)), z64, r64, bn64,
                  _neuron("LIF", "cpu", torch.float64), weights)
    got = {}
    for way in ("fused", "composed"):
        bn = _bn(C, torch.float32, device, 19)
        layer = _neuron("LIF", device, torch.float32)
        z, r = z64.to(device, dtype), r64.to(device, dtype)
        if way == "fused":
            got[way] = _grads(lambda a, b: _fused(a, b, "bits", bn, layer), z, r, bn, layer, weights.to(device))
        else:
            got[way] = _grads(lambda a, b: _composed(a, b, bn, layer), z, r, bn, layer, weights.to(device))
    flips = {w: int((got[w]["s"].cpu().double() != want["s"]).sum()) for w in got}
    assert flips["fused"] <= 2 * flips["composed"] + 2, flips
    err = {w: _rel(got[w]["gz"], want["gz"]) for w in got}
    assert err["fused"] <= 2 * err["composed"], err


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
def test_running_statistics_follow_batchnorm_over_steps(momentum):
    bn_a = _bn(C, torch.float64, "cpu", 3, momentum=momentum)
    bn_b = _bn(C, torch.float64, "cpu", 3, momentum=momentum)
    layer = _neuron("LIF", "cpu", torch.float64)
    for step in range(3):
        z, _ = _inputs(torch.float64, "cpu", 20 + step, False, "none")
        layer.forward_norm(norm.time_major(z, T), bn_a)
        bn_b(z)
    assert int(bn_a.num_batches_tracked) == int(bn_b.num_batches_tracked) == 3
    assert _rel(bn_a.running_mean, bn_b.running_mean) < 1e-12
    assert _rel(bn_a.running_var, bn_b.running_var) < 1e-12


@pytest.mark.parametrize("device", DEVICES)
def test_without_affine_or_running_statistics(device):
    z, _ = _inputs(torch.float64, device, 5, False, "none")
    weights = torch.randn(z.shape, generator=generator(6), dtype=torch.float64).to(device)
    out = []
    for fn in ("fused", "composed"):
        bn = nn.BatchNorm2d(C, affine=False, track_running_stats=False).to(device=device, dtype=torch.float64).eval()
        layer = _neuron("LIF", device, torch.float64)
        if fn == "fused":
            f = lambda a, b: _fused(a, b, "none", bn, layer)   # noqa: E731
        else:
            f = lambda a, b: _composed(a, b, bn, layer)   # noqa: E731
        out.append(_grads(f, z, None, bn, layer, weights))
    assert torch.equal(out[0]["s"], out[1]["s"])
    assert _rel(out[0]["gz"], out[1]["gz"]) < 1e-10


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(7,), (3, 5, 2, 3), (16, 4, 8, 8)])
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels-last"])
def test_bits_round_trip(device, shape, channels_last):
    if channels_last and len(shape) != 4:
        pytest.skip("channels-last is a 4-D layout")
    x = (torch.rand(shape, generator=generator(len(shape))) < 0.3).float().to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    bits = norm.pack_spikes(x)
    assert bits.dtype == torch.uint8 and bits.numel() == math.ceil(x.numel() / 8)
    back = norm.unpack_spikes(bits, x.shape, x.dtype, channels_last)
    assert torch.equal(back, x)
    flat = norm._memory_order(x).reshape(-1)
    e = int(flat.nonzero()[0])
    assert (int(bits[e // 8]) >> (e % 8)) & 1 == 1, "element e is bit e % 8 of byte e // 8"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_spike_conv_and_pool_equal_torch(device, channels_last):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True).to(device)
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    x = (torch.rand(5, 4, 9, 9, generator=generator(1)) < 0.5).float().to(device)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(5, 6, 5, 5, generator=generator(2)).to(device)
    outs = []
    for lean in (False, True):
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = norm.spike_conv2d(conv, xi, norm.pack_spikes(xi)) if lean else conv(xi)
        (y * g).sum().backward()
        xp = x.clone().requires_grad_(True)
        q = norm.spike_max_pool2d(pool, xp, norm.pack_spikes(xp)) if lean else pool(xp)
        (q * q.detach().sum()).sum().backward()
        outs.append((y.detach(), xi.grad, conv.weight.grad.clone(), conv.bias.grad.clone(), q.detach(), xp.grad))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


POOLS = [  # (kernel, stride, padding, dilation, ceil_mode): overlapping, disjoint, dilated, ceil-mode windows
    (3, 2, 1, 1, False), (2, 2, 0, 1, False), (3, 1, 1, 1, False), (3, 2, 0, 2, False), (3, 2, 1, 1, True),
    ((3, 2), (2, 1), (1, 0), (1, 2), True), (2, 3, 1, 1, True)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("pool_args", POOLS, ids=lambda a: "k{}s{}p{}d{}{}".format(*a[:4], "c" if a[4] else ""))
@pytest.mark.parametrize("density", [0.0, 0.2, 1.0], ids=["no-spikes", "sparse", "all-spikes"])
def test_spike_max_pool_from_bits_equals_torch(device, channels_last, pool_args, density):
    """The max-pool read from bits: the same output and dL/dx as nn.MaxPool2d, bit for bit (float32: the
    same additions in the same order), whatever the windows; "no-spikes" and "all-spikes" make every
    window a tie, where the first element (or the first 1) must be the one that gets the gradient. 3 x 7
    x 9 spikes an image: not a whole number of bytes, so images start mid-byte."""
    kernel, stride, padding, dilation, ceil_mode = pool_args
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    x = (torch.rand(5, 3, 7, 9, generator=generator(3)) < density).float().to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = []
    for lean in (False, True):
        xi = x.clone().requires_grad_(True)
        q = norm.spike_max_pool2d(pool, xi, norm.pack_spikes(xi)) if lean else pool(xi)
        g = torch.randn(q.shape, generator=generator(4)).to(device)
        (q * g).sum().backward()
        out.append((q.detach(), xi.grad))
    (q0, g0), (q1, g1) = out
    assert norm.is_channels_last(q1) == channels_last and norm.is_channels_last(g1) == channels_last
    assert torch.equal(q0, q1)
    assert torch.equal(g0, g1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, pool_args", [
    ((2, 3, 16, 16), (3, 2, 1, 1, False)),   # the stem's windows: planes a block, one pass
    ((2, 2, 3, 300), (3, 2, 1, 1, False)),   # a side over 128: two passes
    ((1, 2, 70, 66), (2, 1, 0, 1, False)),   # 69 x 65 windows, over the 4,096 a block keeps: two passes
], ids=["plane", "wide", "many-windows"])
def test_spike_max_pool_backward_in_one_pass_or_two(device, shape, pool_args):
    """NCHW dL/dx in one pass (a block per few planes, kernels/spike_pool.cuh) where the planes' codes fit a
    block's shared memory, else in two: the same as nn.MaxPool2d's bit for bit either way."""
    pool = nn.MaxPool2d(*pool_args[:4], ceil_mode=pool_args[4])
    x = (torch.rand(shape, generator=generator(9)) < 0.3).float().to(device)
    grads = []
    for lean in (False, True):
        xi = x.clone().requires_grad_(True)
        q = norm.spike_max_pool2d(pool, xi, norm.pack_spikes(xi)) if lean else pool(xi)
        (q * torch.randn(q.shape, generator=generator(10)).to(device)).sum().backward()
        grads.append(xi.grad)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_spike_max_pool_from_bits_in_other_dtypes(device, dtype):
    """bfloat16, float16 and float64: the output exact, dL/dx summed in float32 (float64) and rounded once,
    as PyTorch's CUDA max-pool does: equal to torch's on the GPU. On the CPU (whose torch kernel rounds
    after every addition) against the exact float64 sum of the same terms: at most one rounding of it
    (unit roundoff u) plus float32's error on at most 4 terms (4 * 2^-24 of their absolute sum)."""
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    x = (torch.rand(4, 5, 8, 8, generator=generator(5)) < 0.3).to(dtype).to(device)
    g = torch.randn(4, 5, 4, 4, generator=generator(6)).to(dtype).to(device)
    grads = []
    for lean in (False, True):
        xi = x.clone().requires_grad_(True)
        q = norm.spike_max_pool2d(pool, xi, norm.pack_spikes(xi)) if lean else pool(xi)
        assert q.dtype == dtype
        (q * g).sum().backward()
        grads.append(xi.grad)
    if device == "cuda" or dtype == torch.float64:
        assert torch.equal(grads[0], grads[1])
    else:
        def float64_grad(w):
            xi = x.double().clone().requires_grad_(True)
            (pool(xi) * w).sum().backward()
            return xi.grad

        exact, magnitude = float64_grad(g.double()), float64_grad(g.double().abs())   # the terms' sum, |sum|
        u = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}[dtype]
        assert ((grads[1].double() - exact).abs() <= u * exact.abs() + 4 * 2.0 ** -24 * magnitude).all()


def test_spike_max_pool_refuses_what_it_cannot_pool():
    """Refused in Python, before any kernel: a padding over half the kernel (nn.MaxPool2d refuses it too),
    windows of more than 255 elements (a window's maximum's place is kept in one byte) and dilated windows
    that hold no element of the input."""
    x = torch.ones(1, 1, 20, 20)
    for pool, match in [(nn.MaxPool2d(3, padding=2), "padding"), (nn.MaxPool2d(2, 1, 2, dilation=3), "padding"),
                        (nn.MaxPool2d(16), "255 elements")]:
        with pytest.raises(ValueError, match=match):
            norm.spike_max_pool2d(pool, x, norm.pack_spikes(x))
    # a window of taps -1 and 2 over a 2x2 input holds none of it (nn.MaxPool2d gives -inf there)
    x = torch.ones(1, 1, 2, 2)
    with pytest.raises(ValueError, match="every window"):
        norm.spike_max_pool2d(nn.MaxPool2d(2, padding=1, dilation=3), x, norm.pack_spikes(x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["LIF", "PLIF-channel"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("form", ["stem", "stem+pool", "stem-bits+pool", "stem-in-slices", "bits", "bits-split",
                                  "bits+residual", "bits+residual-bits", "bits+residual-bn", "bits+residual-bn-composed"])
def test_conv_norm_neuron_equals_the_composition(device, kind, channels_last, form, monkeypatch):
    """neuron(bn(conv(x)) + residual) as one node, float64, against conv, BatchNorm, the add and the
    neuron: "stem" keeps x and recomputes the convolution ("stem+pool": a max-pool after the neuron in
    the same node; "stem-bits+pool": x spikes kept as their bits only, unpacked to recompute the
    convolution; "stem-in-slices": the convolution and its backward 7 images at a time); the others
    take spikes x and keep their bits, with no residual, a dense one, or a residual of spikes read as
    its bits ("bits-split": the convolution's backward as two calls, dL/dw and then dL/dx, as for a large
    input), or a residual with a BatchNorm of its own, folded in ("bits+residual-bn") or, beyond
    ``FOLDED_RESIDUAL_BN_STEPS``, applied first ("-composed")."""
    if form == "bits-split":
        monkeypatch.setattr(norm, "SPLIT_BACKWARD_BYTES", 0)
    if form.endswith("-composed"):
        monkeypatch.setattr(norm, "FOLDED_RESIDUAL_BN_STEPS", T - 1)
    if form == "stem-in-slices":   # 7 images' output (5 channels of 5x5) a slice: 9 slices of 57
        monkeypatch.setattr(norm, "CONV_CHUNK_ELEMENTS", 7 * C * 5 * 5)
    g = generator(zlib.crc32(f"{kind}-{channels_last}-{form}".encode()))
    x = torch.rand(T * B, 3, 9, 9, generator=g, dtype=torch.float64)
    if not form.startswith("stem") or "bits" in form:
        x = (x < 0.4).double()
    x = x.to(device)
    conv = nn.Conv2d(3, C, 3, stride=2, padding=1, bias=False).to(device=device, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
    r = None
    if form.startswith("bits+residual"):
        r = torch.rand(T * B, C, 5, 5, generator=g, dtype=torch.float64)
        r = ((r < 0.5).double() if form.endswith("bits") else r * 0.6).to(device)
    if channels_last:
        x, conv = x.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    if r is not None:   # in the convolution's output format (float64 on a GPU has no channels-last convolution)
        r = r.contiguous(memory_format=torch.channels_last if norm.is_channels_last(conv(x)) else
                         torch.contiguous_format)
    pool = nn.MaxPool2d(3, stride=2, padding=1) if form.endswith("pool") else None
    weights = torch.randn(T * B, C, *((3, 3) if pool else (5, 5)), generator=generator(8),
                          dtype=torch.float64).to(device)
    out = []
    calls = []   # per fused call: whether the residual's BatchNorm went in (the op's res_norm argument)
    at = [arg.name for arg in library.CONV_NORM_NEURON._schema.arguments].index("res_norm")
    spies = {"NORM_FORWARD": lambda a, k: k.get("res_norm"), "CONV_NORM_NEURON": lambda a, k: a[at]}
    for name, res_norm in spies.items():
        op = getattr(library, name)
        monkeypatch.setattr(library, name, lambda *a, op=op, res_norm=res_norm, **k:
                            calls.append(bool(res_norm(a, k))) or op(*a, **k))
    for fused in (True, False):
        conv.zero_grad()
        bn = _bn(C, torch.float64, device, 9)
        rbn = _bn(C, torch.float64, device, 10) if "residual-bn" in form else None
        layer = _neuron(kind, device, torch.float64).double()
        xi = x.clone().requires_grad_(True)
        ri = None if r is None else r.clone().requires_grad_(True)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            if fused:
                bits = norm.pack_spikes(xi) if "bits" in form.split("+")[0] else None
                rbits = norm.pack_spikes(ri) if form.endswith("residual-bits") else None
                s = norm.conv_norm_neuron(conv, xi, bn, *layer.norm_args(), T, bits, ri, rbits, pool,
                                          recompute=form.startswith("stem"), residual_bn=rbn)
            else:
                s = _composed(conv(xi), ri, bn, layer, rbn)
                s = s if pool is None else pool(s)
            (s * weights).sum().backward()
        if fused:   # the convolution's calls: a slice at a time in forward, recomputation and backward
            counts = {e.key: e.count for e in prof.key_averages() if e.key in ("aten::conv2d",
                                                                                "aten::convolution_backward")}
            slices = 9 if form == "stem-in-slices" else 1
            assert counts.get("aten::conv2d") == slices * (2 if form.startswith("stem") else 1), counts
            assert counts.get("aten::convolution_backward") == slices * (2 if form == "bits-split" else 1), counts
        out.append((s.detach(), xi.grad, conv.weight.grad.clone(), bn.weight.grad, bn.bias.grad,
                    *[q.grad for q in layer.parameters()], bn.running_mean.clone(), bn.running_var.clone(),
                    *([] if ri is None else [ri.grad]),
                    *([] if rbn is None else [rbn.weight.grad, rbn.bias.grad, rbn.running_mean, rbn.running_var])))
    assert calls == [form.endswith("residual-bn")], "the residual's BatchNorm folded in exactly when it should be"
    assert torch.equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1:], out[1][1:]):
        assert _rel(a, b) < 1e-10


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["LIF", "PLIF-channel"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("form", ["stem+pool", "bits", "bits+residual-bn"])
def test_conv_norm_neuron_carries_the_membrane_across_calls(device, kind, channels_last, form):
    """A layer's 19 steps as two calls of the node, 11 and 8 steps, the first's v_T the second's v0 (the temporal
    pipeline's segments), float64: the spikes, the last v_T and every gradient (a given v0's and the loss's
    share through the last v_T among them) as conv, BatchNorm (each call's own batch statistics), the residual's
    BatchNorm and the neuron module carrying its membrane from call to call."""
    g = generator(zlib.crc32(f"carry-{kind}-{channels_last}-{form}".encode()))
    stem = form.startswith("stem")
    x = torch.rand(T * B, 3, 9, 9, generator=g, dtype=torch.float64)
    x = (x if stem else (x < 0.4).double()).to(device)
    conv = nn.Conv2d(3, C, 3, stride=2, padding=1, bias=False).to(device=device, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
    r = (torch.rand(T * B, C, 5, 5, generator=g, dtype=torch.float64) * 0.6).to(device) if "residual" in form else None
    if channels_last:
        x, conv = x.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    cl = norm.is_channels_last(conv(x))
    if r is not None:
        r = r.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
    pool = nn.MaxPool2d(3, stride=2, padding=1) if form.endswith("pool") else None
    weights = torch.randn(T * B, C, *((3, 3) if pool else (5, 5)), generator=g, dtype=torch.float64).to(device)
    v_start = (torch.rand(B, C, 5, 5, generator=g, dtype=torch.float64) * 0.5).to(device)
    v_weights = torch.randn(B, C, 5, 5, generator=g, dtype=torch.float64).to(device)

    def order(v):   # [B, C, H, W] as the node's [n]: the convolution output's memory order
        return (v.permute(0, 2, 3, 1) if cl else v).flatten()

    out = []
    for fused in (True, False):
        conv.zero_grad()
        bn = _bn(C, torch.float64, device, 9)
        rbn = _bn(C, torch.float64, device, 10) if r is not None else None
        layer = _neuron(kind, device, torch.float64).double()
        xi = x.clone().requires_grad_(True)
        ri = None if r is None else r.clone().requires_grad_(True)
        v0 = v_start.clone().requires_grad_(True)
        v, spikes = (order(v0) if fused else v0), []
        for lo, hi in ((0, 11 * B), (11 * B, T * B)):
            xs, rs, steps = xi[lo:hi], None if ri is None else ri[lo:hi], (hi - lo) // B
            if fused:
                bits = None if stem else norm.pack_spikes(xs)
                s, v = norm.conv_norm_neuron(conv, xs, bn, *layer.norm_args(), steps, bits, rs, None, pool,
                                             recompute=stem, residual_bn=rbn, v0=v, return_state=True)
            else:
                y = bn(conv(xs)) + (0 if rs is None else rbn(rs))
                s, v = layer(y.unflatten(0, (steps, -1)), v, return_state=True)
                s = s.flatten(0, 1)
                s = s if pool is None else pool(s)
            spikes.append(s)
        s = torch.cat(spikes)
        v_last = v if fused else order(v)
        ((s * weights).sum() + (v_last * order(v_weights)).sum()).backward()
        out.append((s.detach(), v_last.detach(), xi.grad, v0.grad, conv.weight.grad.clone(), bn.weight.grad,
                    bn.bias.grad, *[q.grad for q in layer.parameters()], bn.running_mean.clone(),
                    bn.running_var.clone(), *([] if ri is None else [ri.grad, rbn.weight.grad, rbn.bias.grad])))
    assert torch.equal(out[0][0], out[1][0])
    assert 0 < out[0][0].sum() < out[0][0].numel()
    for a, b in zip(out[0][1:], out[1][1:]):
        assert _rel(a, b) < 1e-10


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("channels, side", [(8, 4), (5, 3)], ids=["whole-bytes", "bytes-across-steps"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_spikes_bits_come_from_the_forward_kernel(device, channels_last, channels, side, dtype):
    """conv_norm_neuron's kernel writes its spikes' bits beside them (on the GPU where a byte's elements are
    one step's, n % 8 == 0; else they are packed after it): pack_spikes(s) returns those very bits, equal
    to packing s afresh; once s's version moves (an in-place change) it packs s again; an entry goes with
    its s."""
    torch.manual_seed(0)   # the convolution's initial weights
    conv = nn.Conv2d(3, channels, 3, padding=1, bias=False).to(device)
    x = (torch.rand(T * B, 3, side, side, generator=generator(31)) < 0.5).float().to(device)   # n = B * C * side^2
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
        s = norm.conv_norm_neuron(conv, x, _bn(channels, torch.float32, device, 32), *LIF().norm_args(), T,
                                  norm.pack_spikes(x))
    bits = norm.pack_spikes(s)
    assert bits is norm.pack_spikes(s), "the bits the forward wrote"
    assert torch.equal(bits, library.PACK_SPIKES(norm._memory_order(s)))
    assert s.sum() > 0 and s.sum() < s.numel()
    if not channels_last:   # (a channels-last output is a view: autograd refuses to permute it once changed)
        torch.autograd.graph.increment_version(s)   # as an in-place change would
        again = norm.pack_spikes(s)
        assert again is not bits and torch.equal(again, bits)
    key = id(s)
    del s
    assert key not in norm._KNOWN_BITS


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the vector width is the GPU launcher's choice")
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("residual", ["bits", "normed"])
def test_norm_ops_at_every_vector_width_on_cuda(channels_last, dtype, residual):
    """The GPU launcher gives a thread 1, 2, 4 or 8 neurons by the layer's size (small test layers get 1):
    forced to each, conv_norm_neuron's spikes, their bits (written by 8 / V lanes together) and every
    gradient are the same bits as at width 1 (each element's operations do not depend on the width),
    with a residual of spikes read as bits or a dense one with its own BatchNorm ("normed")."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False).cuda()
    x = (torch.rand(T * 2, 3, 4, 4, generator=generator(51)) < 0.5).float().cuda()   # n = 2 * 8 * 16
    r = torch.rand(T * 2, 8, 4, 4, generator=generator(52))
    r = (r < 0.5).float().cuda() if residual == "bits" else (r * 2 - 0.5).cuda()
    if channels_last:
        x, r = (t.contiguous(memory_format=torch.channels_last) for t in (x, r))
    g = torch.randn(T * 2, 8, 4, 4, generator=generator(53)).cuda()
    results = []
    for vec in (1, 2, 4, 8):
        before = library.set_option("vec", vec)
        try:
            xi = x.clone().requires_grad_(True)
            ri = r.clone().requires_grad_(True)
            bn = _bn(8, torch.float32, "cuda", 54)
            rbn = _bn(8, torch.float32, "cuda", 55) if residual == "normed" else None
            conv.weight.grad = None
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                rin = ri.to(dtype)   # as a downsample's convolution would give it
                s = norm.conv_norm_neuron(conv, xi, bn, *LIF().norm_args(), T, norm.pack_spikes(xi), rin,
                                          norm.pack_spikes(ri) if rbn is None else None, residual_bn=rbn)
            bits = norm.pack_spikes(s)
            (s.float() * g).sum().backward()
            results.append((s.detach(), bits, xi.grad, ri.grad, conv.weight.grad.clone(), bn.weight.grad,
                            bn.bias.grad, bn.running_mean, bn.running_var,
                            *(() if rbn is None else (rbn.weight.grad, rbn.bias.grad, rbn.running_mean,
                                                      rbn.running_var))))
        finally:
            library.set_option("vec", before)
    assert torch.equal(results[0][1], library.PACK_SPIKES(norm._memory_order(results[0][0])))
    for vec, got in zip((2, 4, 8), results[1:]):
        for i, (a, b) in enumerate(zip(got, results[0])):
            assert torch.equal(a, b), f"output {i} at vec {vec}"


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_residual_batchnorm_beyond_the_folded_steps_is_applied_first(channels_last, monkeypatch):
    """norm_neuron with a residual BatchNorm for more than FOLDED_RESIDUAL_BN_STEPS steps applies it as a
    module to the time-major residual (its channels dim 2), then adds its output as a dense residual: the
    composition's results."""
    monkeypatch.setattr(norm, "FOLDED_RESIDUAL_BN_STEPS", T - 1)
    z, r = _inputs(torch.float64, "cpu", 61, channels_last, "normed")
    weights = torch.randn(z.shape, generator=generator(62), dtype=torch.float64)
    results = []
    for fn in (_fused, None):
        bn, rbn = _bn(C, torch.float64, "cpu", 63), _bn(C, torch.float64, "cpu", 64)
        layer = _neuron("LIF", "cpu", torch.float64)
        f = ((lambda a, b: _fused(a, b, "normed", bn, layer, rbn)) if fn else
             (lambda a, b: _composed(a, b, bn, layer, rbn)))
        results.append(_grads(f, z, r, bn, layer, weights, rbn))
    got, want = results
    assert torch.equal(got["s"], want["s"])
    for name in ("gz", "gr", "gw", "gb", "rgw", "rgb"):
        assert _rel(got[name], want[name]) < 1e-10, name
    for a, b in zip(got["rrunning"][:2], want["rrunning"][:2]):
        assert _rel(a, b) < 1e-12


def test_lean_network_compiles_to_the_same_step():
    """torch.compile(fullgraph=True) traces the lean network whole (the C++ nodes through their ops' fake
    implementations, the spikes' bits packed rather than remembered): float64 logits, gradients and
    running statistics are eager's (AOTAutograd's own graphs, run eagerly: backend aot_eager)."""
    torch.manual_seed(0)
    nets = [models.build("Spiking-ResNet18", lambda: LIF(save="input"), lean=True, spike_input=True).double()
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    x = (torch.rand(2, 2, 3, 16, 16, generator=generator(71), dtype=torch.float64) < 0.5).double()
    torch._dynamo.reset()
    run = [nets[0], torch.compile(nets[1], backend="aot_eager", fullgraph=True)]
    y = [f(x) for f in run]
    for out in y:
        out.square().sum().backward()
    assert _rel(y[1], y[0]) < 1e-12
    for (name, p0), p1 in zip(nets[0].named_parameters(), nets[1].parameters()):
        assert _rel(p1.grad, p0.grad) < 1e-12, name
    for (name, b0), b1 in zip(nets[0].named_buffers(), nets[1].buffers()):
        assert _rel(b1.double(), b0.double()) < 1e-12 if b0.is_floating_point() else torch.equal(b0, b1), name


@pytest.mark.parametrize("pool", [False, True], ids=["stem", "stem+pool"])
def test_the_stem_node_under_inductor(pool):
    """Inductor (its layout optimisation on, its caches off: a cached graph would not see this build) may
    give the stem's recomputed convolution output another memory layout; the node's backward then writes
    dL/dz into a buffer of its own rather than over z, and gets eager's gradients."""
    import torch._inductor.config as inductor_config

    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        conv, bn = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        x = (torch.rand(T * 2, 3, 8, 8, generator=generator(72)) < 0.5).float().requires_grad_(True)
        pl = nn.MaxPool2d(3, 2, 1) if pool else None

        def layer(x):
            return norm.conv_norm_neuron(conv, x, bn, *LIF().norm_args(), T, pool=pl)

        torch._dynamo.reset()
        with inductor_config.patch(force_disable_caches=True, layout_optimization=True):
            f = torch.compile(layer, fullgraph=True) if compiled else layer
            s = f(x)
            (s * torch.linspace(-1, 1, s.numel()).view(s.shape)).sum().backward()
        results.append((s.detach(), x.grad, conv.weight.grad, bn.weight.grad, bn.bias.grad))
    for i, (got, want) in enumerate(zip(*results[::-1])):
        assert _rel(got, want) < 1e-5, i


def test_lean_network_under_inference_mode():
    """Under torch.inference_mode (no version counters) the lean network runs as under no_grad: the same
    logits, its spikes' bits packed where needed rather than remembered."""
    torch.manual_seed(0)
    net = models.build("Spiking-ResNet18", lambda: LIF(save="input"), lean=True, spike_input=True).eval()
    x = (torch.rand(2, 2, 3, 16, 16, generator=generator(41)) < 0.5).float()
    with torch.no_grad():
        want = net(x)
    with torch.inference_mode():
        got = net(x)
    assert torch.equal(got, want)


def test_conv_norm_neuron_refuses_a_second_backward():
    """Its backward writes dL/dz over the kept z: a second backward over the same graph is refused."""
    torch.manual_seed(0)   # the convolution's initial weights
    conv = nn.Conv2d(3, C, 3, padding=1, bias=False).double()
    x = (torch.rand(T * B, 3, 4, 4, generator=generator(9), dtype=torch.float64) < 0.5).double().requires_grad_(True)
    s = norm.conv_norm_neuron(conv, x, _bn(C, torch.float64, "cpu", 1), *LIF().norm_args(), T, norm.pack_spikes(x))
    s.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        s.sum().backward()


def test_lean_network_under_bf16_autocast():
    """bf16 autocast on the CPU: the lean network's loss is the default's to bf16 rounding (a smoke
    test of the autocast handling of the spike convolutions and the stem; spikes at ties may differ)."""
    torch.manual_seed(0)
    plain = models.build("Spiking-ResNet18", lambda: LIF(save="input"))
    lean = models.build("Spiking-ResNet18", lambda: LIF(save="input"), lean=True)
    lean.load_state_dict(plain.state_dict())
    x = torch.rand(2, 2, 3, 32, 32, generator=generator(5))
    losses = []
    for m in (plain, lean):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = m(x).float().square().mean()
        loss.backward()
        losses.append(loss.item())
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert abs(losses[0] - losses[1]) <= 0.05 * abs(losses[0])


@pytest.mark.parametrize("arch", ["Spiking-ResNet18", "Spiking-ResNet50"])
@pytest.mark.parametrize("neuron", ["LIF", "PLIF"])
@pytest.mark.parametrize("spike_input", [False, True], ids=["image", "spikes"])
def test_lean_network_equals_default(arch, neuron, spike_input):
    """The same network, parameters and state_dict; outputs, parameter gradients and running statistics
    to float64 rounding (the model in float64 on the CPU, 2 steps of a batch of 2 at 32x32). "spikes":
    a 0/1 input, which the lean stem keeps as bits."""
    factory = (lambda: LIF(save="input")) if neuron == "LIF" else (lambda: PLIF(channels=None))
    torch.manual_seed(0)
    plain = models.build(arch, factory).double()
    lean = models.build(arch, factory, lean=True, spike_input=spike_input).double()
    assert list(plain.state_dict()) == list(lean.state_dict())
    lean.load_state_dict(plain.state_dict())
    x = torch.rand(2, 2, 3, 32, 32, generator=generator(4), dtype=torch.float64)
    if spike_input:
        x = (x < 0.3).double()
    y = [m(x) for m in (plain, lean)]
    assert _rel(y[1], y[0]) < 1e-12
    for m, out in zip((plain, lean), y):
        out.square().sum().backward()
    for (name, p0), p1 in zip(plain.named_parameters(), lean.parameters()):
        assert _rel(p1.grad, p0.grad) < 1e-9, name
    for (name, b0), b1 in zip(plain.named_buffers(), lean.buffers()):
        assert _rel(b1.double(), b0.double()) < 1e-12 if b0.is_floating_point() else torch.equal(b0, b1), name


def test_lean_refuses_what_it_cannot_fold():
    z = torch.zeros(T, B, C, H * W)
    with pytest.raises(ValueError, match="normalises a dense residual"):
        norm.norm_neuron(z, nn.BatchNorm2d(C), *LIF().norm_args(), z, norm.pack_spikes(z), nn.BatchNorm2d(C))
    x = torch.zeros(T * B, 3, 4, 4)
    with pytest.raises(ValueError, match="pool needs recompute=True"):
        norm.conv_norm_neuron(nn.Conv2d(3, C, 3, bias=False), x, nn.BatchNorm2d(C), *LIF().norm_args(), T,
                              norm.pack_spikes(x), pool=nn.MaxPool2d(2), recompute=False)
    with pytest.raises(ValueError, match="cannot take it"):
        models.build("Spiking-ResNet18", nn.Identity, lean=True)
    with pytest.raises(ValueError, match="step_mode='multi'"):
        models.build("Spiking-ResNet18", LIF, lean=True, step_mode="single")
    with pytest.raises(ValueError, match="lean applies to tfbench's spiking ResNets"):
        models.build("ResNet18", None, lean=True)
    with pytest.raises(ValueError, match="shape"):
        norm.time_major(torch.zeros(4, 3), 2)


def test_the_stem_computes_in_autocasts_dtype_whatever_its_floating_input():
    """Autocast casts every floating input but float64 to its dtype (float16 under bf16 too): the stem's
    kept input and recomputation follow that rule, as F.conv2d does."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for dtype, want in [(torch.float32, torch.bfloat16), (torch.float16, torch.bfloat16),
                            (torch.float64, torch.float64)]:
            x = torch.zeros(1, 1, 3, 3, dtype=dtype)
            assert norm._compute_dtype(x) == want == F.conv2d(x, torch.zeros(1, 1, 1, 1, dtype=dtype)).dtype
    assert norm._compute_dtype(torch.zeros(1, dtype=torch.float16)) == torch.float16
