"""The eager fast path on GPUs: kernels/lif_autograd.cpp, a C++ autograd node around the same kernels.

A Python ``autograd.Function`` costs PyTorch's own Python round trip per call (0.09-0.19 ms on the
benchmark host, more than a small layer's kernels). The C++ node launches the NVRTC-built kernels
of lif.cu with no Python in forward or backward. It is built once per machine at first use with
``torch.utils.cpp_extension`` (a C++ compiler and ninja; PyTorch's headers only, no CUDA toolkit). Where it cannot be built, ``available()`` says why and
``lif()`` uses the Python path with identical results; ``TFBENCH_NO_CPP=1`` turns it off.
"""

from __future__ import annotations

import os
import threading

import torch

from .. import jit
from . import alloc
from . import cuda as lif_cuda
from .params import LIFParams

_LOCK = threading.Lock()
_EXT = None
_REASON: str | None = None
_CONFIGS: dict[tuple, int] = {}


def extension():
    """The built extension, or None (``reason()`` says why). Builds it on the first call."""
    global _EXT, _REASON
    if _EXT is not None or _REASON is not None:
        return _EXT
    with _LOCK:
        if _EXT is not None or _REASON is not None:
            return _EXT
        if os.environ.get("TFBENCH_NO_CPP") == "1":
            _REASON = "turned off by TFBENCH_NO_CPP=1"
            return None
        try:
            from torch.utils import cpp_extension

            _EXT = cpp_extension.load(
                name="tfbench_lif_autograd", sources=[str(jit.kernels_dir() / "lif_autograd.cpp")],
                extra_cflags=["-O2"], extra_ldflags=["-ldl"], verbose=False)
        except Exception as exc:  # noqa: BLE001 - any build failure means: use the Python path
            _REASON = f"the C++ autograd node could not be built: {str(exc).strip().splitlines()[-1][:300]}"
            return None
        return _EXT


def reason() -> str | None:
    """Why the fast path is not in use (None when it is, or has not been tried yet)."""
    return _REASON


def _widths(dtype: torch.dtype) -> list[int]:
    widest = max(1, lif_cuda.TUNING.vec_bytes // dtype.itemsize)
    return [w for w in (1, 2, 4, 8) if w <= widest]


def config(dtype: torch.dtype, p: LIFParams, device: int) -> int:
    """The extension's handle for this neuron on this device (kernels compiled and loaded once)."""
    key = (dtype, p, device, lif_cuda.TUNING.block, lif_cuda.TUNING.min_threads_per_sm, lif_cuda.TUNING.unroll)
    handle = _CONFIGS.get(key)
    if handle is None:
        widths = _widths(dtype)
        functions: dict[str, list[int]] = {name: [] for name in lif_cuda.KERNELS}
        for w in widths:
            loaded = lif_cuda._module(dtype, p, w, device)._load(device)
            for name, handles in functions.items():
                handles.append(loaded.functions[name].value)
        min_threads = lif_cuda._sm_count(device) * lif_cuda.TUNING.min_threads_per_sm
        handle = extension().make_config(widths, *[functions[name] for name in lif_cuda.KERNELS], alloc.CKPT,
                                          lif_cuda.TUNING.block, min_threads, dtype == torch.float64,
                                          1.0 / p.tau, p.v_threshold, p.rest, p.alpha)
        _CONFIGS[key] = handle
    return handle
