"""NVRTC: the CUDA source compiles for the GPUs tfbench supports, on a machine without a GPU."""

from __future__ import annotations

import os

import pytest

from tfbench.ops import jit
from tfbench.ops.lif import LIFParams
from tfbench.ops.lif.alloc import CKPT
from tfbench.ops.lif.cuda import _STORAGE, _SURROGATE


def _nvrtc_or_skip():
    try:
        return jit.nvrtc_version()
    except jit.KernelBuildError as exc:
        if os.environ.get("CI") == "true":
            raise  # CI installs a CUDA build of torch: NVRTC must be there
        pytest.skip(str(exc))


def _defines(dtype, p: LIFParams, vec: int) -> dict[str, int]:
    return {"LIF_STORAGE": _STORAGE[dtype], "LIF_DECAY_INPUT": int(p.decay_input),
            "LIF_HARD_RESET": int(p.hard_reset), "LIF_DETACH_RESET": int(p.detach_reset),
            "LIF_SURROGATE": _SURROGATE[p.surrogate], "LIF_VEC": vec, "LIF_UNROLL": 4, "LIF_CKPT": CKPT}


@pytest.mark.parametrize("arch", [80, 90])
def test_every_configuration_compiles(arch):
    """Every dtype at every vector width, and every switch combination in fp32."""
    import torch

    from tfbench.ops.lif import cuda as lif_cuda

    _nvrtc_or_skip()
    configs = [(dt, LIFParams(), vec) for dt in _STORAGE for vec in (1, 2, 4, 8)
               if vec * torch.empty((), dtype=dt).element_size() <= 16]
    configs += [(torch.float32, LIFParams(decay_input=d, v_reset=r, detach_reset=det, surrogate=sg), 1)
                for d in (True, False) for r in (0.0, None) for det in (False, True) for sg in _SURROGATE]
    for dtype, p, vec in configs:
        image, is_cubin = jit.compile_cubin("lif.cu", arch, _defines(dtype, p, vec), use_cache=False)
        assert is_cubin and image[:4] == b"\x7fELF", (dtype, p, vec)
        for name in lif_cuda.KERNELS:  # both pairs: keeping h, and keeping x (recomputing h)
            assert name.encode() + b"\x00" in image, (name, dtype, p, vec)


