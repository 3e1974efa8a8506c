"""The public LIF op: ``lif()`` and the ``torch.ops.tfbench.lif_*`` PyTorch ops.

What backward keeps (``save``): ``"h"``, the pre-reset membrane ``[T, *]`` in the storage dtype
(ops ``lif_forward``/``lif_backward``), or ``"input"``, x itself plus a float32 membrane checkpoint
every ``alloc.CKPT`` steps, from which backward recomputes h bit for bit (ops
``lif_forward_ckpt``/``lif_backward_recompute``): at most 20 + 8/CKPT bytes per element cross
memory in fp32 instead of 24 (``bytes_per_element``). Both give the same spikes and v_T.

The op schema is declared once with ``torch.library.custom_op``; the CPU and CUDA implementations
are the host functions in cpu.py and cuda.py, the fake (meta) implementation gives shapes for
``torch.compile``, and autograd is registered on the forward op, so ``lif()`` works in eager mode,
under ``torch.compile(fullgraph=True)`` and inside CUDA graphs.

In eager mode on a GPU ``lif()`` goes through the C++ autograd node of fast.py (no Python in
forward or backward: ~0.1 ms per small layer instead of ~0.3); elsewhere, or where that node cannot
be built, through a ``torch.autograd.Function`` over the same host functions, which skips the
dispatcher's Python (kernels/NOTES.md has the measurements). ``USE_CPP = False`` turns the C++ node
off; ``EAGER_VIA_DISPATCHER = True`` routes eager calls through the registered op.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

from . import alloc, fast
from . import cuda as lif_cuda
from .cpu import lif_backward_cpu, lif_backward_recompute_cpu, lif_forward_ckpt_cpu, lif_forward_cpu
from .cuda import lif_backward_cuda, lif_backward_recompute_cuda, lif_forward_ckpt_cuda, lif_forward_cuda
from .params import LIFParams

EAGER_VIA_DISPATCHER = False
USE_CPP = True  # eager GPU calls through the C++ autograd node (fast.py) when it can be built

_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
SAVES = ("h", "input")  # what the op keeps for backward: the membrane h, or the input x (recompute h)


def check_save(save: str) -> str:
    """``save`` if it is one of SAVES; ValueError naming the valid choices otherwise."""
    if save not in SAVES:
        raise ValueError(f"save must be one of {', '.join(repr(v) for v in SAVES)}, got {save!r}")
    return save


def bytes_per_element(dtype: torch.dtype, steps: int, direction: str = "both", save: str = "h") -> float:
    """Bytes each element of ``[T, N]`` must cross device memory, per LIF layer (LIF_SPEC "Floors").

    ``save="h"``: forward reads x, writes s and h; backward reads gs and h, writes gx (6 x the
    storage size in both directions: 24 B fp32, 12 B bf16/fp16). ``save="input"``: forward reads x,
    writes s; backward reads gs and x, writes gx (5 x the size), plus each float32 (float64)
    checkpoint written forward and read backward: ``ckpt_rows(T) / T`` of them per element (fp32:
    20 + 8/CKPT - 8/T for T a multiple of CKPT, 20.5 at T=16, 20 for T <= CKPT). v0 and v_T ([N])
    are not counted.
    """
    size = torch.empty((), dtype=dtype).element_size()
    if save == "h":
        return float({"forward": 3, "backward": 3, "both": 6}[direction] * size)
    check_save(save)
    acc = 8 if dtype == torch.float64 else 4
    ckpt = alloc.ckpt_rows(steps) * acc / steps
    return {"forward": 2 * size + ckpt, "backward": 3 * size + ckpt, "both": 5 * size + 2 * ckpt}[direction]


def _state(v: Tensor | None, x: Tensor) -> Tensor | None:
    """A membrane-sized tensor (v0, dL/dv_T) in the op's accumulation dtype (float64 for float64 x,
    else float32), contiguous; None stays None."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if v is not None and (v.dtype != acc or not v.is_contiguous()):
        v = v.to(acc).contiguous()
    return v


def _grad_like(gs: Tensor | None, ref: Tensor) -> Tensor:
    """dL/ds in ``ref``'s dtype, contiguous; zeros when the spikes were not used (only the final
    membrane carries a gradient)."""
    if gs is None:
        return torch.zeros_like(ref)
    if gs.dtype != ref.dtype or not gs.is_contiguous():
        gs = gs.to(ref.dtype).contiguous()
    return gs


