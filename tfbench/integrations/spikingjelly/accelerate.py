"""``tfbench.accelerate(model)``: SpikingJelly's multi-step neurons in a model run on tfbench's fused op.

The model a user already has keeps its structure, its modules and its parameters: every SpikingJelly
``LIFNode``, ``IFNode`` and ``ParametricLIFNode`` that tfbench can express exactly gets, in place, a
subclass of its own class whose multi-step forward runs tfbench's fused LIF (PLIF for a
``ParametricLIFNode``: the op of ``tfbench.lif`` / ``tfbench.plif``) on the node's own attributes (``module.__class__`` is swapped; nothing is copied). So
``isinstance`` checks, hooks, ``functional.reset_net``, ``state_dict`` (a PLIF's ``w`` stays the same
Parameter: an optimizer made before still trains it) and the node's membrane ``v`` all behave as
before: a forward starts from ``v`` (the resting value after ``reset()``; a ``v`` of another shape
than a step of the input, from a batch of another size, restarts at rest) and leaves the final
membrane there, as SpikingJelly does.

What is accelerated: ``step_mode='m'`` nodes of exactly those three classes, with ``store_v_seq=False``
and a ``Sigmoid``, ``ATan`` or ``Rect`` surrogate (SpikingJelly's ``Rect`` is tfbench's ``rect``:
alpha inside ``|u| < 1/(2 alpha)``). Everything else is refused with the reason and left as it was:
single-step nodes, ``store_v_seq=True`` (every step's membrane is kept, which the fused op does not
produce), other surrogates, subclasses and other neurons (their maths may differ). The returned
:class:`AccelerationReport` lists both and prints as a table. A node switched to single-step mode
later runs SpikingJelly's own code again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ...ops.functional import check_w, fused
from ...ops.neurons import LIFParams, NeuronParams, PLIFParams

_ACCELERATED: dict[type, type] = {}   # SpikingJelly class -> its accelerated subclass


@dataclass(frozen=True)
class Decision:
    """One SpikingJelly neuron of the model: where it is, what it is, and what accelerate() did."""

    path: str          # its name in ``model.named_modules()`` ("" for the model itself)
    kind: str          # its class name
    replaced: bool
    detail: str        # the tfbench neuron it became, or why it was left as it was


@dataclass
class AccelerationReport:
    """What ``accelerate`` replaced and what it refused (with the reason); prints as a table."""

    decisions: list[Decision] = field(default_factory=list)

    @property
    def replaced(self) -> list[Decision]:
        return [d for d in self.decisions if d.replaced]

    @property
    def refused(self) -> list[Decision]:
        return [d for d in self.decisions if not d.replaced]

    def __str__(self) -> str:
        rows = [("module", "neuron", "accelerated", "tfbench neuron / reason")]
        rows += [(d.path or "(model)", d.kind, "yes" if d.replaced else "no", d.detail) for d in self.decisions]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        summary = f"{len(self.replaced)} of {len(self.decisions)} SpikingJelly neurons run on tfbench's fused op"
        return "\n".join([summary, *lines])

    def __rich__(self):
        from rich.table import Table

        table = Table(title=f"tfbench.accelerate: {len(self.replaced)} of {len(self.decisions)} neurons fused")
        for column in ("module", "neuron", "accelerated", "tfbench neuron / reason"):
            table.add_column(column, overflow="fold")
        for d in self.decisions:
            table.add_row(d.path or "(model)", d.kind, "yes" if d.replaced else "no", d.detail)
        return table


def _sj():
    from spikingjelly.activation_based import neuron, surrogate

    return neuron, surrogate


def _surrogate(fn) -> tuple[str, float] | str:
    """``(tfbench surrogate name, alpha)`` for a SpikingJelly surrogate function, or why not."""
    from ...backends.spikingjelly import SURROGATE_CLASSES

    _, surrogate = _sj()
    names = {getattr(surrogate, cls): name for name, cls in SURROGATE_CLASSES.items()}
    name = names.get(type(fn))
    if name is None:
        supported = ", ".join(c.__name__ for c in names)
        return f"surrogate {type(fn).__name__} has no tfbench equivalent (supported: {supported})"
    if not getattr(fn, "spiking", True):
        return f"surrogate {type(fn).__name__}(spiking=False) is not a spike; tfbench's neurons emit spikes"
    return name, float(fn.alpha)


def _refusal(module) -> str | None:
    """Why ``module`` (a SpikingJelly node of a supported class) cannot be fused, or None."""
    if module.step_mode != "m":
        return (f"single-step mode (step_mode={module.step_mode!r}): the fused op runs all T steps of a call; "
                "use step_mode='m' (functional.set_step_mode(net, 'm'))")
    if module.store_v_seq:
        return "store_v_seq=True keeps every step's membrane, which the fused op does not produce"
    s = _surrogate(module.surrogate_function)
    if isinstance(s, str):
        return s
    if not (isinstance(module.v_threshold, float) and math.isfinite(module.v_threshold)):
        return f"v_threshold {module.v_threshold!r} is not a finite float"
    if module.v_reset is not None and not (isinstance(module.v_reset, float) and math.isfinite(module.v_reset)):
        return f"v_reset {module.v_reset!r} is not a finite float or None"
    return None


def params_of(module) -> LIFParams:
    """The tfbench neuron a SpikingJelly LIFNode/IFNode is (ParametricLIFNode: its current tau)."""
    neuron, _ = _sj()
    name, alpha = _surrogate(module.surrogate_function)
    if isinstance(module, neuron.IFNode):
        tau, decay_input = math.inf, False
    elif isinstance(module, neuron.ParametricLIFNode):
        tau, decay_input = float(1.0 / module.w.detach().sigmoid()), bool(module.decay_input)
    else:
        tau, decay_input = float(module.tau), bool(module.decay_input)
    return LIFParams(tau=tau, decay_input=decay_input, v_threshold=float(module.v_threshold),
                     v_reset=None if module.v_reset is None else float(module.v_reset),
                     detach_reset=bool(module.detach_reset), surrogate=name, alpha=alpha).validate()


@dataclass(frozen=True)
class _Call:
    """What an accelerated node's forward hands the op, worked out once: the validated neuron, what
    backward keeps and the resting membrane."""

    params: NeuronParams
    save: str
    rest: float


class _Fused:
    """The multi-step forward of an accelerated node (mixed in before the SpikingJelly class).

    The op's arguments are worked out once (``_Call``) and kept until an attribute of the node is set
    (``__setattr__`` drops them) or its surrogate's ``alpha``/``spiking`` change in place; so a
    forward costs little more than ``tfbench.lif`` itself. A node whose attributes change to something
    the op cannot express runs SpikingJelly's own code again. The membrane is read from and written
    to SpikingJelly's memory (``_memories['v']``, what ``node.v`` is) directly, and ``reset`` puts a
    float resting value back without SpikingJelly's generic loop (the reset value of these nodes
    unless the user registered another): the same state, less host time."""

    _tfbench_save = "h"

    def __setattr__(self, name: str, value) -> None:
        self.__dict__.pop("_tfbench_cached", None)
        super().__setattr__(name, value)

    def _tfbench_call(self) -> _Call | None:
        """The op's arguments, or None where SpikingJelly's own code must run (``_refusal``)."""
        cached = self.__dict__.get("_tfbench_cached")
        if cached is not None:
            sg, alpha, spiking, call = cached
            if getattr(sg, "alpha", None) == alpha and getattr(sg, "spiking", True) == spiking:
                return call
        call = None
        if _refusal(self) is None:
            call = _Call(self._tfbench_params(), self._tfbench_save, 0.0 if self.v_reset is None else self.v_reset)
        sg = self.surrogate_function
        self.__dict__["_tfbench_cached"] = (sg, getattr(sg, "alpha", None), getattr(sg, "spiking", True), call)
        return call

    def _tfbench_params(self) -> NeuronParams:
        return params_of(self)

    def multi_step_forward(self, x_seq: Tensor, *args, **kwargs):
        call = None if (args or kwargs) else self._tfbench_call()
        if call is None:
            return super().multi_step_forward(x_seq, *args, **kwargs)   # SpikingJelly's own path
        memories = self._memories
        v = memories["v"]
        shape = x_seq.shape[1:]
        if isinstance(v, Tensor) and v.shape == shape:
            v0 = v
        elif isinstance(v, Tensor) or v == call.rest:
            v0 = None     # at rest: the op's own resting membrane (SpikingJelly restarts a v of another shape there)
        else:
            v0 = torch.full(shape, float(v), dtype=torch.float32, device=x_seq.device)
        spikes, v_last = self._tfbench_forward(x_seq, v0, call)
        memories["v"] = v_last if v_last.dtype == x_seq.dtype else v_last.to(x_seq.dtype)
        return spikes

    def _tfbench_forward(self, x_seq: Tensor, v0: Tensor | None, call: _Call) -> tuple[Tensor, Tensor]:
        return fused(x_seq, v0, call.params, save=call.save)

    def reset(self) -> None:
        rv = self._memories_rv
        if len(rv) != 1 or type(rv.get("v")) is not float:
            return super().reset()          # a reset value of the user's own: SpikingJelly's loop
        self._memories["v"] = rv["v"]       # what SpikingJelly's reset leaves for a float reset value
        self.__dict__["v_seq"] = None       # as BaseNode.reset (a plain attribute: no setattr, no cache drop)


class _FusedPLIF(_Fused):
    """A ParametricLIFNode: its learnable ``w`` (1/tau = sigmoid(w)) goes to the op as it is (reading
    tau from w would synchronise with the device every call)."""

    def _tfbench_params(self) -> NeuronParams:
        name, alpha = _surrogate(self.surrogate_function)
        return PLIFParams(2.0, bool(self.decay_input), float(self.v_threshold),
                          None if self.v_reset is None else float(self.v_reset), bool(self.detach_reset),
                          name, alpha).validate()     # init_tau unused: w is the node's own

    def _tfbench_forward(self, x_seq: Tensor, v0: Tensor | None, call: _Call) -> tuple[Tensor, Tensor]:
        w = self._parameters["w"]            # self.w, without SpikingJelly's and torch's __getattr__
        check_w(x_seq, w)
        return fused(x_seq, v0, call.params, (w,), save=call.save)


def _plif_available() -> bool:
    import tfbench

    return hasattr(tfbench, "plif")


def _accelerated_class(cls: type) -> type:
    if cls not in _ACCELERATED:
        neuron, _ = _sj()
        mixin = _FusedPLIF if issubclass(cls, neuron.ParametricLIFNode) else _Fused
        _ACCELERATED[cls] = type(f"Accelerated{cls.__name__}", (mixin, cls),
                                 {"__doc__": f"SpikingJelly's {cls.__name__}, its multi-step forward fused by tfbench."})
    return _ACCELERATED[cls]


def accelerate(model: nn.Module, *, save: str = "h") -> AccelerationReport:
    """Fuse, in place, every SpikingJelly neuron of ``model`` that tfbench can express exactly.

    Args:
        model: any ``nn.Module`` holding SpikingJelly (2.0) neurons; changed in place.
        save: what the fused op keeps for backward (``"h"`` or ``"input"``, as ``tfbench.lif``).

    Returns:
        An :class:`AccelerationReport`: every SpikingJelly neuron found, replaced or refused with the reason.
    """
    neuron, _ = _sj()
    from ...ops.neurons import check_save

    check_save(save)
    supported = (neuron.LIFNode, neuron.IFNode, neuron.ParametricLIFNode)
    report = AccelerationReport()
    for path, module in model.named_modules():
        if not isinstance(module, neuron.BaseNode) and not isinstance(module, _Fused):
            continue
        kind = type(module).__name__
        if isinstance(module, _Fused):
            base = type(module).__mro__[2].__name__
            report.decisions.append(Decision(path, base, True, f"already accelerated: {params_text(module)}"))
            continue
        if type(module) not in supported:
            why = (f"a subclass of {next(c.__name__ for c in supported if isinstance(module, c))} may change its "
                   "maths" if isinstance(module, supported) else "a neuron tfbench has no fused op for")
            report.decisions.append(Decision(path, kind, False, why + "; left as it is"))
            continue
        reason = _refusal(module)
        if reason is None and isinstance(module, neuron.ParametricLIFNode) and not _plif_available():
            reason = "this tfbench has no PLIF op"
        if reason is not None:
            report.decisions.append(Decision(path, kind, False, reason))
            continue
        module.__class__ = _accelerated_class(type(module))
        module._tfbench_save = save
        report.decisions.append(Decision(path, kind, True, params_text(module)))
    if not report.decisions:
        raise ValueError("the model holds no SpikingJelly neuron (LIFNode, IFNode, ParametricLIFNode, ...) to fuse")
    return report


def params_text(module) -> str:
    """The tfbench neuron a node runs as, as text: ``lif(tau=2.0, ...)`` or ``plif(w learnable, ...)``."""
    neuron, _ = _sj()
    kwargs = params_of(module).as_kwargs()
    if isinstance(module, neuron.ParametricLIFNode):
        del kwargs["tau"]
        return "plif(w learnable, " + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
    return "lif(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


__all__ = ["AccelerationReport", "Decision", "accelerate", "params_of"]
