"""Run-time compilation of tfbench's CUDA sources with NVRTC, and their loading through the driver API.

Why this route: a CUDA build of PyTorch already installs NVRTC (the ``nvidia-cuda-nvrtc`` wheel)
and the NVIDIA driver ships ``libcuda``. Both are reached here through ``ctypes``, so a user needs
no nvcc, no CUDA toolkit, no CuPy and no C++ compiler, and the kernels are built for the GPU's own
architecture. Compiled cubins are cached on disk, keyed by the source hash, the options, the
architecture and the NVRTC version, so only the first process on a machine pays for the compile
(about 0.3 s per configuration).

The op's C++ launcher (kernels/tfbench_ops.cpp) asks for a configuration's kernels through
``tfbench::_kernels`` (``provide_kernels`` below) and launches them on PyTorch's current stream,
so they order with PyTorch's own work and can be captured in CUDA graphs.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import site
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "KernelBuildError",
    "kernels_dir",
    "nvrtc_version",
    "supported_archs",
    "compile_cubin",
    "CudaModule",
    "provide_kernels",
    "cache_dir",
]


class KernelBuildError(RuntimeError):
    """The fused kernel cannot be built or loaded on this machine; the message says why."""


def kernels_dir() -> Path:
    """The folder holding the CUDA sources: inside the installed package, or the repo's kernels/."""
    here = Path(__file__).resolve().parent.parent  # tfbench/
    for candidate in (here / "kernels", here.parent / "kernels"):
        if (candidate / "neurons.cu").is_file():
            return candidate
    raise KernelBuildError(f"tfbench's CUDA sources (neurons.cu) are missing: looked in {here / 'kernels'} "
                           f"and {here.parent / 'kernels'}; reinstall tfbench")