def _forward_impl(x: Tensor, v0: Tensor | None, p: LIFParams,
                  want_v_last: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    x = x.contiguous()
    v0 = _state(v0, x)
    if x.is_cuda:
        return lif_forward_cuda(x, v0, p, want_v_last)
    return lif_forward_cpu(x, v0, p)


def _backward_impl(gs: Tensor | None, h: Tensor, gv_last: Tensor | None, p: LIFParams,
                   want_gv0: bool = True) -> tuple[Tensor, Tensor | None]:
    gs, gv_last = _grad_like(gs, h), _state(gv_last, h)
    if h.is_cuda:
        return lif_backward_cuda(gs, h, gv_last, p, want_gv0)
    return lif_backward_cpu(gs, h, gv_last, p)


def _forward_ckpt_impl(x: Tensor, v0: Tensor | None, p: LIFParams,
                       want_v_last: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    x = x.contiguous()
    v0 = _state(v0, x)
    if x.is_cuda:
        return lif_forward_ckpt_cuda(x, v0, p, want_v_last)
    return lif_forward_ckpt_cpu(x, v0, p)


def _backward_recompute_impl(gs: Tensor | None, x: Tensor, v0: Tensor | None, ckpt: Tensor,
                             gv_last: Tensor | None, p: LIFParams,
                             want_gv0: bool = True) -> tuple[Tensor, Tensor | None]:
    x = x.contiguous()
    v0 = _state(v0, x)  # the same values the forward started from
    gs, gv_last = _grad_like(gs, x), _state(gv_last, x)
    if x.is_cuda:
        return lif_backward_recompute_cuda(gs, x, v0, ckpt, gv_last, p, want_gv0)
    return lif_backward_recompute_cpu(gs, x, v0, ckpt, gv_last, p)


# ------------------------------------------------------------------------------------------------
# The registered ops
# ------------------------------------------------------------------------------------------------
@torch.library.custom_op("tfbench::lif_forward", mutates_args=())
def lif_forward(x: Tensor, v0: Optional[Tensor], tau: float, decay_input: bool, v_threshold: float,
                v_reset: Optional[float], detach_reset: bool, surrogate: str,
                alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """x: [T, *]; v0: [*] or None. Returns spikes s and kept membrane h ([T, *]), and v_T [*]."""
    p = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha)
    return _forward_impl(x, v0, p)


@lif_forward.register_fake
def _(x, v0, tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha):
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.empty_like(x), torch.empty_like(x), x.new_empty(x.shape[1:], dtype=acc)


@torch.library.custom_op("tfbench::lif_backward", mutates_args=())
def lif_backward(gs: Optional[Tensor], h: Tensor, gv_last: Optional[Tensor], tau: float, decay_input: bool,
                 v_threshold: float, v_reset: Optional[float], detach_reset: bool, surrogate: str,
                 alpha: float) -> tuple[Tensor, Tensor]:
    """gs, h: [T, *]; gv_last: [*] or None. Returns dL/dx [T, *] and dL/dv0 [*]."""
    p = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha)
    return _backward_impl(gs, h, gv_last, p)


@lif_backward.register_fake
def _(gs, h, gv_last, tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha):
    acc = torch.float64 if h.dtype == torch.float64 else torch.float32
    return torch.empty_like(h), h.new_empty(h.shape[1:], dtype=acc)


def _setup_context(ctx, inputs, output):
    x, v0, *params = inputs
    ctx.params = params
    ctx.v0_dtype = None if v0 is None else v0.dtype
    ctx.save_for_backward(output[1])


def _backward(ctx, grad_s, grad_h, grad_v_last):
    (h,) = ctx.saved_tensors
    gx, gv0 = torch.ops.tfbench.lif_backward(grad_s, h, grad_v_last, *ctx.params)
    gv0 = None if ctx.v0_dtype is None else gv0.to(ctx.v0_dtype)
    return (gx, gv0) + (None,) * len(ctx.params)


lif_forward.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("tfbench::lif_forward_ckpt", mutates_args=())
def lif_forward_ckpt(x: Tensor, v0: Optional[Tensor], tau: float, decay_input: bool, v_threshold: float,
                     v_reset: Optional[float], detach_reset: bool, surrogate: str,
                     alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """x: [T, *]; v0: [*] or None. Returns spikes s [T, *], the membrane checkpoints
    [ckpt_rows(T), *] (float32, float64 for float64 x) and v_T [*]; backward keeps x (save="input")."""
    p = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha)
    return _forward_ckpt_impl(x, v0, p)


@lif_forward_ckpt.register_fake
def _(x, v0, tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha):
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    ckpt = x.new_empty((alloc.ckpt_rows(x.shape[0]), *x.shape[1:]), dtype=acc)
    return torch.empty_like(x), ckpt, x.new_empty(x.shape[1:], dtype=acc)


@torch.library.custom_op("tfbench::lif_backward_recompute", mutates_args=())
def lif_backward_recompute(gs: Optional[Tensor], x: Tensor, v0: Optional[Tensor], ckpt: Tensor,
                           gv_last: Optional[Tensor], tau: float, decay_input: bool, v_threshold: float,
                           v_reset: Optional[float], detach_reset: bool, surrogate: str,
                           alpha: float) -> tuple[Tensor, Tensor]:
    """gs, x: [T, *]; v0: [*] or None (the forward's); ckpt: lif_forward_ckpt's; gv_last: [*] or None.
    Returns dL/dx [T, *] and dL/dv0 [*]."""
    p = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha)
    return _backward_recompute_impl(gs, x, v0, ckpt, gv_last, p)


