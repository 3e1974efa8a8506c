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


def test_fresh_threads_launch_forward_and_backward():
    """A thread that never touched CUDA (no current context) launches, forward and backward."""
    import threading

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
