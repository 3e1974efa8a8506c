"""tfbench.accelerate on SpikingJelly's own models: same outputs and gradients, refusals, reset, state_dict;
SpikingJelly's model zoo as harness architectures."""

from __future__ import annotations

import copy

import pytest
import torch

import tfbench
from tfbench import backends, models
from tfbench.bench.config import NEURONS

sj = pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402
from spikingjelly.activation_based.model import spiking_resnet  # noqa: E402


def _resnet(**node_kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    net = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.LIFNode, num_classes=10, **node_kwargs)
    functional.set_step_mode(net, "m")
    return net


def _input(T: int = 4, B: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(T, B, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _grads(net) -> list[torch.Tensor]:
    return [p.grad.clone() for p in net.parameters()]


def _close(got: torch.Tensor, ref: torch.Tensor, bound: float = 1e-5) -> None:
    """Normwise: ||got - ref|| / ||ref|| <= bound. The fused op rounds the membrane once per step (one
    fma) where SpikingJelly rounds each operation, and sums dL/dh in another order: a few ulp per step,
    which 17 layers of backward carry into every weight gradient (1e-6 relative measured); elementwise
    tolerances would fail on gradients that are nearly zero."""
    err = (got.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)
    assert err <= bound, (float(err), bound)


@pytest.mark.parametrize("node_kwargs", [
    {},                                                              # tau 2, sigmoid alpha 4, hard reset
    {"surrogate_function": surrogate.ATan(), "detach_reset": True},
    {"v_reset": None, "tau": 3.0, "decay_input": False, "surrogate_function": surrogate.Rect(alpha=1.0)},
])
def test_an_accelerated_model_computes_what_spikingjelly_computes(node_kwargs) -> None:
    """SpikingJelly's spiking_resnet18: the same logits, every parameter gradient to fp32 rounding, and
    the same final membrane in every node."""
    original = _resnet(**node_kwargs)
    fused = copy.deepcopy(original)
    report = tfbench.accelerate(fused)
    assert len(report.replaced) == 17 and not report.refused
    x = _input()
    out0, out1 = original(x), fused(x)
    torch.testing.assert_close(out1, out0, rtol=1e-5, atol=1e-6)
    out0.square().sum().backward()
    out1.square().sum().backward()
    for g1, g0 in zip(_grads(fused), _grads(original)):
        _close(g1, g0)
    for m0, m1 in zip(original.modules(), fused.modules()):
        if isinstance(m0, neuron.LIFNode):
            assert isinstance(m1, neuron.LIFNode) and type(m1).__name__ == "AcceleratedLIFNode"
            torch.testing.assert_close(m1.v, m0.v, rtol=1e-5, atol=1e-6)    # the final membrane is there


def test_reset_net_and_state_carried_between_calls() -> None:
    """Without a reset the next call continues from the last membrane (as SpikingJelly); reset_net
    puts every node back at rest."""
    original = _resnet()
    fused = copy.deepcopy(original)
    tfbench.accelerate(fused)
    x1, x2 = _input(seed=1), _input(seed=2)
    with torch.no_grad():
        original(x1), fused(x1)
        torch.testing.assert_close(fused(x2), original(x2), rtol=1e-5, atol=1e-6)   # v carried over
        functional.reset_net(fused)
        functional.reset_net(original)
        assert fused.sn1.v == 0.0 and original.sn1.v == 0.0
        torch.testing.assert_close(fused(x2), original(x2), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trips() -> None:
    original = _resnet()
    fused = copy.deepcopy(original)
    tfbench.accelerate(fused)
    assert list(fused.state_dict()) == list(original.state_dict())
    other = _resnet()
    tfbench.accelerate(other)
    other.load_state_dict(original.state_dict())
    original.load_state_dict(fused.state_dict())


def test_what_cannot_be_fused_is_refused_and_left_as_it_was() -> None:
    class MyLIF(neuron.LIFNode):
        pass

    net = torch.nn.Sequential(
        layer.Linear(8, 8, step_mode="m"),
        neuron.LIFNode(step_mode="s"),
        neuron.LIFNode(step_mode="m", store_v_seq=True),
        neuron.LIFNode(step_mode="m", surrogate_function=surrogate.PiecewiseQuadratic()),
        MyLIF(step_mode="m"),
        neuron.IzhikevichNode(step_mode="m"),
        neuron.IFNode(step_mode="m"),
    )
    kinds = [type(m) for m in net]
    report = tfbench.accelerate(net)
    reasons = {d.path: d.detail for d in report.refused}
    assert "single-step mode" in reasons["1"] and "store_v_seq=True" in reasons["2"]
    assert "surrogate PiecewiseQuadratic has no tfbench equivalent" in reasons["3"]
    assert "a subclass of LIFNode may change its maths" in reasons["4"]
    assert "no fused op" in reasons["5"]
    assert [d.path for d in report.replaced] == ["6"]
    assert [type(m) for m in list(net)[:6]] == kinds[:6]           # refused modules are untouched
    assert "1 of 6 SpikingJelly neurons run on tfbench's fused op" in str(report)
    again = tfbench.accelerate(net)
    assert "already accelerated" in next(d for d in again.decisions if d.path == "6").detail
    with pytest.raises(ValueError, match="no SpikingJelly neuron"):
        tfbench.accelerate(torch.nn.Linear(2, 2))


def test_a_node_switched_to_single_step_later_runs_spikingjellys_code() -> None:
    node = neuron.LIFNode(step_mode="m")
    tfbench.accelerate(torch.nn.Sequential(node))
    node.step_mode = "s"
    x = torch.rand(4, 8, generator=torch.Generator().manual_seed(0))
    ref = neuron.LIFNode(step_mode="s")
    torch.testing.assert_close(node(x), ref(x))


@pytest.mark.parametrize("arch", [a for a in models.ARCHS if a.startswith("sj:") and not a.endswith("-ann")])
def test_the_zoo_builds_every_model_with_the_accelerated_and_the_spikingjelly_neuron(arch: str) -> None:
    """The zoo model with tfbench's rows (SpikingJelly's nodes, accelerated) and SpikingJelly's rows
    give the same logits from the same seed; its ANN twin builds too."""
    p = NEURONS["LIF"]
    x = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outs = []
    for name in ("tfbench", "spikingjelly"):
        b = backends.get(name)
        torch.manual_seed(0)
        net = models.build(arch, lambda b=b: b.layer(p), num_classes=10, backend=b, params=p)
        with torch.no_grad():
            outs.append(net(x))
    assert outs[0].shape == (1, 10)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    twin = models.build(models.ann_twin(arch), None, num_classes=10)
    assert not any(isinstance(m, neuron.BaseNode) for m in twin.modules())


def test_zoo_archs_through_the_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from tfbench.cli.main import app

    help_text = CliRunner().invoke(app, ["run", "--help"]).output
    assert "sj:spiking_resnet18" in help_text and "sj:spiking_vgg11_bn" in help_text
    result = CliRunner().invoke(app, ["compare", "--arch", "sj:sew_resnet18", "--backends", "tfbench,spikingjelly",
                                      "--ann-floor", "--synthetic", "-T", "2", "--batch-size", "2", "--epochs", "1",
                                      "--max-steps", "1", "--device", "cpu", "--dataset", "CIFAR-10", "--out",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    import json

    recs = {r["arch"] + "/" + r["backend"]: r for r in map(json.loads, (tmp_path / "runs.jsonl").read_text().splitlines())}
    assert set(recs) == {"sj:sew_resnet18/tfbench", "sj:sew_resnet18/spikingjelly", "sj:sew_resnet18-ann/ann"}
    assert all(r["status"] == "ok" for r in recs.values())


def _pair(**node_kwargs):
    """A SpikingJelly node and an accelerated copy of it."""
    ref = neuron.LIFNode(step_mode="m", **node_kwargs)
    node = copy.deepcopy(ref)
    tfbench.accelerate(torch.nn.Sequential(node))
    return ref, node


def test_attributes_changed_after_accelerate_are_followed() -> None:
    """The op's arguments are worked out once per node; setting an attribute, or changing the
    surrogate's alpha in place, is seen by the next call (and an unsupported surrogate runs SpikingJelly's code)."""
    ref, node = _pair()
    x = torch.randn(6, 3, 5, generator=torch.Generator().manual_seed(0))
    for change in (lambda n: setattr(n, "v_threshold", 0.5), lambda n: setattr(n, "tau", 3.0),
                   lambda n: setattr(n.surrogate_function, "alpha", 2.0), lambda n: setattr(n, "v_reset", None),
                   lambda n: setattr(n, "surrogate_function", surrogate.PiecewiseQuadratic())):
        change(ref)
        change(node)
        xr, xn = x.clone().requires_grad_(), x.clone().requires_grad_()
        functional.reset_net(ref)
        functional.reset_net(node)
        out_r, out_n = ref(xr), node(xn)
        torch.testing.assert_close(out_n, out_r)
        (out_r * torch.arange(5.0)).sum().backward()
        (out_n * torch.arange(5.0)).sum().backward()
        torch.testing.assert_close(xn.grad, xr.grad, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(node.v, ref.v)


def test_a_membrane_of_another_shape_restarts_at_rest_as_in_spikingjelly() -> None:
    """Without a reset between batches of different sizes, SpikingJelly starts the new batch from rest."""
    ref, node = _pair()
    g = torch.Generator().manual_seed(0)
    for batch in (4, 3):
        x = torch.randn(5, batch, 7, generator=g)
        torch.testing.assert_close(node(x), ref(x))
        torch.testing.assert_close(node.v, ref.v)


def test_reset_puts_back_what_spikingjellys_reset_does() -> None:
    """A float reset value: the node's v is that float again, v_seq None; a tensor reset value of the
    user's own goes through SpikingJelly's reset."""
    ref, node = _pair()
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    ref(x), node(x)
    ref.reset(), node.reset()
    assert node.v == ref.v == 0.0 and type(node.v) is float and node.v_seq is None and ref.v_seq is None
    start = torch.full((2, 3), 0.25)
    for n in (ref, node):
        n.set_reset_value("v", start.clone())
        n.reset()
        n(x)
        n.reset()
    torch.testing.assert_close(node.v, ref.v)
    torch.testing.assert_close(node(x), ref(x))


def test_an_accelerated_plif_node_computes_and_learns_what_spikingjellys_does() -> None:
    """ParametricLIFNode: the same spikes, membrane and gradients (x and w), the state carried to the
    next call, and its w the same Parameter (an optimizer made before trains it)."""
    ref = neuron.ParametricLIFNode(init_tau=1.5, step_mode="m")
    node = copy.deepcopy(ref)
    w = node.w
    report = tfbench.accelerate(torch.nn.Sequential(node))
    assert report.replaced and node.w is w
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(6, 2, 3, 4, generator=g), torch.randn(6, 2, 3, 4, generator=g)
    outs = []
    for n in (ref, node):
        n(x1 * 2)
        outs.append(n(x2 * 2))                                     # starts from the first call's membrane
        (outs[-1] * torch.linspace(-1, 1, 4)).sum().backward()
    torch.testing.assert_close(outs[1], outs[0])
    torch.testing.assert_close(node.v, ref.v, rtol=1e-5, atol=1e-6)
    _close(node.w.grad, ref.w.grad)


@pytest.mark.slow
def test_the_handswap_script_writes_its_table_on_a_cpu(tmp_path) -> None:
    """scripts/zoo_handswap.py --smoke (tiny shapes, CPU): every row timed, the check passed, a table written."""
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "zoo_handswap.py"
    out = tmp_path / "handswap.md"
    argv = sys.argv
    sys.argv = [str(script), str(out), "--smoke", "--rows", "sj,hand,accelerate,ann", "--precision", "fp32"]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    text = out.read_text()
    assert "the same logits as SpikingJelly's LIFNode" in text
    for label in ("SpikingJelly `LIFNode` (its own choice)", "swapped by hand", "`tfbench.accelerate`", "ANN twin"):
        timed, host = [line for line in text.splitlines() if line.startswith("| ") and label in line]
        assert timed.count("|") == 3 and "n/a" not in timed and " = " in host, (timed, host)