@lif_backward_recompute.register_fake
def _(gs, x, v0, ckpt, gv_last, tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha):
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.empty_like(x), x.new_empty(x.shape[1:], dtype=acc)


def _setup_context_ckpt(ctx, inputs, output):
    x, v0, *params = inputs
    ctx.params = params
    ctx.v0_dtype = None if v0 is None else v0.dtype
    ctx.save_for_backward(x, v0, output[1])


def _backward_ckpt(ctx, grad_s, grad_ckpt, grad_v_last):
    x, v0, ckpt = ctx.saved_tensors
    gx, gv0 = torch.ops.tfbench.lif_backward_recompute(grad_s, x, v0, ckpt, grad_v_last, *ctx.params)
    gv0 = None if ctx.v0_dtype is None else gv0.to(ctx.v0_dtype)
    return (gx, gv0) + (None,) * len(ctx.params)


lif_forward_ckpt.register_autograd(_backward_ckpt, setup_context=_setup_context_ckpt)


# ------------------------------------------------------------------------------------------------
# The eager path: the same host functions without the dispatcher
# ------------------------------------------------------------------------------------------------
class _LIFFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, v0: Tensor | None, p: LIFParams, want_v_last: bool):  # type: ignore[override]
        s, h, v_last = _forward_impl(x, v0, p, want_v_last)
        ctx.set_materialize_grads(False)  # an unused v_T gets no zero-filled gradient (one launch less)
        ctx.save_for_backward(h)
        ctx.p = p
        ctx.v0_dtype = None if v0 is None else v0.dtype
        ctx.mark_non_differentiable(h)
        return s, h, v_last

    @staticmethod
    def backward(ctx, grad_s: Tensor, grad_h: Tensor, grad_v_last: Tensor):  # type: ignore[override]
        (h,) = ctx.saved_tensors
        gx, gv0 = _backward_impl(grad_s, h, grad_v_last, ctx.p, want_gv0=ctx.v0_dtype is not None)
        return gx, (None if ctx.v0_dtype is None else gv0.to(ctx.v0_dtype)), None, None


class _LIFInputFunction(torch.autograd.Function):
    """save="input": keeps x, v0 and the membrane checkpoints; backward recomputes h."""

    @staticmethod
    def forward(ctx, x: Tensor, v0: Tensor | None, p: LIFParams, want_v_last: bool):  # type: ignore[override]
        s, ckpt, v_last = _forward_ckpt_impl(x, v0, p, want_v_last)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, v0, ckpt)
        ctx.p = p
        ctx.v0_dtype = None if v0 is None else v0.dtype
        ctx.mark_non_differentiable(ckpt)
        return s, ckpt, v_last

    @staticmethod
    def backward(ctx, grad_s: Tensor, grad_ckpt: Tensor, grad_v_last: Tensor):  # type: ignore[override]
        x, v0, ckpt = ctx.saved_tensors
        gx, gv0 = _backward_recompute_impl(grad_s, x, v0, ckpt, grad_v_last, ctx.p,
                                           want_gv0=ctx.v0_dtype is not None)
        return gx, (None if ctx.v0_dtype is None else gv0.to(ctx.v0_dtype)), None, None


