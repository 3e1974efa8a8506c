"""kernels/lif.cuh compiled for the host: the CUDA kernels' own per-thread loops, tested on the CPU.

Each configuration (the -D switches of lif.cuh) is built with the system C++ compiler into a small
shared library and run over every neuron; results are compared with the float64 reference. Both
pairs of loops are run: keeping h, and keeping x with membrane checkpoints (h recomputed).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tfbench.ops.jit import kernels_dir
from tfbench.ops.lif import LIFParams
from tfbench.ops.lif.alloc import CKPT, ckpt_rows
from tfbench.ops.lif.cuda import _STORAGE, _SURROGATE

from .lif_cases import ALL_PARAMS, loss_weights, make_input, masked, reference64, rel_err, tie_mask

CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None and os.environ.get("CI") != "true",
                                reason="no C++ compiler to build the kernel header for the host")

_LIBS: dict[tuple, ctypes.CDLL] = {}


class _ParamsF(ctypes.Structure):
    _fields_ = [(k, ctypes.c_float) for k in ("inv_tau", "v_threshold", "v_reset", "alpha")]


class _ParamsD(ctypes.Structure):
    _fields_ = [(k, ctypes.c_double) for k in ("inv_tau", "v_threshold", "v_reset", "alpha")]


def build(tmp: Path, dtype: torch.dtype, p: LIFParams, vec: int = 1) -> ctypes.CDLL:
    key = (dtype, p.decay_input, p.hard_reset, p.detach_reset, p.surrogate, vec)
    if key in _LIBS:
        return _LIBS[key]
    defines = {"LIF_STORAGE": _STORAGE[dtype], "LIF_DECAY_INPUT": int(p.decay_input),
               "LIF_HARD_RESET": int(p.hard_reset), "LIF_DETACH_RESET": int(p.detach_reset),
               "LIF_SURROGATE": _SURROGATE[p.surrogate], "LIF_VEC": vec, "LIF_CKPT": CKPT}
    out = tmp / ("lif_" + "_".join(str(v) for v in defines.values()) + ".so")
    cmd = [CXX, "-O1", "-std=c++17", "-shared", "-fPIC", f"-I{kernels_dir()}",
           *[f"-D{k}={v}" for k, v in defines.items()], str(Path(__file__).with_name("host_lif.cpp")), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    _LIBS[key] = lib = ctypes.CDLL(str(out))
    return lib


def ptr(t: torch.Tensor | None):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def host_op(lib, x, v0, p: LIFParams, gs, gv_last):
    """Forward then backward through the host build; x, gs: [T, N]."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    params = (_ParamsD if acc == torch.float64 else _ParamsF)(1.0 / p.tau, p.v_threshold, p.rest, p.alpha)
    steps, n = x.shape
    s, h = torch.full_like(x, float("nan")), torch.full_like(x, float("nan"))
    v_last = torch.full((n,), float("nan"), dtype=acc)
    lib.host_forward(ptr(x), ptr(v0), ptr(s), ptr(h), ptr(v_last), ctypes.c_longlong(n), ctypes.c_int(steps),
                     ctypes.byref(params))
    gx, gv0 = torch.full_like(x, float("nan")), torch.full((n,), float("nan"), dtype=acc)
    gs = gs.to(x.dtype).contiguous()  # kept alive for the call
    gv_last = None if gv_last is None else gv_last.to(acc).contiguous()
    lib.host_backward(ptr(gs), ptr(h), ptr(gv_last), ptr(gx), ptr(gv0),
                      ctypes.c_longlong(n), ctypes.c_int(steps), ctypes.byref(params))
    return s, h, v_last, gx, gv0