def cache_dir() -> Path:
    """Where compiled cubins are kept: $TFBENCH_CACHE_DIR, else ~/.cache/tfbench/kernels."""
    env = os.environ.get("TFBENCH_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfbench"
    return base / "kernels"


# ------------------------------------------------------------------------------------------------
# NVRTC
# ------------------------------------------------------------------------------------------------
_NVRTC: ctypes.CDLL | None = None
_NVRTC_LOCK = threading.Lock()


def _nvrtc_candidates() -> list[Path]:
    """Places where a CUDA build of torch puts libnvrtc (pip wheels), then the system's."""
    roots = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    roots += [Path(p) for p in sys.path if p.endswith("site-packages")]
    found: list[Path] = []
    for root in dict.fromkeys(roots):
        for pattern in ("nvidia/cu*/lib/libnvrtc.so*", "nvidia/cuda_nvrtc/lib/libnvrtc.so*"):
            found += [Path(p) for p in sorted(glob.glob(str(root / pattern)), reverse=True)]
    torch_lib = Path(torch.__file__).parent / "lib"
    found += [Path(p) for p in sorted(glob.glob(str(torch_lib / "libnvrtc*.so*")))]
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            found += [Path(p) for p in sorted(glob.glob(os.path.join(os.environ[env], "lib64", "libnvrtc.so*")))]
    found += [Path(p) for p in sorted(glob.glob("/usr/local/cuda/lib64/libnvrtc.so*"))]
    return [p for p in found if "builtins" not in p.name and ".alt." not in p.name]


def _load_nvrtc() -> ctypes.CDLL:
    global _NVRTC
    with _NVRTC_LOCK:
        if _NVRTC is not None:
            return _NVRTC
        errors = []
        for path in _nvrtc_candidates():
            try:
                # libnvrtc dlopens its builtins library by name; load it first from the same folder.
                for builtins in sorted(path.parent.glob("libnvrtc-builtins.so*")):
                    if ".alt." not in builtins.name:
                        ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
                lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                errors.append(f"{path}: {exc}")
                continue
            lib.nvrtcGetErrorString.restype = ctypes.c_char_p
            _NVRTC = lib
            return lib
        detail = "; ".join(errors) if errors else "no libnvrtc.so found"
        raise KernelBuildError("NVRTC is needed to build tfbench's CUDA kernel and was not found "
                               f"({detail}). A CUDA build of PyTorch installs it as the "
                               "'nvidia-cuda-nvrtc' package: pip install nvidia-cuda-nvrtc")


def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor) version."""
    lib = _load_nvrtc()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _nvrtc_check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def supported_archs() -> list[int]:
    """The SM architectures this NVRTC can compile for, e.g. [75, 80, ..., 121]."""
    lib = _load_nvrtc()
    count = ctypes.c_int()
    _nvrtc_check(lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
    archs = (ctypes.c_int * count.value)()
    _nvrtc_check(lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
    return list(archs)


def _nvrtc_check(code: int, what: str) -> None:
    if code != 0:
        message = _load_nvrtc().nvrtcGetErrorString(code).decode()
        raise KernelBuildError(f"{what} failed: {message}")


def _source_digest(source_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(source_dir.rglob("*.cu*")):
        digest.update(str(path.relative_to(source_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _target(arch: int) -> tuple[str, bool]:
    """The NVRTC --gpu-architecture for a GPU of this SM version, and whether it yields a cubin.

    A GPU newer than NVRTC knows gets PTX for the newest architecture NVRTC has (the driver
    compiles it); one older than the oldest it supports cannot run the kernel.
    """
    archs = supported_archs()
    if arch in archs:
        return f"sm_{arch}", True
    if arch < min(archs):
        major, minor = nvrtc_version()
        raise KernelBuildError(
            f"this GPU is sm_{arch}, older than NVRTC {major}.{minor} supports (sm_{min(archs)} to "
            f"sm_{max(archs)}): run tfbench on the CPU (device='cpu') or on a newer GPU")
    return f"compute_{max(a for a in archs if a < arch)}", False


def compile_cubin(source: str, arch: int, defines: dict[str, int | str], *,
                  use_cache: bool = True) -> tuple[bytes, bool]:
    """Compile ``kernels/<source>`` for SM ``arch`` with ``-D`` ``defines``.

    Returns (image, is_cubin): a cubin, or PTX text for a GPU newer than this NVRTC knows.
    Results are cached on disk; ``use_cache=False`` always compiles (CI uses it to check the source).
    """
    src_dir = kernels_dir()
    target, is_cubin = _target(arch)
    options = [f"--gpu-architecture={target}", "--std=c++17", f"--include-path={src_dir}"]
    options += [f"-D{k}={v}" for k, v in sorted(defines.items())]
    key_text = "|".join([_source_digest(src_dir), source, *options, ".".join(map(str, nvrtc_version()))])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    cached = cache_dir() / f"{Path(source).stem}-{target}-{key}.{'cubin' if is_cubin else 'ptx'}"
    if use_cache and cached.is_file():
        return cached.read_bytes(), is_cubin

    lib = _load_nvrtc()
    program = ctypes.c_void_p()
    code = (src_dir / source).read_bytes()
    _nvrtc_check(lib.nvrtcCreateProgram(ctypes.byref(program), code, source.encode(), 0, None, None),
                 "nvrtcCreateProgram")
    try:
        encoded = [o.encode() for o in options]
        result = lib.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        if result != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(program, log)
            raise KernelBuildError(f"NVRTC could not compile {source} for {target} with "
                                   f"{' '.join(options[3:])}:\n{log.value.decode(errors='replace')}")
        size = ctypes.c_size_t()
        if is_cubin:
            _nvrtc_check(lib.nvrtcGetCUBINSize(program, ctypes.byref(size)), "nvrtcGetCUBINSize")
            image = ctypes.create_string_buffer(size.value)
            _nvrtc_check(lib.nvrtcGetCUBIN(program, image), "nvrtcGetCUBIN")
        else:
            _nvrtc_check(lib.nvrtcGetPTXSize(program, ctypes.byref(size)), "nvrtcGetPTXSize")
            image = ctypes.create_string_buffer(size.value)
            _nvrtc_check(lib.nvrtcGetPTX(program, image), "nvrtcGetPTX")
        data = image.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))
    if use_cache:
        _write_atomic(cached, data)
    return data, is_cubin


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a compile per process


# ------------------------------------------------------------------------------------------------
# The driver API
# ------------------------------------------------------------------------------------------------
_CUDA: ctypes.CDLL | None = None


def _driver() -> ctypes.CDLL:
    global _CUDA
    if _CUDA is None:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            raise KernelBuildError(f"the NVIDIA driver library libcuda.so.1 could not be loaded: {exc}") from exc
        _CUDA = lib
    return _CUDA


def _cu_check(code: int, what: str) -> None:
    if code != 0:
        text = ctypes.c_char_p()
        _driver().cuGetErrorString(code, ctypes.byref(text))
        raise KernelBuildError(f"{what} failed: CUDA error {code} ({(text.value or b'?').decode()})")


@dataclass
class _Loaded:
    module: ctypes.c_void_p
    functions: dict[str, ctypes.c_void_p]


class CudaModule:
    """One compiled source, loaded once per device; its kernels' handles go to the C++ launcher."""

    def __init__(self, image: bytes, names: Sequence[str]):
        self._image = image
        self._names = tuple(names)
        self._per_device: dict[int, _Loaded] = {}
        self._lock = threading.Lock()

    def _load(self, device: int) -> _Loaded:
        with self._lock:
            loaded = self._per_device.get(device)
            if loaded is not None:
                return loaded
            lib = _driver()
            with torch.cuda.device(device):  # restores the caller's device afterwards
                _make_primary_context_current(device)  # the context torch uses, also on a fresh thread
                module = ctypes.c_void_p()
                _cu_check(lib.cuModuleLoadData(ctypes.byref(module), self._image), "cuModuleLoadData")
                functions = {}
                for name in self._names:
                    fn = ctypes.c_void_p()
                    _cu_check(lib.cuModuleGetFunction(ctypes.byref(fn), module, name.encode()),
                              f"cuModuleGetFunction({name})")
                    functions[name] = fn
            loaded = _Loaded(module, functions)
            self._per_device[device] = loaded
            return loaded


def _make_primary_context_current(device: int) -> None:
    """Make ``device``'s primary context (the one PyTorch uses) current on this thread."""
    lib = _driver()
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    _cu_check(lib.cuDeviceGet(ctypes.byref(dev), device), "cuDeviceGet")
    _cu_check(lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
    _cu_check(lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    lib.cuDevicePrimaryCtxRelease(dev)  # torch holds its own reference; this one was only to find it


_MODULES: dict[tuple[str, str, int], CudaModule] = {}


def provide_kernels(source: str, defines: str, kernels: str, device: int) -> list[int]:
    """``tfbench::_kernels``: the CUfunction handles (as ints) of ``kernels`` (space-separated names)
    in ``kernels/<source>`` compiled with ``defines`` ("NAME=VALUE ...") for ``device``'s GPU.

    Called by the op's C++ launcher on a configuration's first use; modules stay loaded for the process.
    """
    key = (source, defines, device)
    module = _MODULES.get(key)
    names = kernels.split()
    if module is None:
        major, minor = torch.cuda.get_device_capability(device)
        values = dict(item.split("=", 1) for item in defines.split())
        image, _ = compile_cubin(source, major * 10 + minor, values)
        module = _MODULES[key] = CudaModule(image, names)
    loaded = module._load(device)
    return [loaded.functions[name].value for name in names]