# ------------------------------------------------------------------------------------------------
# The public function
# ------------------------------------------------------------------------------------------------
def check_inputs(x: Tensor, v0: Tensor | None) -> None:
    """Raise TypeError/ValueError naming the argument when x or v0 cannot go into the op."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape [T, *], got {type(x).__name__}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"x must be float32, bfloat16 or float16 (float64 for gradcheck), got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have shape [T, *] (time first), got a 0-dimensional tensor")
    if x.shape[0] == 0:
        raise ValueError(f"x must have at least one time step (T >= 1), got shape {tuple(x.shape)}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"x must be on a CPU or CUDA device, got {x.device}")
    if v0 is None:
        return
    if not isinstance(v0, Tensor):
        raise TypeError(f"v0 must be a torch.Tensor or None, got {type(v0).__name__}")
    if not v0.dtype.is_floating_point:
        raise TypeError(f"v0 must be a floating-point tensor, got {v0.dtype}")
    if tuple(v0.shape) != tuple(x.shape[1:]):
        raise ValueError(f"v0 must have x.shape[1:] = {tuple(x.shape[1:])}, got {tuple(v0.shape)}")
    if v0.device != x.device:
        raise ValueError(f"v0 must be on x's device ({x.device}), got {v0.device}")


def lif(x: Tensor, v0: Tensor | None = None, *, tau: float = 2.0, decay_input: bool = True,
        v_threshold: float = 1.0, v_reset: float | None = 0.0, detach_reset: bool = False,
        surrogate: str = "sigmoid", alpha: float = 4.0, save: str = "h") -> tuple[Tensor, Tensor]:
    """All T steps of a LIF layer in one fused forward (and one backward) kernel.

    Args:
        x: input current, shape ``[T, *]`` (time first, any trailing shape), float32, bfloat16 or
            float16 (float64 too, computed in float64), on the CPU or a CUDA GPU; any strides.
        v0: initial membrane, shape ``x.shape[1:]``, on x's device; ``None`` starts at ``v_reset``
            (hard reset) or 0 (soft reset).
        tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha: the neuron, exactly
            as ``../shared/LIF_SPEC.md`` (SpikingJelly's ``LIFNode`` names). ``v_reset=None`` is a
            soft reset; ``tau=float('inf'), decay_input=False`` is an IF neuron.
        save: what is kept for backward. ``"h"``: the pre-reset membrane ``[T, *]`` in x's dtype.
            ``"input"``: x itself and a float32 membrane every 8 steps; backward recomputes h from
            them (identical spikes, v_T and, in fp32, gradients; in bf16/fp16 the gradient uses the
            unrounded fp32 h). Fewer bytes move (fp32: at most 20 + 8/8 per element instead of 24; see
            ``bytes_per_element``), and x is kept alive until backward instead of a new h.

    Returns:
        ``(s, v_T)``: spikes of x's shape and dtype (0/1), and the final membrane of shape
        ``x.shape[1:]`` in float32 (float64 for float64 input). Gradients flow to x and v0.
    """
    return apply(x, v0, _validated(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha),
                 save=check_save(save))


@functools.lru_cache(maxsize=1024)
def _validated(*args) -> LIFParams:
    return LIFParams(*args).validate()


def apply(x: Tensor, v0: Tensor | None, p: LIFParams, want_v_last: bool = True,
          save: str = "h") -> tuple[Tensor, Tensor | None]:
    """``lif()`` with parameters already validated (``LIFParams.validate()``, ``check_save``): what
    ``LIF`` calls.

    ``want_v_last=False`` may return None for v_T (eager GPU path: one allocation less per call).
    """
    check_inputs(x, v0)
    keep_input = save == "input"
    if EAGER_VIA_DISPATCHER or torch.compiler.is_compiling():
        forward = torch.ops.tfbench.lif_forward_ckpt if keep_input else torch.ops.tfbench.lif_forward
        s, _, v_last = forward(x, v0, p.tau, p.decay_input, p.v_threshold, p.v_reset, p.detach_reset,
                               p.surrogate, p.alpha)
    elif x.is_cuda and USE_CPP and lif_cuda.TUNING.vec is None and not alloc.POISON and fast.extension():
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        if v0 is not None and (v0.dtype != acc or not v0.is_contiguous()):
            v0 = v0.to(acc).contiguous()  # differentiable: dL/dv0 comes back in v0's dtype
        device = x.device.index if x.device.index is not None else torch.cuda.current_device()
        s, v_last = fast.extension().lif(x if x.is_contiguous() else x.contiguous(), v0,
                                         fast.config(x.dtype, p, device), want_v_last, keep_input)
        if not want_v_last:
            v_last = None
    else:
        function = _LIFInputFunction if keep_input else _LIFFunction
        s, _, v_last = function.apply(x, v0, p, want_v_last)
    return s, v_last
