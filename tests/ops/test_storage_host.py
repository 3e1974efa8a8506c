"""kernels/neuron.cuh's software bf16/fp16 conversions (the host side of the CPU op) against PyTorch's.

The CPU op itself is the kernel header compiled for the host (tests/ops/test_lif.py etc. run it);
this checks its conversions bit for bit on values a training run never reaches (subnormals,
overflow, halfway cases), through a tiny host build of the header.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tfbench.ops.jit import kernels_dir

CXX = shutil.which("g++") or shutil.which("c++")
pytestmark = pytest.mark.skipif(CXX is None and os.environ.get("CI") != "true",
                                reason="no C++ compiler to build the kernel header for the host")


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("host") / "host_storage.so"
    subprocess.run([CXX, "-O1", "-std=c++17", "-shared", "-fPIC", f"-I{kernels_dir()}",
                    str(Path(__file__).with_name("host_storage.cpp")), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(out))


def _ptr(t: torch.Tensor):
    return ctypes.c_void_p(t.data_ptr())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_conversions_round_to_nearest_even(lib, dtype):
    fn = lib.round_trip_bf16 if dtype == torch.bfloat16 else lib.round_trip_f16
    g = torch.Generator().manual_seed(0)
    values = torch.cat([
        torch.randn(20000, generator=g) * 10.0 ** torch.randint(-9, 6, (20000,), generator=g),
        torch.tensor([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8, 1e-40, 3.0e38,
                      float("inf"), -float("inf")]),
    ]).float()
    out = torch.empty_like(values)
    fn(_ptr(values), _ptr(out), ctypes.c_longlong(values.numel()))
    assert torch.equal(out, values.to(dtype).float())
    nan_in = torch.tensor([float("nan")])
    fn(_ptr(nan_in), _ptr(out), ctypes.c_longlong(1))
    assert torch.isnan(out[0])