def host_op_recompute(lib, x, v0, p: LIFParams, gs, gv_last):
    """The same through the loops that keep x: forward (s, checkpoints, v_T), backward recomputing h."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    params = (_ParamsD if acc == torch.float64 else _ParamsF)(1.0 / p.tau, p.v_threshold, p.rest, p.alpha)
    steps, n = x.shape
    s = torch.full_like(x, float("nan"))
    ckpt = torch.full((ckpt_rows(steps), n), float("nan"), dtype=acc)
    v_last = torch.full((n,), float("nan"), dtype=acc)
    lib.host_forward_ckpt(ptr(x), ptr(v0), ptr(s), ptr(ckpt), ptr(v_last), ctypes.c_longlong(n),
                          ctypes.c_int(steps), ctypes.byref(params))
    gx, gv0 = torch.full_like(x, float("nan")), torch.full((n,), float("nan"), dtype=acc)
    gs = gs.to(x.dtype).contiguous()
    gv_last = None if gv_last is None else gv_last.to(acc).contiguous()
    lib.host_backward_recompute(ptr(gs), ptr(x), ptr(v0), ptr(ckpt), ptr(gv_last), ptr(gx), ptr(gv0),
                                ctypes.c_longlong(n), ctypes.c_int(steps), ctypes.byref(params))
    return s, ckpt, v_last, gx, gv0


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("host_kernels")


@pytest.mark.parametrize("p", ALL_PARAMS, ids=lambda p: f"{p.decay_input}-{p.v_reset}-{p.detach_reset}-{p.surrogate}")
def test_kernel_maths_on_host(tmp, p):
    x = make_input((11, 6, 8), p, seed=5).reshape(11, -1)
    v0 = torch.rand(48) * p.v_threshold
    ws, wv = loss_weights(x)
    mask = tie_mask(x, v0, p)
    rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv)
    for vec in (1, 4):
        s, _, v, gx, gv0 = host_op(build(tmp, torch.float32, p, vec), x, v0, p, ws.float(), wv.float())
        assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
        assert rel_err(masked(v, mask, False), masked(rv, mask, False), p.v_threshold) < 1e-5
        assert rel_err(masked(gx, mask, True), masked(rgx, mask, True)) < 1e-5
        assert rel_err(masked(gv0, mask, False), masked(rgv0, mask, False)) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_storage_dtypes_on_host(tmp, dtype):
    p = LIFParams(tau=1.25, decay_input=False, v_threshold=0.3)
    x = make_input((9, 64), p, dtype=dtype, seed=9)
    ws, wv = loss_weights(x)
    mask = tie_mask(x, None, p)
    rs, rv, rgx, _ = reference64(x, None, p, ws, wv)
    s, h, v, gx, _ = host_op(build(tmp, dtype, p, 8 if dtype != torch.float64 else 2), x, None, p, ws, wv)
    tol = 1e-12 if dtype == torch.float64 else 1e-2
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True).to(s.dtype).double())
    assert torch.equal(s, (h.double() >= p.v_threshold).to(dtype))  # stored h keeps the spike
    assert rel_err(masked(v, mask, False), masked(rv, mask, False), p.v_threshold) < tol
    assert rel_err(masked(gx, mask, True), masked(rgx, mask, True)) < tol


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_host_conversions_round_to_nearest_even(tmp, dtype):
    """lif.cuh's software float -> bf16/fp16 rounding agrees bit for bit with PyTorch's."""
    lib = build(tmp, dtype, LIFParams())
    g = torch.Generator().manual_seed(0)
    values = torch.cat([
        torch.randn(20000, generator=g) * 10.0 ** torch.randint(-9, 6, (20000,), generator=g),
        torch.tensor([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8, 1e-40, 3.0e38,
                      float("inf"), -float("inf")]),
    ]).float()
    out = torch.empty_like(values)
    lib.host_round_trip(ptr(values), ptr(out), ctypes.c_longlong(values.numel()))
    expected = values.to(dtype).float()
    assert torch.equal(out, expected)
    nan_in = torch.tensor([float("nan")])
    lib.host_round_trip(ptr(nan_in), ptr(out), ctypes.c_longlong(1))
    assert torch.isnan(out[0])


@pytest.mark.parametrize("p", ALL_PARAMS, ids=lambda p: f"{p.decay_input}-{p.v_reset}-{p.detach_reset}-{p.surrogate}")
def test_recompute_loops_on_host(tmp, p):
    """Keeping x: every output equals the h-keeping loops' bit for bit in fp32 (the recomputed h is
    the forward's h), for T a multiple of CKPT, not one, and below it; the checkpoints are the
    forward's membranes; and the results match the float64 reference."""
    for steps in (3, CKPT, 2 * CKPT + 3):
        x = make_input((steps, 48), p, seed=steps)
        v0 = torch.rand(48) * p.v_threshold if steps != CKPT else None
        ws, wv = loss_weights(x)
        gv_last = wv.float() if steps != 3 else None
        mask = tie_mask(x, v0, p)
        rs, rv, rgx, rgv0 = reference64(x, v0, p, ws, wv if gv_last is not None else torch.zeros_like(wv))
        for vec in (1, 4):
            lib = build(tmp, torch.float32, p, vec)
            s, h, v, gx, gv0 = host_op(lib, x, v0, p, ws.float(), gv_last)
            s2, ckpt, v2, gx2, gv02 = host_op_recompute(lib, x, v0, p, ws.float(), gv_last)
            assert torch.equal(s2, s) and torch.equal(v2, v) and torch.equal(gx2, gx)
            assert v0 is None or torch.equal(gv02, gv0)
            # checkpoint c - 1 is v after step c * CKPT - 1: the reset of that step's h
            for c in range(1, ckpt.shape[0] + 1):
                t = c * CKPT - 1
                spiked = s[t] == 1
                after = (torch.where(spiked, torch.full_like(h[t], p.rest), h[t]) if p.hard_reset
                         else torch.where(spiked, h[t] - p.v_threshold, h[t]))
                assert torch.equal(ckpt[c - 1], after)
            assert torch.equal(masked(s2, mask, True), masked(rs, mask, True))
            assert rel_err(masked(v2, mask, False), masked(rv, mask, False), p.v_threshold) < 1e-5
            assert rel_err(masked(gx2, mask, True), masked(rgx, mask, True)) < 1e-5
            if v0 is not None:
                assert rel_err(masked(gv02, mask, False), masked(rgv0, mask, False)) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_recompute_storage_dtypes_on_host(tmp, dtype):
    """16-bit storage: the recomputed (fp32) h gives exactly the forward's spikes, and the gradient is
    at least as close to the float64 reference as the one from the rounded, kept h."""
    p = LIFParams(tau=1.25, decay_input=False, v_threshold=0.3)
    x = make_input((19, 64), p, dtype=dtype, seed=9)
    ws, wv = loss_weights(x)
    mask = tie_mask(x, None, p)
    rs, rv, rgx, _ = reference64(x, None, p, ws, wv)
    lib = build(tmp, dtype, p, 8 if dtype != torch.float64 else 2)
    s, _, v, gx, _ = host_op(lib, x, None, p, ws, wv)
    s2, _, v2, gx2, _ = host_op_recompute(lib, x, None, p, ws, wv)
    assert torch.equal(s2, s) and torch.equal(v2, v)
    assert torch.equal(masked(s2, mask, True), masked(rs, mask, True).to(s.dtype).double())
    if dtype == torch.float64:
        assert torch.equal(gx2, gx)
    else:
        assert rel_err(masked(gx2, mask, True), masked(rgx, mask, True)) <= \
            1.01 * rel_err(masked(gx, mask, True), masked(rgx, mask, True)) + 1e-6
        assert rel_err(masked(gx2, mask, True), masked(rgx, mask, True)) < 1e-2
