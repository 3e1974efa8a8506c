"""The fused-neuron ops, registered once with PyTorch's dispatcher.

Two ops serve every neuron (the neuron is an argument: its name, constants and learnable tensors):

    tfbench::neuron_forward(x, v0, learned, neuron, constants, switches, save_input, want_v_last)
        -> (s, kept, v_T)
    tfbench::neuron_backward(gs, gv_T, kept, x, v0, learned, neuron, constants, switches, save_input,
                             want_gv0) -> (dL/dx, dL/dv0, [dL/dlearned])

``kept`` is what backward needs: h, the pre-reset membrane ``[T, *]`` in x's dtype
(``save_input=False``), or the membrane checkpoints ``[(T - 1) // CKPT, *]`` in float32 (float64
for float64 x) from which backward recomputes h from x (``save_input=True``). ``want_v_last=False``
gives an empty v_T (never written), ``want_gv0=False`` an empty dL/dv0.

The schemas are declared here, once, with their fake implementations (shapes for torch.compile);
kernels/tfbench_ops.cpp gives the CPU, CUDA and Autograd implementations (build.py builds it at
first use). The same registration serves eager calls, torch.compile(fullgraph=True) and CUDA
graphs, and ``torch.library.opcheck`` checks it (tests/ops). Where the C++ cannot be built,
fallback.py registers implementations over the reference instead (``IMPLEMENTATION`` says which
is in use and why).

Seven more serve the lean path (norm.py drives them): BatchNorm folded into the neuron, and spikes as bits:

    tfbench::norm_neuron_forward(z, residual, weight, bias, running_mean!, running_var!,
                                 num_batches_tracked!, learned, neuron, constants, switches,
                                 batch_stats, momentum, eps, want_bits, res_weight, res_bias,
                                 res_running_mean!, res_running_var!, res_num_batches_tracked!, res_norm,
                                 v0, want_v_last)
        -> (s, ckpt, stats [4, C] or [8, C], s's bits (pack_spikes's, from the same kernel) or [0], v_T or [0])
    tfbench::norm_neuron_backward(gs, ckpt, z, residual, stats, learned, neuron, constants, switches,
                                  batch_stats, want_gz, want_gres, want_gaffine, gz_out!, res_batch_stats,
                                  want_gres_affine, gv_T, v0, want_gv0)
        -> (dL/dz ([0] when written into gz_out), dL/dresidual, dL/dweight, dL/dbias, dL/dlearned (the
            one learned tensor's, or [0]), dL/dres_weight, dL/dres_bias, dL/dv0 or [0])
    tfbench::conv_norm_neuron(x, x_bits, conv_weight, weight, bias, residual, residual_bits, res_weight,
                              res_bias, (both BatchNorms' buffers)!, learned, neuron, constants, switches,
                              stride, padding, dilation, groups, steps, batch_stats, momentum, eps, res_norm,
                              split_backward_bytes, recompute, chunk_elements, pool, v0, want_v_last)
        -> (s or its max-pool, s's bits or [0], v_T [n] or [0])
        a convolution, then norm_neuron_forward (then a max-pool of spikes): one C++ autograd node, whose
        inner ops (these, ATen's convolutions) are called through the dispatcher: torch.compile traces it
    tfbench::pack_spikes(s) -> uint8 bits;  tfbench::unpack_spikes(bits, numel, dtype) -> [numel]
    tfbench::spike_max_pool2d(bits, shape, channels_last, dtype, kernel, stride, padding, dilation, out_hw)
        -> out;  tfbench::spike_max_pool2d_backward(gout, bits, shape, ...same) -> dL/dx

z is ``[T, M, C, inner]`` (BatchNorm's channel dim 2), the residual None, z-shaped, or bits; forward
updates the running statistics as ``nn.BatchNorm2d`` (momentum < 0: the cumulative average). With
``res_norm`` = [batch_stats, momentum, eps] the residual (z-shaped) is normalised by a BatchNorm of its own
first (the res_* arguments: a ResNet's downsample), whose rows follow z's in stats ([8, C]); backward
then returns dL/d(the residual's input) as dL/dresidual. ``v0`` (the membrane before the first step, one
value per neuron of a step in z's order: ``[M, C, inner]`` for the norm ops, ``[n]`` for the node; float32,
float64 for float64) and v_T (the membrane after the last) carry a layer across calls, as the neuron ops'
do (the temporal pipeline's segments): v0 None starts from rest, gv_T None is zero.

Two small ops support them: ``tfbench::_kernels`` (implemented here, in Python: the C++ launcher's
way to get a configuration's NVRTC-compiled kernels, jit.py) and ``tfbench::_set`` (the launch
shape and the tests' poisoned outputs, in the C++ or the fallback).
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from . import build, jit

# Steps per membrane checkpoint with save_input=True: kernels/neuron.cuh's TFB_CKPT (the reason is there).
CKPT = int(re.search(r"^#define TFB_CKPT (\d+)", (jit.kernels_dir() / "neuron.cuh").read_text(), re.M).group(1))

SCHEMAS = {
    "neuron_forward": "(Tensor x, Tensor? v0, Tensor[] learned, str neuron, float[] constants, int[] switches, "
                      "bool save_input, bool want_v_last) -> (Tensor, Tensor, Tensor)",
    "neuron_backward": "(Tensor? gs, Tensor? gv_last, Tensor kept, Tensor? x, Tensor? v0, Tensor[] learned, "
                       "str neuron, float[] constants, int[] switches, bool save_input, bool want_gv0) "
                       "-> (Tensor, Tensor, Tensor[])",
    "pack_spikes": "(Tensor s) -> Tensor",
    "unpack_spikes": "(Tensor bits, int numel, ScalarType dtype) -> Tensor",
    "spike_max_pool2d": "(Tensor bits, int[] shape, bool channels_last, ScalarType dtype, int[] kernel, int[] stride, "
                        "int[] padding, int[] dilation, int[] out_hw) -> Tensor",
    "spike_max_pool2d_backward": "(Tensor gout, Tensor bits, int[] shape, bool channels_last, int[] kernel, "
                                 "int[] stride, int[] padding, int[] dilation, int[] out_hw) -> Tensor",
    "norm_neuron_forward": "(Tensor z, Tensor? residual, Tensor? weight, Tensor? bias, Tensor(a!)? running_mean, "
                           "Tensor(b!)? running_var, Tensor(c!)? num_batches_tracked, Tensor[] learned, str neuron, "
                           "float[] constants, int[] switches, bool batch_stats, float momentum, float eps, "
                           "bool want_bits, Tensor? res_weight=None, Tensor? res_bias=None, "
                           "Tensor(d!)? res_running_mean=None, Tensor(e!)? res_running_var=None, "
                           "Tensor(f!)? res_num_batches_tracked=None, float[] res_norm=[], Tensor? v0=None, "
                           "bool want_v_last=False) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "norm_neuron_backward": "(Tensor? gs, Tensor ckpt, Tensor z, Tensor? residual, Tensor stats, Tensor[] learned, "
                            "str neuron, float[] constants, int[] switches, bool batch_stats, bool want_gz, "
                            "bool want_gres, bool want_gaffine, Tensor(a!)? gz_out, bool res_batch_stats=False, "
                            "bool want_gres_affine=False, Tensor? gv_last=None, Tensor? v0=None, bool want_gv0=False) "
                            "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
    "conv_norm_neuron": "(Tensor x, Tensor? x_bits, Tensor conv_weight, Tensor? weight, Tensor? bias, Tensor? residual, "
                        "Tensor? residual_bits, Tensor? res_weight, Tensor? res_bias, Tensor(a!)? running_mean, "
                        "Tensor(b!)? running_var, Tensor(c!)? num_batches_tracked, Tensor(d!)? res_running_mean, "
                        "Tensor(e!)? res_running_var, Tensor(f!)? res_num_batches_tracked, Tensor[] learned, "
                        "str neuron, float[] constants, int[] switches, int[] stride, int[] padding, int[] dilation, "
                        "int groups, int steps, bool batch_stats, float momentum, float eps, float[] res_norm, "
                        "int split_backward_bytes, bool recompute, int chunk_elements, int[] pool, Tensor? v0=None, "
                        "bool want_v_last=False) -> (Tensor, Tensor, Tensor)",
    "_kernels": "(str source, str defines, str kernels, int device) -> int[]",
    "_set": "(str key, int value) -> int",
}

LIBRARY = torch.library.Library("tfbench", "DEF")
for _name, _schema in SCHEMAS.items():
    LIBRARY.define(_name + _schema)


def ckpt_rows(steps: int) -> int:
    """Membrane checkpoints kept for ``steps`` time steps with save_input: one at each CKPT-th step
    boundary after 0 (the first segment starts from v0, which needs no copy); 0 when steps <= CKPT."""
    return (steps - 1) // CKPT


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.register_fake("tfbench::neuron_forward", lib=LIBRARY)
def _forward_fake(x, v0, learned, neuron, constants, switches, save_input, want_v_last):
    acc = _acc(x.dtype)
    kept = x.new_empty((ckpt_rows(x.shape[0]), *x.shape[1:]), dtype=acc) if save_input else x.new_empty(x.shape)
    v_last = x.new_empty(x.shape[1:] if want_v_last else (0,), dtype=acc)
    return x.new_empty(x.shape), kept, v_last


@torch.library.register_fake("tfbench::neuron_backward", lib=LIBRARY)
def _backward_fake(gs, gv_last, kept, x, v0, learned, neuron, constants, switches, save_input, want_gv0):
    like = x if save_input else kept
    gv0 = like.new_empty(like.shape[1:] if want_gv0 else (0,), dtype=_acc(like.dtype))
    return like.new_empty(like.shape), gv0, [w.new_empty(w.shape) for w in learned]


@torch.library.register_fake("tfbench::pack_spikes", lib=LIBRARY)
def _pack_fake(s):
    return s.new_empty(((s.numel() + 7) // 8,), dtype=torch.uint8)


@torch.library.register_fake("tfbench::unpack_spikes", lib=LIBRARY)
def _unpack_fake(bits, numel, dtype):
    return bits.new_empty((numel,), dtype=dtype)


def _map_fake(like: Tensor, shape, channels_last: bool, dtype: torch.dtype) -> Tensor:
    n, c, h, w = shape
    if channels_last:
        return like.new_empty((n, h, w, c), dtype=dtype).permute(0, 3, 1, 2)
    return like.new_empty((n, c, h, w), dtype=dtype)


@torch.library.register_fake("tfbench::spike_max_pool2d", lib=LIBRARY)
def _pool_fake(bits, shape, channels_last, dtype, kernel, stride, padding, dilation, out_hw):
    return _map_fake(bits, (shape[0], shape[1], *out_hw), channels_last, dtype)


@torch.library.register_fake("tfbench::spike_max_pool2d_backward", lib=LIBRARY)
def _pool_backward_fake(gout, bits, shape, channels_last, kernel, stride, padding, dilation, out_hw):
    return _map_fake(gout, shape, channels_last, gout.dtype)


@torch.library.register_fake("tfbench::norm_neuron_forward", lib=LIBRARY)
def _norm_forward_fake(z, residual, weight, bias, running_mean, running_var, num_batches_tracked, learned, neuron,
                       constants, switches, batch_stats, momentum, eps, want_bits, res_weight=None, res_bias=None,
                       res_running_mean=None, res_running_var=None, res_num_batches_tracked=None, res_norm=(), v0=None,
                       want_v_last=False):
    acc = _acc(z.dtype)
    ckpt = z.new_empty((ckpt_rows(z.shape[0]), *z.shape[1:]), dtype=acc)
    bits = z.new_empty(((z.numel() + 7) // 8 if want_bits else 0,), dtype=torch.uint8)
    v_last = z.new_empty(z.shape[1:] if want_v_last else (0,), dtype=acc)
    return z.new_empty(z.shape), ckpt, z.new_empty((8 if res_norm else 4, z.shape[2]), dtype=acc), bits, v_last


@torch.library.register_fake("tfbench::norm_neuron_backward", lib=LIBRARY)
def _norm_backward_fake(gs, ckpt, z, residual, stats, learned, neuron, constants, switches, batch_stats, want_gz,
                        want_gres, want_gaffine, gz_out, res_batch_stats=False, want_gres_affine=False, gv_last=None,
                        v0=None, want_gv0=False):
    acc = _acc(z.dtype)
    gz = z.new_empty(z.shape if want_gz and gz_out is None else (0,))   # into gz_out: none
    gres = z.new_empty(z.shape if want_gres else (0,))
    gaffine = [z.new_empty((z.shape[2],) if want_gaffine else (0,), dtype=acc) for _ in range(2)]
    gres_affine = [z.new_empty((z.shape[2],) if want_gres_affine and stats.shape[0] == 8 else (0,), dtype=acc)
                   for _ in range(2)]
    glearned = learned[0].new_empty(learned[0].shape) if learned else z.new_empty((0,), dtype=acc)
    gv0 = z.new_empty(z.shape[1:] if want_gv0 else (0,), dtype=acc)
    return gz, gres, *gaffine, glearned, *gres_affine, gv0


@torch.library.register_fake("tfbench::conv_norm_neuron", lib=LIBRARY)
def _conv_norm_fake(x, x_bits, conv_weight, weight, bias, residual, residual_bits, res_weight, res_bias, running_mean,
                    running_var, num_batches_tracked, res_running_mean, res_running_var, res_num_batches_tracked,
                    learned, neuron, constants, switches, stride, padding, dilation, groups, steps, batch_stats,
                    momentum, eps, res_norm, split_backward_bytes, recompute, chunk_elements, pool, v0=None,
                    want_v_last=False):
    z = torch.nn.functional.conv2d(x, conv_weight, None, stride, padding, dilation, groups)
    v_last = z.new_empty((z.numel() // steps if want_v_last else 0,), dtype=_acc(z.dtype))
    if pool:   # [kernel, stride, padding, dilation, out_hw], 2 each
        return z.new_empty((*z.shape[:2], *pool[8:10])), z.new_empty((0,), dtype=torch.uint8), v_last
    return torch.empty_like(z), z.new_empty(((z.numel() + 7) // 8,), dtype=torch.uint8), v_last


LIBRARY.impl("_kernels", jit.provide_kernels, "CompositeExplicitAutograd")

_REASON = build.load()
if _REASON is None:
    IMPLEMENTATION = "C++ (kernels/tfbench_ops.cpp: CPU host loops, CUDA NVRTC kernels, C++ autograd)"
else:
    from . import fallback

    fallback.register(LIBRARY)
    IMPLEMENTATION = f"fallback over the reference (fallback.py): {_REASON}"

FORWARD = torch.ops.tfbench.neuron_forward.default
BACKWARD = torch.ops.tfbench.neuron_backward.default
PACK_SPIKES = torch.ops.tfbench.pack_spikes.default
UNPACK_SPIKES = torch.ops.tfbench.unpack_spikes.default
SPIKE_MAX_POOL = torch.ops.tfbench.spike_max_pool2d.default
SPIKE_MAX_POOL_BACKWARD = torch.ops.tfbench.spike_max_pool2d_backward.default
NORM_FORWARD = torch.ops.tfbench.norm_neuron_forward.default
NORM_BACKWARD = torch.ops.tfbench.norm_neuron_backward.default
CONV_NORM_NEURON = torch.ops.tfbench.conv_norm_neuron.default


def native() -> bool:
    """Whether the C++ implementations are in use (else the fallback; IMPLEMENTATION says why)."""
    return _REASON is None


def set_option(key: str, value: int) -> int:
    """Set one of the launcher's settings (block, unroll, vec_bytes, min_threads_per_sm, vec, epilogue_bytes,
    poison); returns the previous value. ``value < 0`` only reads it."""
    return torch.ops.tfbench._set(key, int(value))


def forward(x: Tensor, v0: Tensor | None, learned: list[Tensor], neuron: str, constants: list[float],
            switches: list[int], save_input: bool, want_v_last: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``tfbench::neuron_forward`` (its docstring at the top of this module)."""
    return FORWARD(x, v0, learned, neuron, constants, switches, save_input, want_v_last)


def backward(gs: Tensor | None, gv_last: Tensor | None, kept: Tensor, x: Tensor | None, v0: Tensor | None,
             learned: list[Tensor], neuron: str, constants: list[float], switches: list[int], save_input: bool,
             want_gv0: bool) -> tuple[Tensor, Tensor, list[Tensor]]:
    """``tfbench::neuron_backward`` (its docstring at the top of this module)."""
    return BACKWARD(gs, gv_last, kept, x, v0, learned, neuron, constants, switches, save_input, want_gv0)