@pytest.mark.parametrize("storage, vec", [(0, 4), (1, 8), (2, 8), (3, 2), (0, 1)])
def test_recompute_kernels_do_not_spill(storage, vec):
    """The recompute backward holds LIF_CKPT x LIF_VEC membranes in registers: at the widths the
    host side picks (16-byte accesses) nothing may spill to local memory (ptxas's own report)."""
    import re
    import shutil
    import subprocess

    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None)
    if nvcc is None or not os.path.exists(nvcc):
        pytest.skip("no nvcc to report register use")
    defines = [f"-DLIF_STORAGE={storage}", f"-DLIF_VEC={vec}", f"-DLIF_CKPT={CKPT}"]
    out = subprocess.run([nvcc, "-cubin", "-arch=sm_90", "-std=c++17", "-Xptxas", "-v", *defines,
                          f"-I{jit.kernels_dir()}", str(jit.kernels_dir() / "lif.cu"), "-o", os.devnull],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = out.stderr
    for name in ("lif_forward_ckpt", "lif_backward_recompute"):
        section = report[report.index(f"'{name}'"):]
        spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", section)
        assert spills and spills.groups() == ("0", "0"), section[:400]


def test_disk_cache_reuses_and_keys_on_options(tmp_path, monkeypatch):
    import torch

    _nvrtc_or_skip()
    monkeypatch.setenv("TFBENCH_CACHE_DIR", str(tmp_path))
    d = _defines(torch.float32, LIFParams(), 1)
    first, _ = jit.compile_cubin("lif.cu", 90, d)
    files = list((tmp_path / "kernels").iterdir())
    assert len(files) == 1
    files[0].write_bytes(b"\x7fELF-cached")  # the second call must read the cache, not compile
    assert jit.compile_cubin("lif.cu", 90, d)[0] == b"\x7fELF-cached"
    jit.compile_cubin("lif.cu", 90, {**d, "LIF_SURROGATE": 1})
    assert len(list((tmp_path / "kernels").iterdir())) == 2


def test_compile_error_is_reported_with_the_log():
    _nvrtc_or_skip()
    with pytest.raises(jit.KernelBuildError, match="LIF_STORAGE must be"):
        jit.compile_cubin("lif.cu", 90, {"LIF_STORAGE": 9}, use_cache=False)


def test_gpu_older_than_nvrtc_supports(monkeypatch):
    monkeypatch.setattr(jit, "supported_archs", lambda: [75, 80, 90])
    monkeypatch.setattr(jit, "nvrtc_version", lambda: (13, 0))
    with pytest.raises(jit.KernelBuildError, match="sm_61, older than NVRTC 13.0 supports"):
        jit._target(61)
    assert jit._target(90) == ("sm_90", True)
    assert jit._target(120) == ("compute_90", False)  # newer GPU: PTX that the driver compiles


def test_missing_nvrtc_says_how_to_install(monkeypatch):
    monkeypatch.setattr(jit, "_NVRTC", None)
    monkeypatch.setattr(jit, "_nvrtc_candidates", lambda: [])
    with pytest.raises(jit.KernelBuildError, match="pip install nvidia-cuda-nvrtc"):
        jit.nvrtc_version()


def test_sources_are_found():
    assert (jit.kernels_dir() / "lif.cu").is_file() and (jit.kernels_dir() / "lif.cuh").is_file()


@pytest.mark.parametrize("double", [False, True])
def test_recompute_kernel_args_pack_seven_pointers(double):
    """lif_backward_recompute(gs, x, v0, ckpt, gv_last, gx, gv0, n, steps, p): seven pointers first."""
    from tfbench.ops.lif import cuda as lif_cuda

    params = lif_cuda._ARGS7[double].pack(1, 2, 0, 4, 0, 6, 7, 2 ** 33 + 1, 9, 0.5, 0.3, 0.0, 4.0)
    struct_type = lif_cuda._kernel_args(lif_cuda._ParamsD if double else lif_cuda._ParamsF, 7)._struct_type
    view = struct_type.from_address(params[0])
    assert [getattr(view, f) or 0 for f in "abcdefg"] == [1, 2, 0, 4, 0, 6, 7]
    assert (view.n, view.steps, view.p.inv_tau, view.p.alpha) == (2 ** 33 + 1, 9, 0.5, 4.0)
    assert [params[i] - params[0] for i in range(len(params))] == [
        getattr(struct_type, f).offset for f in (*"abcdefg", "n", "steps", "p")]


@pytest.mark.parametrize("double", [False, True])
def test_kernel_args_pack_matches_the_struct_layout(double):
    """The packed launch buffer holds each value at its ctypes field's offset (float and double params)."""

    from tfbench.ops.lif import cuda as lif_cuda

    args = lif_cuda._ARGS[double]
    params = args.pack(11, 0, 33, 44, 55, 2 ** 40 + 7, 128, 0.8, 0.3, -0.25, 4.0)
    struct_type = lif_cuda._kernel_args(lif_cuda._ParamsD if double else lif_cuda._ParamsF)._struct_type
    view = struct_type.from_address(params[0])  # params[0] points at the buffer's first field
    assert [view.a or 0, view.b or 0, view.c, view.d, view.e] == [11, 0, 33, 44, 55]
    assert (view.n, view.steps) == (2 ** 40 + 7, 128)
    assert view.p.inv_tau == pytest.approx(0.8) and view.p.v_threshold == pytest.approx(0.3)
    assert view.p.v_reset == pytest.approx(-0.25) and view.p.alpha == 4.0
    base = params[0]
    assert [params[i] - base for i in range(len(params))] == [
        getattr(struct_type, f).offset for f in ("a", "b", "c", "d", "e", "n", "steps", "p")]


def test_cpp_autograd_node_builds():
    """The eager fast path (kernels/lif_autograd.cpp) compiles against this PyTorch with no CUDA toolkit."""
    import shutil

    from tfbench.ops.lif import fast

    if shutil.which("c++") is None and shutil.which("g++") is None and os.environ.get("CI") != "true":
        pytest.skip("no C++ compiler")
    ext = fast.extension()
    assert ext is not None, fast.reason()
    assert hasattr(ext, "lif") and hasattr(ext, "make_config")
