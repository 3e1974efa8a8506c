"""GPU-only behaviour of the fused ops: launch shapes, streams, threads, CUDA graphs, torch.compile,
64-bit indexing. The device-generic tests (test_lif.py, test_lif_recompute.py, test_plif.py) run on
the GPU too."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading

import pytest
import torch

from tfbench.ops import LIF, PLIF, PLIF_PRESETS, PRESETS, LIFParams, lif_reference, library, plif
from tfbench.ops.functional import lif

from .cases import (assert_within, error_bounds, loss_weights, make_input, make_v0, make_w, masked, reference64,
                    rel_err, run_with_grads, tie_mask)

pytestmark = pytest.mark.cuda


@contextlib.contextmanager
def option(key: str, value: int):
    before = library.set_option(key, value)
    try:
        yield
    finally:
        library.set_option(key, before)


def _fwd_bwd(x, p, gs, save="h", v0=None, gv=None, w=None):
    x = x.detach().clone().requires_grad_(True)
    v0 = None if v0 is None else v0.detach().clone().requires_grad_(True)
    inputs = [x] + ([v0] if v0 is not None else [])
    if w is None:
        s, v = lif(x, v0, save=save, **p.as_kwargs())
    else:
        w = w.detach().clone().requires_grad_(True)
        inputs.append(w)
        kw = {k: val for k, val in p.as_kwargs().items() if k != "init_tau"}
        s, v = plif(x, w, v0, save=save, **kw)
    loss = (s * gs).sum() + ((v * gv).sum() if gv is not None else 0)
    return (s, v, *torch.autograd.grad(loss, inputs))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("unroll", [1, 4, 8])
@pytest.mark.parametrize("save", ["h", "input"])
def test_every_vector_width_gives_identical_results(dtype, unroll, save):
    p = PRESETS["paper"]
    x = make_input((13, 8 * 1031), p, dtype=dtype, device="cuda")
    gs = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(dtype).cuda()
    outs = {}
    with option("unroll", unroll):
        for vec in (1, 2, 4, 8):
            with option("vec", vec):
                outs[vec] = _fwd_bwd(x, p, gs, save)
    for vec in (2, 4, 8):
        for a, b in zip(outs[1], outs[vec]):
            assert torch.equal(a, b), f"vec={vec} differs from vec=1"


@pytest.mark.parametrize("shape", [(9, 64, 3), (9, 16, 6, 1, 2), (9, 4, 8, 4, 4), (9, 2, 4, 16, 16), (9, 1, 1, 64, 64)])
@pytest.mark.parametrize("vec", [1, 4, 8])
def test_plif_every_vector_width_and_channel_layout(shape, vec):
    """PLIF's dL/dw partial sums cross no channel boundary at any width: one value per thread's
    neurons (inner < vec), lanes of a warp, or whole blocks; one w per channel and one per layer."""
    p = PLIF_PRESETS["paper"].validate()
    x = make_input(shape, p, device="cuda", seed=vec)
    for channels in (shape[2], None):
        w = make_w(p, channels, vec, "cuda")
        mask = tie_mask(x, None, p, (w,))
        ws, wv = loss_weights(x, vec, mask)
        with option("vec", vec):
            got = run_with_grads(lambda a, b, c, q: plif(a, c[0], b, v_threshold=q.v_threshold,
                                                         decay_input=q.decay_input), x, None, p, ws, wv, (w,))
        want = reference64(x, None, p, ws, wv, (w,))
        bound = error_bounds(x, None, p, ws, wv, (w,))
        assert torch.equal(masked(got[0], mask, True), masked(want[0], mask, True))
        assert_within(got[4][0], want[4][0], bound["gw"], "dL/dw")


def test_unaligned_and_odd_sizes_fall_back_to_narrow_access():
    p = PRESETS["spikingjelly"]
    base = make_input((11 * 4099 + 1,), p, device="cuda")
    x = base[1:].view(11, 4099)  # 4 bytes past an aligned address, N odd
    assert x.data_ptr() % 16 != 0
    for save in ("h", "input"):
        s, v = lif(x, save=save, **p.as_kwargs())
        rs, rv = lif_reference(x.double(), **p.as_kwargs())
        mask = tie_mask(x, None, p)
        assert torch.equal(masked(s, mask, True), masked(rs, mask, True))


def test_runs_on_the_current_stream():
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


@pytest.mark.parametrize("save", ["h", "input"])
def test_fresh_threads_launch_forward_and_backward(save):
    """A thread that never touched CUDA (no current context) launches, forward and backward."""
    p = PRESETS["paper"]
    x = make_input((10, 4096), p, device="cuda").requires_grad_(True)
    gs = torch.ones_like(x)
    expected = torch.autograd.grad(lif(x, save=save, **p.as_kwargs())[0], x, gs)[0]
    results, errors = [], []

    def work():
        try:
            results.append(torch.autograd.grad(lif(x, save=save, **p.as_kwargs())[0], x, gs)[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for _ in range(2):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert not errors, errors
    assert all(torch.equal(r, expected) for r in results) and len(results) == 2


@pytest.mark.parametrize("layer", ["lif", "lif-input", "plif", "plif-channels"])
def test_cuda_graph_capture_and_replay(layer):
    p = PRESETS["paper"]
    make = {"lif": lambda: LIF(**p.as_kwargs()), "lif-input": lambda: LIF(**p.as_kwargs(), save="input"),
            "plif": lambda: PLIF.from_preset("paper"), "plif-channels": lambda: PLIF.from_preset("paper", channels=4)}
    module = make[layer]().cuda()
    x = make_input((19, 2, 4, 32), p, device="cuda").requires_grad_(True)
    gs = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture (kernels compiled and loaded)
        for _ in range(2):
            (module(x) * gs).sum().backward()
    torch.cuda.current_stream().wait_stream(side)
    x.grad = None
    for param in module.parameters():
        param.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        s = module(x)
        (s * gs).sum().backward()
    fresh = make_input((19, 2, 4, 32), p, device="cuda", seed=11)
    with torch.no_grad():
        x.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    xr = fresh.detach().clone().requires_grad_(True)
    expected = module(xr)
    (expected * gs).sum().backward()
    assert torch.equal(s, expected)
    assert torch.equal(x.grad, xr.grad)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
@pytest.mark.parametrize("layer", ["lif", "lif-input", "plif"])
def test_torch_compile_inductor_fullgraph(mode, layer):
    p = PRESETS["paper"]
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).cuda()
    neuron = {"lif": lambda: LIF(**p.as_kwargs()), "lif-input": lambda: LIF(**p.as_kwargs(), save="input"),
              "plif": lambda: PLIF.from_preset("paper", channels=8)}[layer]().cuda()

    def net(x):  # [T, B, C, H, W]
        steps, batch = x.shape[:2]
        y = conv(x.flatten(0, 1)).unflatten(0, (steps, batch))
        return neuron(y).mean(0).sum()

    compiled = torch.compile(net, fullgraph=True, mode=mode)
    x = torch.rand(11, 2, 3, 16, 16, generator=torch.Generator().manual_seed(3)).cuda()
    for _ in range(3):
        out = compiled(x)
        conv.zero_grad()
        neuron.zero_grad()
        out.backward()
    grads = [conv.weight.grad.clone()] + [q.grad.clone() for q in neuron.parameters()]
    conv.zero_grad()
    neuron.zero_grad()
    eager = net(x)
    eager.backward()
    assert torch.allclose(out, eager, rtol=1e-4)
    for got, want in zip(grads, [conv.weight.grad] + [q.grad for q in neuron.parameters()]):
        assert rel_err(got, want) < 1e-4


def test_v0_or_w_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="v0 must be on x's device"):
        lif(torch.rand(3, 4, device="cuda"), torch.rand(4))
    with pytest.raises(ValueError, match="w must be on x's device"):
        plif(torch.rand(3, 4, device="cuda"), torch.zeros(()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("steps", [1, 7, 8, 9, 16, 33])
def test_recompute_equals_keeping_h(dtype, steps):
    """Spikes and v_T bit for bit (the kernels recompute the forward's h exactly); fp32 gradients to
    1e-6; 16-bit gradients no further from float64 than save="h"'s."""
    p = PRESETS["paper"]
    x = make_input((steps, 8 * 1031), p, dtype=dtype, device="cuda", seed=steps)
    g = torch.Generator().manual_seed(steps)
    gs = torch.randn(x.shape, generator=g).to(dtype).cuda()
    gv = torch.randn(x.shape[1:], generator=g).cuda()
    v0 = make_v0(x.shape[1:], p, device="cuda", seed=steps)
    a = _fwd_bwd(x, p, gs, "input", v0, gv)
    b = _fwd_bwd(x, p, gs, "h", v0, gv)
    assert torch.equal(a[0], b[0]), "spikes differ"
    assert torch.equal(a[1], b[1]), "v_T differs"
    if dtype == torch.float32:  # the same operations; NVRTC may contract them differently in the two kernels
        assert rel_err(a[2], b[2]) < 1e-6 and rel_err(a[3], b[3]) < 1e-6
    else:
        xr = x.detach().double().cpu().requires_grad_(True)
        vr = v0.detach().double().cpu().requires_grad_(True)
        rs, rv = lif_reference(xr, vr, **p.as_kwargs())
        (rgx,) = torch.autograd.grad((rs * gs.double().cpu()).sum() + (rv * gv.double().cpu()).sum(), [xr])
        assert rel_err(a[2], rgx) <= 1.05 * rel_err(b[2], rgx) + 1e-7


def test_first_backward_of_a_process_in_the_autograd_thread():
    """A fresh process whose first CUDA work in the autograd thread is the op's backward (the engine's
    thread has no current context then): it must launch, not fail or crash."""
    code = (
        "import torch\n"
        "from tfbench.ops import LIF, PLIF, library\n"
        "assert library.native(), library.IMPLEMENTATION\n"
        "x = torch.randn(16, 1 << 16, device='cuda').requires_grad_(True)\n"
        "g = torch.autograd.grad(LIF.from_preset('paper', save='input')(x), x, torch.ones_like(x))[0]\n"
        "p = PLIF().cuda()\n"
        "gw = torch.autograd.grad(p(x).sum(), p.w)[0]\n"
        "torch.cuda.synchronize()\n"
        "assert torch.isfinite(g).all() and torch.isfinite(gw)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("save", ["h", "input"])
def test_more_than_2_31_elements(save):
    """64-bit offsets: T * N > 2^31 (and a checkpoint row past 2^31 bytes of x); the last neurons and
    the last step are right, and PLIF's dL/dw reduction over them too."""
    p = LIFParams(tau=2.0, v_threshold=0.5)
    steps, n = 9, (1 << 31) // 9 + 4096   # two segments with save="input": 8 steps, then 1 from a checkpoint
    assert steps * n > 2 ** 31
    x = torch.rand(steps, n, dtype=torch.bfloat16, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    x.requires_grad_(True)
    s, v = lif(x, save=save, **p.as_kwargs())
    gs = torch.ones_like(s)
    s.backward(gs)
    tail = slice(n - 4096, n)
    xs = x.detach()[:, tail].clone().requires_grad_(True)
    rs, rv = lif(xs, save=save, **p.as_kwargs())
    rs.backward(gs[:, tail])
    assert torch.equal(s[:, tail], rs) and torch.equal(v[tail], rv)
    assert torch.equal(x.grad[:, tail], xs.grad)
    assert not torch.isnan(x.grad[-1]).any() and not torch.isnan(x.grad[0]).any()
    del s, v, gs, x
    torch.cuda.empty_cache()
    w = torch.zeros((), device="cuda", requires_grad=True)
    xb = torch.rand(steps, n, dtype=torch.bfloat16, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    (gw,) = torch.autograd.grad(plif(xb, w, v_threshold=0.5, save=save)[1].sum(), w)
    assert torch.isfinite(gw)
