"""The ops on a machine where kernels/tfbench_ops.cpp cannot be built (no C++ compiler).

The same two schemas (library.py), implemented over the plain reference (reference.py) on the CPU
and on GPUs, with autograd registered in Python: the results are the reference's (the kernels'
maths up to rounding: LIF divides by tau where the kernels multiply by 1/tau), nothing is fused.
The forward is the reference loop under no_grad; the backward runs the loop again from x with
autograd (this fallback always keeps x, whatever ``save`` says). What it costs, measured, is in
docs/neurons.md ("Without a C++ compiler"): a Python loop over T with a few PyTorch ops per step,
forward and again in backward, instead of one kernel each way.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .neurons import describe
from .reference import neuron_reference

_SETTINGS = {"block": 128, "unroll": 4, "vec_bytes": 16, "min_threads_per_sm": 1024, "vec": 0,
             "epilogue_bytes": 16 << 20, "poison": 0}


def _set(key: str, value: int) -> int:
    if key not in _SETTINGS:
        raise RuntimeError(f"tfbench::_set: unknown setting '{key}'; known: {', '.join(_SETTINGS)}")
    old = _SETTINGS[key]
    if value >= 0:
        _SETTINGS[key] = value
    return old


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _forward(x: Tensor, v0: Tensor | None, learned: list[Tensor], neuron: str, constants: list[float],
             switches: list[int], save_input: bool, want_v_last: bool):
    from .library import CKPT, ckpt_rows

    p = describe(neuron).from_kernel(list(constants), list(switches))
    acc = _acc(x.dtype)
    with torch.no_grad():
        s, v_last, h, v = neuron_reference(x.to(acc), None if v0 is None else v0.to(acc), p,
                                           [w.to(acc) for w in learned], return_membrane=True)
    if save_input:  # the membrane before steps CKPT, 2 CKPT, ...: after steps CKPT - 1, 2 CKPT - 1, ...
        kept = v[CKPT - 1::CKPT][:ckpt_rows(x.shape[0])].contiguous()
    else:
        kept = h.to(x.dtype)
    if not want_v_last:
        v_last = x.new_empty((0,), dtype=acc)
    return s.to(x.dtype), kept, v_last


def _backward(gs: Tensor | None, gv_last: Tensor | None, kept: Tensor, x: Tensor | None, v0: Tensor | None,
              learned: list[Tensor], neuron: str, constants: list[float], switches: list[int], save_input: bool,
              want_gv0: bool):
    if x is None:
        raise RuntimeError("tfbench's fallback ops (no C++ compiler) recompute the forward in backward: "
                           "neuron_backward needs x")
    p = describe(neuron).from_kernel(list(constants), list(switches))
    acc = _acc(x.dtype)
    xr = x.detach().to(acc).requires_grad_(True)
    v0r = None if v0 is None else v0.detach().to(acc).requires_grad_(True)
    wr = [w.detach().to(acc).requires_grad_(True) for w in learned]
    with torch.enable_grad():
        s, v_last = neuron_reference(xr, v0r, p, wr)
        outputs, grads = [s], [torch.zeros_like(s) if gs is None else gs.to(s.dtype)]
        if gv_last is not None and gv_last.numel() > 0:
            outputs.append(v_last)
            grads.append(gv_last.to(v_last.dtype))
        inputs = [xr] + ([v0r] if v0r is not None else []) + wr
        got = torch.autograd.grad(outputs, inputs, grads, allow_unused=True)
    got = [torch.zeros_like(i) if g is None else g for g, i in zip(got, inputs)]
    gx = got[0].to(x.dtype)
    gv0 = got[1] if (v0r is not None and want_gv0) else x.new_empty(x.shape[1:] if want_gv0 else (0,), dtype=acc)
    glearned = [g.to(w.dtype) for g, w in zip(got[len(got) - len(wr):], learned)]
    return gx, gv0, glearned


def _setup_context(ctx, inputs, output):
    x, v0, learned, neuron, constants, switches, save_input, want_v_last = inputs
    ctx.save_for_backward(x, v0, output[1], *learned)
    ctx.args = (neuron, list(constants), list(switches), save_input)
    ctx.v0_dtype = None if v0 is None else v0.dtype


def _autograd_backward(ctx, grad_s, grad_kept, grad_v_last):
    x, v0, kept, *learned = ctx.saved_tensors
    neuron, constants, switches, save_input = ctx.args
    gx, gv0, glearned = torch.ops.tfbench.neuron_backward(grad_s, grad_v_last, kept, x, v0, learned, neuron,
                                                          constants, switches, save_input, v0 is not None)
    gv0 = None if ctx.v0_dtype is None else gv0.to(ctx.v0_dtype)
    return gx, gv0, list(glearned), None, None, None, None, None


def register(library: torch.library.Library) -> None:
    """Give library.py's ops these implementations (on CPUs and CUDA GPUs) and their autograd."""
    for key in ("CPU", "CUDA"):
        library.impl("neuron_forward", _forward, key)
        library.impl("neuron_backward", _backward, key)
    library.impl("_set", _set, "CompositeExplicitAutograd")
    torch.library.register_autograd("tfbench::neuron_forward", _autograd_backward, setup_context=_setup_context,
                                    lib=library)
