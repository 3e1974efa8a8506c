"""The public fused-neuron functions: ``lif()``, ``plif()``, and ``fused()`` for any neuron description.

Each runs all T steps of a layer in one forward kernel (and one backward kernel) through the ops of
library.py. What backward keeps (``save``): ``"h"``, the pre-reset membrane ``[T, *]`` in x's
dtype, or ``"input"``, x itself plus a float32 membrane every ``CKPT`` (8) steps, from which backward
recomputes h bit for bit: fewer bytes cross memory (``bytes_per_element``). Both give the same
spikes and v_T. docs/neurons.md is the maths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import library
from .library import CKPT, ckpt_rows
from .neurons import LIFParams, NeuronParams, PLIFParams, check_save

_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_inputs(x: Any, v0: Any) -> None:
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


def check_w(x: Tensor, w: Any) -> None:
    """PLIF's w: a floating-point tensor on x's device with one value ([] or [1]) or one per channel
    ([C], x of shape [T, B, C, ...]); TypeError/ValueError naming what is wrong."""
    if not isinstance(w, Tensor):
        raise TypeError(f"w must be a torch.Tensor (1/tau = sigmoid(w)), got {type(w).__name__}")
    if not w.dtype.is_floating_point:
        raise TypeError(f"w must be a floating-point tensor, got {w.dtype}")
    if w.device != x.device:
        raise ValueError(f"w must be on x's device ({x.device}), got {w.device}")
    if w.dim() == 0 or tuple(w.shape) == (1,):
        return
    if w.dim() == 1 and x.dim() >= 3 and w.shape[0] == x.shape[2]:
        return
    channels = f"[{x.shape[2]}] (one per channel of x's dim 2)" if x.dim() >= 3 else "none (x has no channel dim)"
    raise ValueError(f"w must have shape [] (one tau for the layer) or {channels}, got {tuple(w.shape)}")


# Validated parameters per argument tuple: validating costs microseconds per call; the key holds
# each argument's type, so that True and 1 (equal, and equal hashes) are told apart.
_VALIDATED: dict[tuple, Any] = {}


def _validated(cls: type, args: tuple) -> Any:
    key = (cls, *((type(a), a) for a in args))
    try:
        return _VALIDATED[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable argument (a list, say): validate() names it
        return cls(*args).validate()
    p = _VALIDATED[key] = cls(*args).validate()
    return p


_KERNEL_ARGS: dict[Any, tuple[list[float], list[int]]] = {}


def kernel_args(p: NeuronParams) -> tuple[list[float], list[int]]:
    """The op's ``constants`` and ``switches`` for the validated description ``p`` (cached)."""
    args = _KERNEL_ARGS.get(p)
    if args is None:
        args = _KERNEL_ARGS[p] = (p.kernel_constants(), p.kernel_switches())
    return args


def fused(x: Tensor, v0: Tensor | None, p: NeuronParams, learned: Sequence[Tensor] = (), *, save: str = "h",
          want_v_last: bool = True) -> tuple[Tensor, Tensor | None]:
    """The fused op for a validated neuron description ``p`` (``LIFParams``, ``PLIFParams``, ...).

    ``learned``: the neuron's learnable tensors (``p.learned`` names them). ``want_v_last=False``
    returns None for v_T (one output less to allocate). Returns ``(s, v_T)``.
    """
    check_inputs(x, v0)
    return _run(x, v0, p, learned, save, want_v_last)


