"""NVRTC: the CUDA sources compile for the GPUs tfbench supports, on a machine without a GPU; the
op's C++ builds against this PyTorch with no CUDA toolkit."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tfbench.ops import jit

KERNELS = ("tfb_forward", "tfb_backward", "tfb_forward_ckpt", "tfb_backward_recompute")
STORAGE_SIZE = {0: 4, 1: 2, 2: 2, 3: 8}  # TFB_STORAGE -> bytes


def _nvrtc_or_skip():
    try:
        return jit.nvrtc_version()
    except jit.KernelBuildError as exc:
        if os.environ.get("CI") == "true":
            raise  # CI installs a CUDA build of torch: NVRTC must be there
        pytest.skip(str(exc))


def _defines(neuron="LIF", storage=0, decay=1, hard=1, detach=0, surrogate=0, vec=1, unroll=4) -> dict[str, int]:
    return {"TFB_NEURON": neuron, "TFB_STORAGE": storage, "TFB_DECAY_INPUT": decay, "TFB_HARD_RESET": hard,
            "TFB_DETACH_RESET": detach, "TFB_SURROGATE": surrogate, "TFB_VEC": vec, "TFB_UNROLL": unroll}


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("neuron", ["LIF", "PLIF"])
def test_every_configuration_compiles(arch, neuron):
    """Every dtype at every vector width the launcher picks, and every switch combination in fp32; for
    PLIF on sm_80 (its code is the same as on sm_90) only the widest fp32 and bf16 kernels, to save CI time."""
    _nvrtc_or_skip()
    configs = [_defines(neuron, st, vec=vec) for st in STORAGE_SIZE for vec in (1, 2, 4, 8)
               if vec * STORAGE_SIZE[st] <= 16]
    configs += [_defines(neuron, 0, d, h, det, sg) for d, h, det, sg in itertools.product((1, 0), (1, 0), (0, 1), (0, 1, 2))]
    if neuron == "PLIF" and arch == 80:
        configs = [_defines(neuron, 0, vec=4), _defines(neuron, 1, vec=8)]
    # NVRTC runs outside the GIL (ctypes releases it): compile on every core, as CI has two
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        images = list(pool.map(lambda d: jit.compile_cubin("neurons.cu", arch, d, use_cache=False), configs))
    for defines, (image, is_cubin) in zip(configs, images):
        assert is_cubin and image[:4] == b"\x7fELF", defines
        for name in KERNELS:  # both pairs: keeping h, and keeping x (recomputing h)
            assert name.encode() + b"\x00" in image, (name, defines)


@pytest.mark.parametrize("arch", [80, 90])
def test_spike_pool_compiles(arch):
    """kernels/spike_pool.cu, the max-pool of spikes read from bits, in every storage dtype."""
    _nvrtc_or_skip()
    for storage in STORAGE_SIZE:
        image, is_cubin = jit.compile_cubin("spike_pool.cu", arch, {"TFB_STORAGE": storage}, use_cache=False)
        assert is_cubin and image[:4] == b"\x7fELF", storage
        for name in ("tfb_pool_forward", "tfb_pool_codes", "tfb_pool_backward"):
            assert name.encode() + b"\x00" in image, (name, storage)


@pytest.mark.parametrize("neuron, storage, vec", [("LIF", 0, 4), ("LIF", 1, 8), ("PLIF", 0, 4), ("PLIF", 1, 8),
                                                  ("LIF", 3, 2)])
def test_kernels_do_not_spill(neuron, storage, vec):
    """At the widths the launcher picks (16-byte accesses) no kernel spills to local memory (ptxas's
    own report); the recompute backward holds CKPT x vec membranes in registers."""
    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None)
    if nvcc is None or not os.path.exists(nvcc):
        pytest.skip("no nvcc to report register use")
    defines = [f"-D{k}={v}" for k, v in _defines(neuron, storage, vec=vec).items()]
    out = subprocess.run([nvcc, "-cubin", "-arch=sm_90", "-std=c++17", "-Xptxas", "-v", *defines,
                          f"-I{jit.kernels_dir()}", str(jit.kernels_dir() / "neurons.cu"), "-o", os.devnull],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = out.stderr
    for name in KERNELS:
        section = report[report.index(f"'{name}'"):]
        frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", section)
        assert frame and frame.groups() == ("0", "0", "0"), section[:400]


def test_disk_cache_reuses_and_keys_on_options(tmp_path, monkeypatch):
    _nvrtc_or_skip()
    monkeypatch.setenv("TFBENCH_CACHE_DIR", str(tmp_path))
    d = _defines()
    jit.compile_cubin("neurons.cu", 90, d)
    files = list((tmp_path / "kernels").iterdir())
    assert len(files) == 1
    files[0].write_bytes(b"\x7fELF-cached")  # the second call must read the cache, not compile
    assert jit.compile_cubin("neurons.cu", 90, d)[0] == b"\x7fELF-cached"
    jit.compile_cubin("neurons.cu", 90, {**d, "TFB_SURROGATE": 1})
    assert len(list((tmp_path / "kernels").iterdir())) == 2


def test_cache_key_covers_the_neuron_headers(tmp_path, monkeypatch):
    """Editing a neuron's header (kernels/neurons/) changes the key: no stale kernel from the cache."""
    src = tmp_path / "src"
    shutil.copytree(jit.kernels_dir(), src, ignore=shutil.ignore_patterns("*.md", "*.cpp"))
    before = jit._source_digest(src)
    path = src / "neurons" / "plif.cuh"
    path.write_text(path.read_text() + "\n// edited\n")
    assert jit._source_digest(src) != before


def test_compile_error_is_reported_with_the_log():
    _nvrtc_or_skip()
    with pytest.raises(jit.KernelBuildError, match="TFB_STORAGE must be"):
        jit.compile_cubin("neurons.cu", 90, {"TFB_STORAGE": 9}, use_cache=False)


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
    root = jit.kernels_dir()
    for name in ("neurons.cu", "neuron.cuh", "neurons/all.cuh", "neurons/lif.cuh", "neurons/plif.cuh",
                 "tfbench_ops.cpp"):
        assert (root / name).is_file(), name


def test_the_cpp_ops_build():
    """The op's C++ (kernels/tfbench_ops.cpp) compiles against this PyTorch with no CUDA toolkit and
    gives the registered ops their implementations: CI must not silently run the fallback."""
    from tfbench.ops import library

    if shutil.which("c++") is None and shutil.which("g++") is None and os.environ.get("CI") != "true":
        pytest.skip("no C++ compiler")
    assert library.native(), library.IMPLEMENTATION
    assert library.set_option("block", -1) == 128
