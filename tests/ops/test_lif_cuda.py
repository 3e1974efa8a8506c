"""GPU-only behaviour of the fused op: launch variants, CUDA graphs, torch.compile, 64-bit indexing."""

from __future__ import annotations

import pytest
import torch

from tfbench.ops.lif import LIF, PRESETS, LIFParams, lif, lif_reference
from tfbench.ops.lif import cuda as lif_cuda

from .lif_cases import make_input, masked, rel_err, tie_mask

pytestmark = pytest.mark.cuda


def _fwd_bwd(x, p, gs):
    x = x.detach().clone().requires_grad_(True)
    s, v = lif(x, **p.as_kwargs())
    (s * gs).sum().backward()
    return s, v, x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("unroll", [1, 4, 8])
def test_every_vector_width_gives_identical_results(dtype, unroll, monkeypatch):
    p = PRESETS["paper"]
    x = make_input((13, 8 * 1031), p, dtype=dtype, device="cuda")
    gs = torch.randn_like(x)
    monkeypatch.setattr(lif_cuda.TUNING, "unroll", unroll)
    outs = {}
    for vec in (1, 2, 4, 8):
        monkeypatch.setattr(lif_cuda.TUNING, "vec", vec)
        outs[vec] = _fwd_bwd(x, p, gs)
    for vec in (2, 4, 8):
        for a, b in zip(outs[1], outs[vec]):
            assert torch.equal(a, b), f"vec={vec} differs from vec=1"


def test_unaligned_and_odd_sizes_fall_back_to_narrow_access():
    p = PRESETS["spikingjelly"]
    base = make_input((5 * 4099 + 1,), p, device="cuda")
    x = base[1:].view(5, 4099)  # 4 bytes past an aligned address, N odd
    assert x.data_ptr() % 16 != 0
    s, v = lif(x, **p.as_kwargs())
    rs, rv = lif_reference(x.double(), **p.as_kwargs())
    mask = tie_mask(x, None, p)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))


def test_runs_on_the_current_stream_and_other_devices_index():
    p = PRESETS["paper"]
    x = make_input((8, 1 << 16), p, device="cuda")
    expected = lif(x, **p.as_kwargs())[0]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            s = lif(x, **p.as_kwargs())[0]
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(s, expected)


@pytest.mark.parametrize("cpp", [False, True])
def test_fresh_threads_launch_forward_and_backward(cpp, monkeypatch):
    """A thread that never touched CUDA (no current context) launches, forward and backward."""
    import threading

    from tfbench.ops.lif import alloc
    from tfbench.ops.lif import op as lif_op

    monkeypatch.setattr(alloc, "POISON", not cpp)  # poisoned outputs route to the Python path
    monkeypatch.setattr(lif_op, "USE_CPP", cpp)
    p = PRESETS["paper"]
    x = make_input((6, 4096), p, device="cuda").requires_grad_(True)
    gs = torch.randn_like(x)
    expected = torch.autograd.grad(lif(x, **p.as_kwargs())[0], x, gs)[0]
    results, errors = [], []

    def work():
        try:
            results.append(torch.autograd.grad(lif(x, **p.as_kwargs())[0], x, gs)[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for _ in range(2):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert not errors, errors
    assert all(torch.equal(r, expected) for r in results) and len(results) == 2


def test_cuda_graph_capture_and_replay():
    p = PRESETS["paper"]
    layer = LIF(**p.as_kwargs())
    x = make_input((8, 4, 1024), p, device="cuda").requires_grad_(True)
    gs = torch.randn_like(x)
    # warm up on a side stream (compiles and loads the kernels outside the capture)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            (layer(x) * gs).sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        s = layer(x)
        (s * gs).sum().backward()
    fresh = make_input((8, 4, 1024), p, device="cuda", seed=11)
    with torch.no_grad():
        x.copy_(fresh)
    x.grad.zero_()
    graph.replay()
    torch.cuda.synchronize()
    rs, _ = lif_reference(fresh.double(), **p.as_kwargs())
    mask = tie_mask(fresh.reshape(8, -1), None, p)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    xr = fresh.detach().clone().requires_grad_(True)
    (lif_reference(xr, **p.as_kwargs())[0] * gs).sum().backward()
    assert rel_err(masked(x.grad, mask, True), masked(xr.grad, mask, True)) < 1e-5


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_torch_compile_inductor_fullgraph(mode):
    p = PRESETS["paper"]
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).cuda()
    layer = LIF(**p.as_kwargs())

    def net(x):  # [T, B, C, H, W]
        steps, batch = x.shape[:2]
        y = conv(x.flatten(0, 1)).unflatten(0, (steps, batch))
        return layer(y).mean(0).sum()

    compiled = torch.compile(net, fullgraph=True, mode=mode)
    x = torch.rand(6, 2, 3, 16, 16, device="cuda")
    for _ in range(3):
        out = compiled(x)
        conv.zero_grad()
        out.backward()
    grads = conv.weight.grad.clone()
    conv.zero_grad()
    eager = net(x)
    eager.backward()
    assert torch.allclose(out, eager, rtol=1e-4)
    assert rel_err(grads, conv.weight.grad) < 1e-4


def test_v0_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="v0 must be on x's device"):
        lif(torch.rand(3, 4, device="cuda"), torch.rand(4))