def _run(x: Tensor, v0: Tensor | None, p: NeuronParams, learned: Sequence[Tensor], save: str,
         want_v_last: bool, args: tuple[list[float], list[int]] | None = None) -> tuple[Tensor, Tensor | None]:
    constants, switches = kernel_args(p) if args is None else args
    s, _, v_last = library.FORWARD(x, v0, list(learned), p.name, constants, switches, save == "input", want_v_last)
    return s, (v_last if want_v_last else None)


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
            as docs/neurons.md ("LIF"; SpikingJelly's ``LIFNode`` names). ``v_reset=None`` is a
            soft reset; ``tau=float('inf'), decay_input=False`` is an IF neuron.
        save: what is kept for backward. ``"h"``: the pre-reset membrane ``[T, *]`` in x's dtype.
            ``"input"``: x itself and a float32 membrane every 8 steps; backward recomputes h from
            them (identical spikes, v_T and, in fp32, gradients; in bf16/fp16 the gradient uses the
            unrounded fp32 h). Fewer bytes move (fp32: at most 20 + 8/8 per element instead of 24;
            see ``bytes_per_element``), and x is kept alive until backward instead of a new h.

    Returns:
        ``(s, v_T)``: spikes of x's shape and dtype (0/1), and the final membrane of shape
        ``x.shape[1:]`` in float32 (float64 for float64 input). Gradients flow to x and v0.

    A NaN in x makes that neuron's membrane NaN from then on: it never fires again and its
    gradients are NaN (docs/neurons.md, "Non-finite input"); x is not checked (that would cost a
    pass over it and a host synchronisation).
    """
    p = _validated(LIFParams, (tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha))
    return fused(x, v0, p, save=check_save(save))


def plif(x: Tensor, w: Tensor, v0: Tensor | None = None, *, decay_input: bool = True, v_threshold: float = 1.0,
         v_reset: float | None = 0.0, detach_reset: bool = False, surrogate: str = "sigmoid", alpha: float = 4.0,
         save: str = "h") -> tuple[Tensor, Tensor]:
    """All T steps of a PLIF layer (learnable time constant, 1/tau = sigmoid(w)) in one fused kernel each way.

    Args:
        x, v0, save: as ``lif``.
        w: SpikingJelly's ``ParametricLIFNode.w``: a tensor of shape ``[]`` (one tau for the layer) or
            ``[C]`` (one per channel of x of shape ``[T, B, C, ...]``), any float dtype, on x's device.
            dL/dw is reduced inside the backward kernel (block partial sums, then one fixed-order
            reduction: the same bits on every run) in float32 whatever x's dtype, and returned in w's.
        decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha: as ``lif``.

    Returns ``(s, v_T)`` as ``lif``; gradients flow to x, v0 and w.
    """
    p = _validated(PLIFParams, (2.0, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha))
    check_inputs(x, v0)
    check_w(x, w)
    return _run(x, v0, p, (w,), check_save(save), True)


def bytes_per_element(dtype: torch.dtype, steps: int, direction: str = "both", save: str = "h") -> float:
    """Bytes each element of ``[T, N]`` must cross device memory, per layer (docs/neurons.md, "Floors").

    ``save="h"``: forward reads x, writes s and h; backward reads gs and h, writes gx (6 x the
    storage size in both directions: 24 B fp32, 12 B bf16/fp16). ``save="input"``: forward reads x,
    writes s; backward reads gs and x, writes gx (5 x the size), plus each float32 (float64)
    checkpoint written forward and read backward: ``ckpt_rows(T) / T`` of them per element (fp32:
    20 + 8/CKPT - 8/T for T a multiple of CKPT, 20.5 at T=16, 20 for T <= CKPT). v0 and v_T ([N])
    and PLIF's per-block partial sums of dL/dw are not counted. The same for every neuron.
    """
    size = torch.empty((), dtype=dtype).element_size()
    if save == "h":
        return float({"forward": 3, "backward": 3, "both": 6}[direction] * size)
    check_save(save)
    acc = 8 if dtype == torch.float64 else 4
    ckpt = ckpt_rows(steps) * acc / steps
    return {"forward": 2 * size + ckpt, "backward": 3 * size + ckpt, "both": 5 * size + 2 * ckpt}[direction]


__all__ = ["CKPT", "bytes_per_element", "check_inputs", "check_w", "ckpt_rows", "fused", "lif", "plif"]
