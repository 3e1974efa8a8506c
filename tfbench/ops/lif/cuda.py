"""The fused op on NVIDIA GPUs: kernels/lif.cu, built by NVRTC (tfbench/ops/jit.py) at first use.

One forward and one backward launch per call, whatever T is; two pairs of kernels: one keeps h
for backward (``lif_forward``/``lif_backward``), the other keeps x and recomputes h in backward
from membrane checkpoints (``lif_forward_ckpt``/``lif_backward_recompute``, ``save="input"``).
Each configuration (storage dtype, reset mode, decay_input, detach_reset, surrogate, neurons per
thread) is one small compiled module, built once per machine and cached on disk.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import jit
from . import alloc
from .params import LIFParams

# The storage dtype codes of lif.cuh (LIF_STORAGE).
_STORAGE = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2, torch.float64: 3}
_SURROGATE = {"sigmoid": 0, "atan": 1, "rect": 2}


@dataclass
class Tuning:
    """Launch shape. Defaults measured on an H100 (kernels/NOTES.md); the benchmark sweeps them."""

    block: int = 128                 # threads per block: small blocks spread a small layer over more SMs
    unroll: int = 4                  # time steps loaded ahead of use: 4 keeps 64 B in flight per thread
    vec_bytes: int = 16              # widest access per thread and step: one 16-byte load
    min_threads_per_sm: int = 1024   # use wide accesses only while this many threads per SM remain
    vec: int | None = None           # force a width (tuning sweeps); None picks per call


TUNING = Tuning()


class _ParamsF(ctypes.Structure):
    _fields_ = [("inv_tau", ctypes.c_float), ("v_threshold", ctypes.c_float),
                ("v_reset", ctypes.c_float), ("alpha", ctypes.c_float)]


class _ParamsD(ctypes.Structure):
    _fields_ = [("inv_tau", ctypes.c_double), ("v_threshold", ctypes.c_double),
                ("v_reset", ctypes.c_double), ("alpha", ctypes.c_double)]


_POINTERS = "abcdefg"


def _kernel_args(params: type[ctypes.Structure], pointers: int = 5) -> jit.KernelArgs:
    """Five pointers: lif_forward(x, v0, s, h, v_last, n, steps, p), lif_backward(gs, h, gv_last, gx, gv0,
    n, steps, p) and lif_forward_ckpt(x, v0, s, ckpt, v_last, n, steps, p); seven:
    lif_backward_recompute(gs, x, v0, ckpt, gv_last, gx, gv0, n, steps, p)."""
    fields = [(name, ctypes.c_void_p) for name in _POINTERS[:pointers]]
    fields += [("n", ctypes.c_longlong), ("steps", ctypes.c_int), ("p", params)]
    return jit.KernelArgs(type("LIFArgs", (ctypes.Structure,), {"_fields_": fields}))


_ARGS = {False: _kernel_args(_ParamsF), True: _kernel_args(_ParamsD)}
_ARGS7 = {False: _kernel_args(_ParamsF, 7), True: _kernel_args(_ParamsD, 7)}
KERNELS = ("lif_forward", "lif_backward", "lif_forward_ckpt", "lif_backward_recompute")


_MODULES: dict[tuple, jit.CudaModule] = {}
_SM_COUNT: dict[int, int] = {}


def _module(dtype: torch.dtype, p: LIFParams, vec: int, device: int) -> jit.CudaModule:
    key = (dtype, p.decay_input, p.hard_reset, p.detach_reset, p.surrogate, vec, TUNING.unroll, device)
    module = _MODULES.get(key)
    if module is None:
        major, minor = torch.cuda.get_device_capability(device)
        defines = {
            "LIF_STORAGE": _STORAGE[dtype], "LIF_DECAY_INPUT": int(p.decay_input),
            "LIF_HARD_RESET": int(p.hard_reset), "LIF_DETACH_RESET": int(p.detach_reset),
            "LIF_SURROGATE": _SURROGATE[p.surrogate], "LIF_VEC": vec, "LIF_UNROLL": TUNING.unroll,
            "LIF_CKPT": alloc.CKPT,
        }
        image, _ = jit.compile_cubin("lif.cu", major * 10 + minor, defines)
        module = jit.CudaModule(image, KERNELS)
        _MODULES[key] = module
    return module


def _sm_count(device: int) -> int:
    count = _SM_COUNT.get(device)
    if count is None:
        count = _SM_COUNT[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return count


def _vec(n: int, dtype: torch.dtype, device: int, *tensors: Tensor | None) -> int:
    """Neurons per thread: the widest access that divides n, still fills the GPU, and is aligned."""
    if TUNING.vec is not None:
        vec = TUNING.vec
    else:
        vec = max(1, TUNING.vec_bytes // dtype.itemsize)
        enough = _sm_count(device) * TUNING.min_threads_per_sm
        while vec > 1 and (n % vec or n // vec < enough):
            vec //= 2
    if vec > 1 and (n % vec or any(t is not None and t.data_ptr() % (vec * t.element_size()) for t in tensors)):
        return 1
    return vec


def _launch(kernel: str, module: jit.CudaModule, device: int, vec: int, double: bool,
            ptrs: tuple[Tensor | None, ...], n: int, steps: int, p: LIFParams) -> None:
    args = _ARGS7 if len(ptrs) == 7 else _ARGS
    params = args[double].pack(*[0 if t is None else t.data_ptr() for t in ptrs], n, steps,
                               1.0 / p.tau, p.v_threshold, p.rest, p.alpha)
    module.launch(kernel, device, _grid(n, vec), TUNING.block, params)


def _grid(n: int, vec: int) -> int:
    threads = (n + vec - 1) // vec
    return (threads + TUNING.block - 1) // TUNING.block


def lif_forward_cuda(x: Tensor, v0: Tensor | None, p: LIFParams,
                     want_v_last: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """x: [T, *] contiguous on a GPU; v0: [*] contiguous float32 (float64 for float64 x) or None.

    Returns s and h of x's shape and dtype, and v_T [*] in float32 (float64). Shapes are kept as
    given (the kernel sees [T, N], N = prod(*)): no reshapes, which cost Python time per call.
    ``want_v_last=False`` returns None for v_T and spares its allocation.
    """
    steps = x.shape[0]
    n = x.numel() // steps
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    s = alloc.empty(x.shape, x.dtype, x.device)
    h = alloc.empty(x.shape, x.dtype, x.device)
    v_last = alloc.empty(x.shape[1:], acc, x.device) if want_v_last else None
    if n == 0:
        return s, h, v_last
    device = x.device.index if x.device.index is not None else torch.cuda.current_device()
    vec = _vec(n, x.dtype, device, x, s, h)
    module = _module(x.dtype, p, vec, device)
    _launch("lif_forward", module, device, vec, acc == torch.float64, (x, v0, s, h, v_last), n, steps, p)
    return s, h, v_last


def lif_backward_cuda(gs: Tensor, h: Tensor, gv_last: Tensor | None, p: LIFParams,
                      want_gv0: bool = True) -> tuple[Tensor, Tensor | None]:
    """gs, h: [T, *] contiguous, h's dtype; gv_last: [*] float32 (float64) or None.

    Returns gx of h's shape and dtype and gv0 [*] in float32 (float64); gv0 is None (and not
    allocated) with ``want_gv0=False``.
    """
    steps = h.shape[0]
    n = h.numel() // steps
    acc = torch.float64 if h.dtype == torch.float64 else torch.float32
    gx = alloc.empty(h.shape, h.dtype, h.device)
    gv0 = alloc.empty(h.shape[1:], acc, h.device) if want_gv0 else None
    if n == 0:
        return gx, gv0
    device = h.device.index if h.device.index is not None else torch.cuda.current_device()
    vec = _vec(n, h.dtype, device, gs, h, gx)
    module = _module(h.dtype, p, vec, device)
    _launch("lif_backward", module, device, vec, acc == torch.float64, (gs, h, gv_last, gx, gv0), n, steps, p)
    return gx, gv0


def lif_forward_ckpt_cuda(x: Tensor, v0: Tensor | None, p: LIFParams,
                          want_v_last: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """As :func:`lif_forward_cuda`, keeping x instead of h (``save="input"``).

    Returns s (x's shape and dtype), the membrane checkpoints ``[alloc.ckpt_rows(T), *]`` in
    float32 (float64) that :func:`lif_backward_recompute_cuda` restarts from, and v_T (or None).
    """
    steps = x.shape[0]
    n = x.numel() // steps
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    s = alloc.empty(x.shape, x.dtype, x.device)
    ckpt = alloc.empty((alloc.ckpt_rows(steps), *x.shape[1:]), acc, x.device)
    v_last = alloc.empty(x.shape[1:], acc, x.device) if want_v_last else None
    if n == 0:
        return s, ckpt, v_last
    device = x.device.index if x.device.index is not None else torch.cuda.current_device()
    vec = _vec(n, x.dtype, device, x, s)
    module = _module(x.dtype, p, vec, device)
    _launch("lif_forward_ckpt", module, device, vec, acc == torch.float64, (x, v0, s, ckpt, v_last), n, steps, p)
    return s, ckpt, v_last


def lif_backward_recompute_cuda(gs: Tensor, x: Tensor, v0: Tensor | None, ckpt: Tensor, gv_last: Tensor | None,
                                p: LIFParams, want_gv0: bool = True) -> tuple[Tensor, Tensor | None]:
    """gs, x: [T, *] contiguous, x's dtype; v0: [*] float32 (float64) or None, as given to the
    forward; ckpt: the forward's checkpoints; gv_last: [*] or None. Returns gx (x's shape and dtype)
    and gv0 [*] in float32 (float64), None with ``want_gv0=False``. h is recomputed, bit for bit."""
    steps = x.shape[0]
    n = x.numel() // steps
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    gx = alloc.empty(x.shape, x.dtype, x.device)
    gv0 = alloc.empty(x.shape[1:], acc, x.device) if want_gv0 else None
    if n == 0:
        return gx, gv0
    device = x.device.index if x.device.index is not None else torch.cuda.current_device()
    vec = _vec(n, x.dtype, device, gs, x, gx)
    module = _module(x.dtype, p, vec, device)
    _launch("lif_backward_recompute", module, device, vec, acc == torch.float64,
            (gs, x, v0, ckpt, gv_last, gx, gv0), n, steps, p)
    return gx, gv0