@pytest.mark.slow
def test_more_than_2_31_elements():
    """64-bit offsets: T * N > 2^31; the last neurons and the last step are right."""
    p = LIFParams(tau=2.0, v_threshold=0.5)
    steps, n = 3, (1 << 31) // 3 + 4096
    assert steps * n > 2 ** 31
    x = torch.rand(steps, n, dtype=torch.bfloat16, device="cuda")
    x.requires_grad_(True)
    s, v = lif(x, **p.as_kwargs())
    gs = torch.ones_like(s)
    s.backward(gs)
    tail = slice(n - 4096, n)
    xs = x.detach()[:, tail].clone().requires_grad_(True)
    rs, rv = lif(xs, **p.as_kwargs())
    rs.backward(gs[:, tail])
    assert torch.equal(s[:, tail], rs) and torch.equal(v[tail], rv)
    assert torch.equal(x.grad[:, tail], xs.grad)
    assert not torch.isnan(x.grad[-1]).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(7, 3, 4099), (16, 8, 32, 32), (1, 65536)])
@pytest.mark.parametrize("with_v0", [False, True])
def test_cpp_node_equals_the_python_path(dtype, shape, with_v0, monkeypatch):
    """The C++ autograd node (fast.py) launches the same kernels: bit-identical outputs and gradients."""
    from tfbench.ops.lif import alloc, fast
    from tfbench.ops.lif import op as lif_op

    monkeypatch.setattr(alloc, "POISON", False)  # the C++ node allocates itself
    assert fast.extension() is not None, fast.reason()
    p = PRESETS["paper"]
    x = make_input(shape, p, dtype=dtype, device="cuda")
    gs = torch.randn_like(x)
    gv = torch.randn(shape[1:], device="cuda")
    v0 = torch.rand(shape[1:], device="cuda", dtype=torch.float64) * 0.3 if with_v0 else None

    def run(use_cpp):
        monkeypatch.setattr(lif_op, "USE_CPP", use_cpp)
        xr = x.detach().clone().requires_grad_(True)
        vr = None if v0 is None else v0.detach().clone().requires_grad_(True)
        s, v = lif(xr, vr, **p.as_kwargs())
        grads = torch.autograd.grad((s * gs).sum() + (v * gv).sum(), [xr] + ([vr] if vr is not None else []))
        return (s, v, *grads)

    for a, b in zip(run(True), run(False)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    # the module path, which asks for no v_T: forward and backward with the final membrane unused
    if not with_v0:
        monkeypatch.setattr(lif_op, "USE_CPP", True)
        xr = x.detach().clone().requires_grad_(True)
        s = LIF(**p.as_kwargs())(xr)
        expected = run(False)
        assert torch.equal(s, expected[0])
        grad = torch.autograd.grad(s, xr, gs)[0]
        monkeypatch.setattr(lif_op, "USE_CPP", False)
        xp = x.detach().clone().requires_grad_(True)
        assert torch.equal(grad, torch.autograd.grad(LIF(**p.as_kwargs())(xp), xp, gs)[0])


def test_first_backward_of_a_process_through_the_cpp_node():
    """A fresh process whose first CUDA work in the autograd thread is the C++ node's backward
    (the engine's thread has no current context then): it must launch, not fail or crash."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from tfbench.ops.lif import LIF, fast\n"
        "assert fast.extension() is not None, fast.reason()\n"
        "x = torch.randn(16, 1 << 16, device='cuda').requires_grad_(True)\n"
        "g = torch.autograd.grad(LIF.from_preset('paper')(x), x, torch.ones_like(x))[0]\n"
        "torch.cuda.synchronize()\n"
        "assert torch.isfinite(g).all()\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# save="input": keep x and membrane checkpoints, recompute h in backward (lif_forward_ckpt /
# lif_backward_recompute). tests/ops/test_lif_recompute.py runs its device-generic tests here too.
# ------------------------------------------------------------------------------------------------
def _fwd_bwd_saving(x, p, gs, save, v0=None, gv=None):
    x = x.detach().clone().requires_grad_(True)
    v0 = None if v0 is None else v0.detach().clone().requires_grad_(True)
    s, v = lif(x, v0, save=save, **p.as_kwargs())
    loss = (s * gs).sum() + ((v * gv).sum() if gv is not None else 0)
    grads = torch.autograd.grad(loss, [x] + ([v0] if v0 is not None else []))
    return (s, v, *grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("steps", [1, 7, 8, 9, 16, 33])
def test_recompute_equals_keeping_h(dtype, steps):
    """Spikes and v_T bit for bit (the kernels recompute the forward's h exactly); fp32 gradients to
    1e-6 (bit for bit expected); 16-bit gradients no further from float64 than save="h"'s."""
    from tfbench.ops.lif import alloc

    p = PRESETS["paper"]
    x = make_input((steps, 8 * 1031), p, dtype=dtype, device="cuda", seed=steps)
    gs = torch.randn_like(x)
    gv = torch.randn(x.shape[1:], device="cuda")
    v0 = torch.rand(x.shape[1:], device="cuda") * p.v_threshold
    a = _fwd_bwd_saving(x, p, gs, "input", v0, gv)
    b = _fwd_bwd_saving(x, p, gs, "h", v0, gv)
    assert torch.equal(a[0], b[0]), "spikes differ"
    assert torch.equal(a[1], b[1]), "v_T differs"
    if dtype == torch.float32:
        assert rel_err(a[2], b[2]) < 1e-6 and rel_err(a[3], b[3]) < 1e-6
    else:
        xr = x.detach().double().cpu().requires_grad_(True)
        vr = v0.detach().double().cpu().requires_grad_(True)
        rs, rv = lif_reference(xr, vr, **p.as_kwargs())
        (rgx,) = torch.autograd.grad((rs * gs.double().cpu()).sum() + (rv * gv.double().cpu()).sum(), [xr])
        assert rel_err(a[2], rgx) <= 1.05 * rel_err(b[2], rgx) + 1e-7
    assert alloc.ckpt_rows(steps) == (steps - 1) // alloc.CKPT


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_recompute_every_vector_width_gives_identical_results(dtype, monkeypatch):
    p = PRESETS["paper"]
    x = make_input((21, 8 * 1031), p, dtype=dtype, device="cuda")
    gs = torch.randn_like(x)
    outs = {}
    for vec in (1, 2, 4, 8):
        monkeypatch.setattr(lif_cuda.TUNING, "vec", vec)
        outs[vec] = _fwd_bwd_saving(x, p, gs, "input")
    for vec in (2, 4, 8):
        for a, b in zip(outs[1], outs[vec]):
            assert torch.equal(a, b), f"vec={vec} differs from vec=1"
    assert torch.equal(outs[1][0], _fwd_bwd_saving(x, p, gs, "h")[0])


def test_recompute_unaligned_and_odd_sizes():
    p = PRESETS["spikingjelly"]
    base = make_input((11 * 4099 + 1,), p, device="cuda")
    x = base[1:].view(11, 4099)
    assert x.data_ptr() % 16 != 0
    s, _ = lif(x, save="input", **p.as_kwargs())
    rs, _ = lif_reference(x.double(), **p.as_kwargs())
    mask = tie_mask(x, None, p)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    assert torch.equal(s, lif(x, save="h", **p.as_kwargs())[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(7, 3, 4099), (17, 8, 32, 32), (1, 65536)])
@pytest.mark.parametrize("with_v0", [False, True])
def test_recompute_cpp_node_equals_the_python_path(dtype, shape, with_v0, monkeypatch):
    """save="input" through the C++ autograd node and through the Python Function: bit-identical."""
    from tfbench.ops.lif import alloc, fast
    from tfbench.ops.lif import op as lif_op

    monkeypatch.setattr(alloc, "POISON", False)
    assert fast.extension() is not None, fast.reason()
    p = PRESETS["paper"]
    x = make_input(shape, p, dtype=dtype, device="cuda")
    gs = torch.randn_like(x)
    gv = torch.randn(shape[1:], device="cuda")
    v0 = torch.rand(shape[1:], device="cuda", dtype=torch.float64) * 0.3 if with_v0 else None

    def run(use_cpp):
        monkeypatch.setattr(lif_op, "USE_CPP", use_cpp)
        return _fwd_bwd_saving(x, p, gs, "input", v0, gv)

    for a, b in zip(run(True), run(False)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b)
    # the module path (no v_T wanted; backward with the final membrane unused)
    if not with_v0:
        grads = []
        for use_cpp in (True, False):
            monkeypatch.setattr(lif_op, "USE_CPP", use_cpp)
            xr = x.detach().clone().requires_grad_(True)
            grads.append(torch.autograd.grad(LIF(**p.as_kwargs(), save="input")(xr), xr, gs)[0])
        assert torch.equal(grads[0], grads[1])


def test_recompute_cpp_node_keeps_the_input(monkeypatch):
    """The C++ node saves x itself (no copy) and the checkpoints, not h."""
    from tfbench.ops.lif import alloc, fast

    monkeypatch.setattr(alloc, "POISON", False)  # poisoned outputs route to the Python path
    assert fast.extension() is not None, fast.reason()
    p = PRESETS["paper"]
    x = make_input((17, 4096), p, device="cuda").requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        s, _ = lif(x, save="input", **p.as_kwargs())
    defined = [t for t in saved if t is not None and t.numel() > 0]
    assert any(t.data_ptr() == x.data_ptr() for t in defined)
    assert sorted(tuple(t.shape) for t in defined if t.data_ptr() != x.data_ptr()) == [(2, 4096)]


@pytest.mark.parametrize("cpp", [False, True])
def test_recompute_fresh_threads_launch_forward_and_backward(cpp, monkeypatch):
    import threading

    from tfbench.ops.lif import alloc
    from tfbench.ops.lif import op as lif_op

    monkeypatch.setattr(alloc, "POISON", not cpp)
    monkeypatch.setattr(lif_op, "USE_CPP", cpp)
    p = PRESETS["paper"]
    x = make_input((10, 4096), p, device="cuda").requires_grad_(True)
    gs = torch.randn_like(x)
    expected = torch.autograd.grad(lif(x, save="input", **p.as_kwargs())[0], x, gs)[0]
    results, errors = [], []

    def work():
        try:
            results.append(torch.autograd.grad(lif(x, save="input", **p.as_kwargs())[0], x, gs)[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not errors, errors
    assert len(results) == 1 and torch.equal(results[0], expected)


def test_recompute_cuda_graph_capture_and_replay():
    p = PRESETS["paper"]
    layer = LIF(**p.as_kwargs(), save="input")
    x = make_input((19, 4, 1024), p, device="cuda").requires_grad_(True)
    gs = torch.randn_like(x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            (layer(x) * gs).sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        s = layer(x)
        (s * gs).sum().backward()
    fresh = make_input((19, 4, 1024), p, device="cuda", seed=11)
    with torch.no_grad():
        x.copy_(fresh)
    x.grad.zero_()
    graph.replay()
    torch.cuda.synchronize()
    rs, _ = lif_reference(fresh.double(), **p.as_kwargs())
    mask = tie_mask(fresh.reshape(19, -1), None, p)
    assert torch.equal(masked(s, mask, True), masked(rs, mask, True))
    xr = fresh.detach().clone().requires_grad_(True)
    (lif_reference(xr, **p.as_kwargs())[0] * gs).sum().backward()
    assert rel_err(masked(x.grad, mask, True), masked(xr.grad, mask, True)) < 1e-5


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_recompute_torch_compile_inductor_fullgraph(mode):
    p = PRESETS["paper"]
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).cuda()
    layer = LIF(**p.as_kwargs(), save="input")

    def net(x):
        steps, batch = x.shape[:2]
        y = conv(x.flatten(0, 1)).unflatten(0, (steps, batch))
        return layer(y).mean(0).sum()

    compiled = torch.compile(net, fullgraph=True, mode=mode)
    x = torch.rand(11, 2, 3, 16, 16, device="cuda")
    for _ in range(3):
        out = compiled(x)
        conv.zero_grad()
        out.backward()
    grads = conv.weight.grad.clone()
    conv.zero_grad()
    eager = net(x)
    eager.backward()
    assert torch.allclose(out, eager, rtol=1e-4)
    assert rel_err(grads, conv.weight.grad) < 1e-4


def test_recompute_first_backward_of_a_process_through_the_cpp_node():
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from tfbench.ops.lif import LIF, fast\n"
        "assert fast.extension() is not None, fast.reason()\n"
        "x = torch.randn(16, 1 << 16, device='cuda').requires_grad_(True)\n"
        "g = torch.autograd.grad(LIF.from_preset('paper', save='input')(x), x, torch.ones_like(x))[0]\n"
        "torch.cuda.synchronize()\n"
        "assert torch.isfinite(g).all()\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.slow
def test_recompute_more_than_2_31_elements():
    """64-bit offsets with checkpoints: T * N > 2^31 and a checkpoint row past 2^31 bytes of x."""
    p = LIFParams(tau=2.0, v_threshold=0.5)
    steps, n = 9, (1 << 31) // 9 + 4096   # two segments: 8 steps, then 1 from a checkpoint
    assert steps * n > 2 ** 31
    x = torch.rand(steps, n, dtype=torch.bfloat16, device="cuda")
    x.requires_grad_(True)
    s, v = lif(x, save="input", **p.as_kwargs())
    gs = torch.ones_like(s)
    s.backward(gs)
    tail = slice(n - 4096, n)
    xs = x.detach()[:, tail].clone().requires_grad_(True)
    rs, rv = lif(xs, save="input", **p.as_kwargs())
    rs.backward(gs[:, tail])
    assert torch.equal(s[:, tail], rs) and torch.equal(v[tail], rv)
    assert torch.equal(x.grad[:, tail], xs.grad)
    assert not torch.isnan(x.grad[-1]).any() and not torch.isnan(x.grad[0]).any()
