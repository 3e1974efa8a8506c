"""Building and loading the fused-neuron ops' C++ (kernels/tfbench_ops.cpp).

Built once per machine at first use with ``torch.utils.cpp_extension`` (the system C++ compiler and
ninja; PyTorch's own headers, no CUDA toolkit: about half a minute), cached by PyTorch
(``~/.cache/torch_extensions``) under a name that changes with the sources and the torch version,
and loaded into the process, where its static registrations give the ops of library.py their CPU,
CUDA and Autograd implementations. Where it cannot be built, ``load()`` says why and library.py
registers the fallback (fallback.py) instead.
"""

from __future__ import annotations

import hashlib
import logging
import os

import torch

from . import jit

SOURCE = "tfbench_ops.cpp"
# -ffp-contract=off: the host build must round like the kernels (no product fused into an add
# unless the source says fma), so that the CPU op and its recomputation agree bit for bit.
CFLAGS = ["-O2", "-ffp-contract=off"]


def _name() -> str:
    digest = hashlib.sha256()
    digest.update(torch.__version__.encode())
    root = jit.kernels_dir()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".cpp", ".cuh", ".cu", ".h"):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return f"tfbench_ops_{digest.hexdigest()[:12]}"


def load() -> str | None:
    """Build (first time) and load the C++ ops. None when they are in; otherwise the reason."""
    if os.environ.get("TFBENCH_NO_CPP") == "1":
        return "turned off by TFBENCH_NO_CPP=1"
    try:
        # importing cpp_extension warns "No CUDA runtime is found" on a machine without a GPU: the build
        # needs none (PyTorch's headers only), so that warning would only mislead
        quiet = logging.getLogger("torch.utils.cpp_extension")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            from torch.utils import cpp_extension
        finally:
            quiet.setLevel(level)

        root = jit.kernels_dir()
        cpp_extension.load(name=_name(), sources=[str(root / SOURCE)], extra_cflags=[*CFLAGS, f"-I{root}"],
                           extra_ldflags=["-ldl"], is_python_module=False,
                           verbose=os.environ.get("TFBENCH_VERBOSE_BUILD") == "1")
    except Exception as exc:  # noqa: BLE001 - any build failure means: use the fallback, and say why
        lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        return f"the C++ ops ({SOURCE}) could not be built: {lines[-1][:300]}"
    return None
