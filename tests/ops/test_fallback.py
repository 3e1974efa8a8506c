"""Without a C++ compiler (TFBENCH_NO_CPP=1 stands in for one): the same ops, registered over the
reference (tfbench/ops/fallback.py), give the reference's results, through autograd and torch.compile."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
import torch
from tfbench.ops import library, plif, LIF, PLIF, PRESETS, PLIF_PRESETS
from tfbench.ops.functional import lif
from tfbench.ops.reference import neuron_reference
from tests.ops.cases import (make_input, make_v0, make_w, loss_weights, run_with_grads, reference64, tie_mask,
                             masked, error_bounds, assert_within)

assert not library.native() and "TFBENCH_NO_CPP" in library.IMPLEMENTATION, library.IMPLEMENTATION
p, q = PRESETS["paper"], PLIF_PRESETS["paper"].validate()
x = make_input((11, 3, 4, 5), p, seed=1)
v0 = make_v0((3, 4, 5), p, seed=1)
for save in ("h", "input"):
    for neuron, fn, learned in ((p, lambda a, b, c, r: lif(a, b, **r.as_kwargs(), save=save), ()),
                                (q, lambda a, b, c, r: plif(a, c[0], b, v_threshold=r.v_threshold,
                                                            decay_input=r.decay_input, save=save), (make_w(q, 4, 1),))):
        mask = tie_mask(x, v0, neuron, learned)
        ws, wv = loss_weights(x, 1, mask)
        got = run_with_grads(fn, x, v0, neuron, ws, wv, learned)
        want = reference64(x, v0, neuron, ws, wv, learned)
        bound = error_bounds(x, v0, neuron, ws, wv, learned)  # the reference in fp32 rounds like the op
        assert torch.equal(masked(got[0], mask, True), masked(want[0], mask, True))
        assert_within(masked(got[1], mask, False), masked(want[1], mask, False), bound["v_T"][mask], "v_T")
        assert_within(masked(got[2], mask, True), masked(want[2], mask, True), bound["gx"][:, mask], "gx")
        assert_within(masked(got[3], mask, False), masked(want[3], mask, False), bound["gv0"][mask], "gv0")
        for a, b in zip(got[4], want[4]):
            assert_within(a, b, bound["gw"], "gw")
s, kept, v = library.forward(x, v0, [], "lif", p.kernel_constants(), p.kernel_switches(), True, True)
assert kept.shape == (library.ckpt_rows(11), 3, 4, 5)
layer = PLIF.from_preset("paper", channels=4)
step = lambda t: layer(t * 2.0).mean(0)
xr = x.clone().requires_grad_(True)
out = torch.compile(step, fullgraph=True, backend="aot_eager")(xr)
out.sum().backward()
g = xr.grad.clone(); xr.grad = None
ref = step(xr); ref.sum().backward()
assert torch.equal(out, ref) and torch.allclose(g, xr.grad)
print("ok")
"""


def test_fallback_gives_the_reference_results():
    env = {**os.environ, "TFBENCH_NO_CPP": "1"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env,
                         cwd=root)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
