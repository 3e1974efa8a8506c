"""BatchNorm folded into a fused neuron, and spikes kept as bits: the training step's lean path.

``norm_neuron(z, bn, p, learned)`` is ``neuron(bn(z) + residual)`` for a multi-step neuron
description ``p`` (``LIFParams``, ``PLIFParams``) and an ``nn.BatchNorm2d``-like ``bn``, in four
kernel passes over z in training (two forward, two backward) instead of BatchNorm's and the
neuron's seven or eight (docs/neurons.md, "BatchNorm folded in"):

- forward: the statistics (one kernel pass: per neuron the mean over T and the squared deviations,
  then one block per channel combines them exactly and updates the running statistics as
  ``nn.BatchNorm2d`` does), then one kernel that normalises, adds the residual and runs the neuron;
- backward: the neuron's backward from z and the membrane checkpoints (``save="input"``'s
  recomputation) for the two per-channel sums BatchNorm's backward needs (sum gy and
  sum gy * (z - mean)), then dL/dz, ``gy * scale + (z - mean) * ea + eb``: elementwise from the gy that
  first pass stored (as the residual's gradient, or for a small z in a buffer of its own), else in a
  second recomputing pass.

What backward keeps is z (the convolution's output, which BatchNorm keeps too), the float32
membrane every CKPT steps and, for an identity shortcut of spikes, those spikes as bits. BatchNorm's
output and the neuron's input are never stored. ``conv_norm_neuron(conv, x, bn, p, learned, T, ...)``
is the convolution before it and the whole layer in one autograd node (a C++ one,
``tfbench::conv_norm_neuron``, for a convolution of spikes: no Python per layer in the step): it keeps x's
bits when x is spikes, and its forward kernel writes its own spikes' bits beside them (``pack_spikes`` of those spikes
then returns them: the next layer keeps them without a pass of its own); for the stem it keeps x alone
(in the convolution's dtype, or its bits when x is spikes) and runs the convolution again in backward,
a slice of the batch at a time (``CONV_CHUNK_ELEMENTS``:
cuDNN's workspace a slice's), and may take the max-pool after the neuron into the same node. Its
backward writes dL/dz over z.

``z`` is a ``[T, M, C, inner]`` view (``time_major``): channel dim 2, inner = H*W for NCHW
memory, 1 for channels-last. ``pack_spikes``/``unpack_spikes`` keep a 0/1 tensor as bits in its
memory order (element e is bit e % 8 of byte e // 8); ``spike_conv2d`` is a convolution of spikes that
keeps its input as those bits for backward (through PyTorch's convolution backward), ``spike_max_pool2d``
a max-pool of spikes read from their bits both ways (kernels/spike_pool.cuh: no int64 indices).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import library
from .functional import kernel_args
from .neurons import NeuronParams


def available() -> str | None:
    """Why the lean path cannot run here (it needs the C++ ops: the fallback has no norm ops), or None."""
    return None if library.native() else f"the lean path needs tfbench's C++ ops ({library.IMPLEMENTATION})"


def pack_spikes(s: Tensor) -> Tensor:
    """A 0/1 tensor as bits, in its memory order: uint8 ``[ceil(numel / 8)]`` (element e is bit e % 8
    of byte e // 8; any non-zero value is a 1). One kernel pass (``tfbench::pack_spikes``), or none for
    spikes ``conv_norm_neuron`` made: their bits, which its kernel wrote beside them, while s is unchanged
    (the same tensor to every caller: not to be changed in place)."""
    if not torch.compiler.is_compiling():   # (a compiled graph packs: the memo is not traceable)
        known = _KNOWN_BITS.get(id(s))
        if known is not None and known[0]() is s and known[1] == s._version:
            return known[2]
    return library.PACK_SPIKES(_memory_order(s))


# Spikes whose bits were written with them: id(s) -> (a weak reference to s, s's version then, the bits).
# An entry goes when its s does; one whose s was changed in place since is not used.
_KNOWN_BITS: dict[int, tuple[weakref.ref, int, Tensor]] = {}


def _remember_bits(s: Tensor, bits: Tensor) -> None:
    # not under torch.compile (ids and weak references are not traceable), nor for an inference tensor (no
    # version counter to tell a changed s by)
    if torch.compiler.is_compiling() or s.is_inference():
        return
    key = id(s)

    def forget(ref: weakref.ref) -> None:
        entry = _KNOWN_BITS.get(key)
        if entry is not None and entry[0] is ref:   # not a newer s that took the same id
            _KNOWN_BITS.pop(key, None)

    _KNOWN_BITS[key] = (weakref.ref(s, forget), s._version, bits)


def unpack_spikes(bits: Tensor, like_shape: Sequence[int], dtype: torch.dtype, channels_last: bool) -> Tensor:
    """The tensor ``pack_spikes`` packed: shape ``like_shape``, ``dtype``, channels-last memory when
    ``channels_last`` (a 4-D shape), else contiguous."""
    shape = list(like_shape)
    ones = library.UNPACK_SPIKES(bits, math.prod(shape), dtype)
    if channels_last:
        n, c, h, w = shape
        return ones.view(n, h, w, c).permute(0, 3, 1, 2)
    return ones.view(shape)


def _memory_order(x: Tensor) -> Tensor:
    """x as the contiguous tensor its memory holds: itself, or a channels-last 4-D tensor permuted to NHWC."""
    if x.is_contiguous():
        return x
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1)
    return x.contiguous()


def is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def time_major(x: Tensor, steps: int, channels_last: bool | None = None) -> Tensor:
    """``[T*B, C, H, W]`` (NCHW or channels-last memory) as the ``[T, M, C, inner]`` view the norm ops
    take, no copy: ``[T, B, C, H*W]`` for NCHW, ``[T, B*H*W, C, 1]`` for channels-last (``channels_last``:
    x's format when known, else read from x)."""
    if x.dim() != 4:
        raise ValueError(f"the lean path takes [T*B, C, H, W] feature maps, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if is_channels_last(x) if channels_last is None else channels_last:
        return x.permute(0, 2, 3, 1).view(steps, (n // steps) * h * w, c, 1)
    return x.contiguous().view(steps, n // steps, c, h * w)


def from_time_major(y: Tensor, like: Tensor, channels_last: bool | None = None) -> Tensor:
    """The inverse of ``time_major`` for a tensor of ``like``'s shape and memory format (``channels_last``:
    that format when known)."""
    n, c, h, w = like.shape
    if is_channels_last(like) if channels_last is None else channels_last:
        return y.view(n, h, w, c).permute(0, 3, 1, 2)
    return y.view(n, c, h, w)


def _statistics(bn) -> tuple[bool, Tensor | None, Tensor | None, Tensor | None, float]:
    """How the norm ops use ``bn``'s statistics, as nn.BatchNorm2d does: the batch's in training or without
    running statistics (updating those when tracked), else the running ones. Returns (the batch's or not,
    the running mean and variance to read or update or None, num_batches_tracked to count or None, the
    momentum: < 0 for None, the cumulative average)."""
    batch = bn.training or not bn.track_running_stats
    update = bn.training and bn.track_running_stats
    given = update or not batch
    momentum = -1.0 if bn.momentum is None else float(bn.momentum)
    return (batch, bn.running_mean if given else None, bn.running_var if given else None,
            bn.num_batches_tracked if update else None, momentum)


def _residual_statistics(residual_bn) -> tuple[Tensor | None, Tensor | None, Tensor | None, list[float]]:
    """A residual BatchNorm's ``_statistics`` as the norm ops take them: (running mean, running variance,
    num_batches_tracked, res_norm = [the batch's statistics or not, momentum, eps])."""
    batch, mean, var, batches, momentum = _statistics(residual_bn)
    return mean, var, batches, [float(batch), momentum, float(residual_bn.eps)]


class _NormNeuron(torch.autograd.Function):
    """neuron(BatchNorm(z) + residual): one op each way (kernels/tfbench_ops.cpp, NormOp)."""

    @staticmethod
    def forward(ctx, z, residual, weight, bias, res_weight, res_bias, bits, bn, residual_bn, neuron, constants,
                switches, *learned):
        kept_res = bits if bits is not None else residual
        batch, mean, var, batches, momentum = _statistics(bn)
        res_mean, res_var, res_batches, res_norm = (None, None, None, []) if residual_bn is None else \
            _residual_statistics(residual_bn)
        s, ckpt, stats, _, _ = library.NORM_FORWARD(
            z, kept_res, weight, bias, mean, var, batches, list(learned), neuron, constants, switches, batch, momentum,
            float(bn.eps), False, res_weight, res_bias, res_mean, res_var, res_batches, res_norm)
        ctx.save_for_backward(z, kept_res, ckpt, stats, *learned)
        ctx.batch, ctx.res_batch = batch, bool(res_norm and res_norm[0])
        ctx.neuron, ctx.constants, ctx.switches = neuron, constants, switches
        ctx.has_residual = residual is not None
        ctx.affine, ctx.res_affine = weight is not None, residual_bn is not None and res_weight is not None
        ctx.mark_non_differentiable(ckpt)
        ctx.set_materialize_grads(False)
        return s

    @staticmethod
    def backward(ctx, gs):
        z, kept_res, ckpt, stats, *learned = ctx.saved_tensors
        want_gres = ctx.has_residual and ctx.needs_input_grad[1]
        want_affine = ctx.affine and (ctx.needs_input_grad[2] or ctx.needs_input_grad[3])
        want_res_affine = ctx.res_affine and (ctx.needs_input_grad[4] or ctx.needs_input_grad[5])
        gz, gres, gweight, gbias, glearned, gres_weight, gres_bias, _ = library.NORM_BACKWARD(
            gs, ckpt, z, kept_res, stats, list(learned), ctx.neuron, ctx.constants, ctx.switches, ctx.batch,
            ctx.needs_input_grad[0], want_gres, want_affine, None, ctx.res_batch, want_res_affine)
        return (gz if ctx.needs_input_grad[0] else None, gres if want_gres else None,
                gweight if want_affine else None, gbias if want_affine else None,
                gres_weight if want_res_affine else None, gres_bias if want_res_affine else None,
                None, None, None, None, None, None, *([glearned] if learned and glearned.numel() else [None] * len(learned)))


def norm_neuron(z: Tensor, bn: nn.modules.batchnorm._BatchNorm, p: NeuronParams, learned: Sequence[Tensor] = (),
                residual: Tensor | None = None, residual_bits: Tensor | None = None,
                residual_bn: nn.modules.batchnorm._BatchNorm | None = None) -> Tensor:
    """Spikes of ``neuron(bn(z) + residual)``, all T steps fused; ``z`` ``[T, M, C, inner]`` (``time_major``).

    ``bn``: the ``nn.BatchNorm2d`` whose parameters and running statistics are used and updated as its
    own forward would (batch statistics in training or without running statistics, else the running
    ones; momentum None is the cumulative average). ``p``/``learned``: the neuron (``LIFParams``,
    ``PLIFParams`` with its ``w``). ``residual``: None, or a tensor of z's shape added before the
    neuron; when it is spikes, ``residual_bits`` (``pack_spikes`` of it) is what is read and kept.
    ``residual_bn``: a BatchNorm applied to the residual first, folded in as bn is (``residual_bn(residual)``
    is never stored: a ResNet's downsample). Returns spikes of z's shape and dtype; gradients flow to z,
    the residual, both BatchNorms' weight and bias, and the learned tensors.
    """
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    if residual_bn is not None and not _folds_residual_bn(residual, residual_bits, z.shape[0]):
        # BatchNorm over dim 1 of [T*M, C, inner, 1]: z's channels
        residual, residual_bn = residual_bn(residual.flatten(0, 1).unsqueeze(-1)).view(residual.shape), None
    constants, switches = kernel_args(p)
    rw, rb = (None, None) if residual_bn is None else (residual_bn.weight, residual_bn.bias)
    return _NormNeuron.apply(z, residual, bn.weight, bn.bias, rw, rb, residual_bits, bn, residual_bn, p.name,
                             constants, switches, *learned)


# The most steps for which a residual's BatchNorm is folded in (the epilogue's grid: a step per blockIdx.y,
# kernels/tfbench_ops.cpp's kGridY); longer runs apply it first, as nn.BatchNorm2d.
FOLDED_RESIDUAL_BN_STEPS = 65535


def _folds_residual_bn(residual: Tensor | None, residual_bits: Tensor | None, steps: int) -> bool:
    """Whether a residual BatchNorm is folded in for these steps; ValueError where there is no dense residual
    for it to normalise."""
    if residual is None or residual_bits is not None:
        raise ValueError("a residual BatchNorm normalises a dense residual: give the residual (its input) and no "
                         "residual_bits")
    return steps <= FOLDED_RESIDUAL_BN_STEPS


# Bytes of unpacked input from which a node's convolution backward is two calls, dL/dw and then dL/dx
# with the input freed between them, instead of one: the large stages' inputs then do not live beside
# dL/dx and its cuDNN workspace (the step's peak is in their backward); for the small ones a second
# call's host time (~0.1 ms on a slow host) costs more than the bytes it frees. Measured against 64 MiB
# (no split at T = 32): the same step time, +9 MiB of bf16 peak and +22 of fp32 (kernels/NOTES.md,
# version 18).
SPLIT_BACKWARD_BYTES = 8 * 2**20

# Elements of a recomputed convolution's output per call: the stem's convolution (forward, its
# recomputation and its backward) runs a slice of the batch at a time, so that cuDNN's workspace (with
# NCHW memory, copies of the slice in NHWC) is a slice's, not the whole batch's. A count, not bytes: the
# forward and the recomputation cut the batch into the same slices whatever the dtypes. At T = 32, batch
# 100 the stem's output (52 M elements) is two slices: one (64 M) was 0.3 ms a step faster on the GPU but
# raised the harness's bf16 peak from 548 to 665 MiB; four (16 M) cost six cuDNN calls and 0.2 ms more
# (kernels/NOTES.md, version 18).
CONV_CHUNK_ELEMENTS = 32 * 2**20


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a convolution of float tensor x computes in: autocast's when it is on (it casts every
    floating input but float64), else x's."""
    device = x.device.type
    if x.is_floating_point() and x.dtype != torch.float64 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def conv_norm_neuron(conv: nn.Conv2d, x: Tensor, bn: nn.modules.batchnorm._BatchNorm, p: NeuronParams,
                     learned: Sequence[Tensor], steps: int, x_bits: Tensor | None = None,
                     residual: Tensor | None = None, residual_bits: Tensor | None = None,
                     pool: nn.MaxPool2d | None = None, recompute: bool | None = None,
                     residual_bn: nn.modules.batchnorm._BatchNorm | None = None, v0: Tensor | None = None,
                     return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Spikes of ``neuron(bn(conv(x)) + residual)`` for x ``[T*B, C, H, W]``: a convolution, then
    ``norm_neuron``, as one autograd node.

    ``x_bits``: ``pack_spikes(x)`` when x is spikes; backward then keeps those bits and conv(x) (as
    BatchNorm would), not x. Without them it keeps x and runs the convolution again in backward instead
    of keeping its output (the stem's: its input, the encoded image, is then kept in the convolution's
    dtype, autocast's when on, and need not outlive the forward elsewhere). ``residual``:
    None or a tensor of the output's shape ``[T*B, C', H', W']``, read as its bits ``residual_bits``
    (in the output's memory format) when given. ``pool``: a max-pool of the spikes in the same node, whose
    backward then holds dL/ds only while it is needed (the stem's: conv, BatchNorm, neuron, max-pool); the
    result is the pooled spikes (with ``recompute`` only). ``recompute``: run the convolution again in
    backward instead of keeping its output (default: when there are no bits); with bits, only the bits are
    kept and the convolution's input is unpacked from them for it (the stem, when its input is spikes).
    The node is C++ (``tfbench::conv_norm_neuron``). ``residual_bn``: a BatchNorm
    of the residual's channels applied to it first, folded in (its output never stored: the downsample's;
    up to ``FOLDED_RESIDUAL_BN_STEPS`` steps, applied as a module beyond). ``conv`` without bias, zero
    padding given as numbers.

    ``v0``: the membrane before the first step, ``[n]`` for the ``n = conv_neurons(conv, x, steps)`` neurons of a
    step in the convolution output's memory order (float32; float64 for float64), or None (rest);
    ``return_state``: also return the membrane after the last step, ``(spikes, v_T)`` with v_T ``[n]``. Gradients
    flow through both: a layer's steps can be split across calls (the temporal pipeline's segments)."""
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    if conv.bias is not None or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("conv_norm_neuron takes a convolution without bias and with numeric zero padding")
    if steps < 1 or x.dim() != 4 or x.shape[0] % steps:
        raise ValueError(f"conv_norm_neuron takes x of shape [T*B, C, H, W] with T = steps >= 1 dividing its first "
                         f"dimension, got shape {tuple(x.shape)} and steps {steps}")
    if v0 is not None and (v0.dim() != 1 or v0.numel() != conv_neurons(conv, x, steps)):
        raise ValueError(f"conv_norm_neuron's v0 is [n] for the n = {conv_neurons(conv, x, steps)} neurons of a step, "
                         f"in the convolution output's memory order; got shape {tuple(v0.shape)}")
    recompute = x_bits is None if recompute is None else recompute
    if not recompute and x_bits is None:
        raise ValueError("conv_norm_neuron keeps the convolution's output only with its input's bits (x_bits): "
                         "without them it recomputes the output (recompute=True)")
    if pool is not None and not recompute:
        raise ValueError("conv_norm_neuron takes the max-pool into a node that recomputes its convolution (the "
                         "stem's): pool needs recompute=True")
    if residual_bn is not None and not _folds_residual_bn(residual, residual_bits, steps):
        residual, residual_bn = residual_bn(residual), None
    constants, switches = kernel_args(p)
    rw, rb = (None, None) if residual_bn is None else (residual_bn.weight, residual_bn.bias)
    batch, mean, var, batches, momentum = _statistics(bn)
    res_stats = (None, None, None, []) if residual_bn is None else _residual_statistics(residual_bn)
    pool_args = []
    if pool is not None:   # the output's [Ho, Wo] checked here (what kernels/spike_pool.cuh cannot pool: ValueError)
        pa = _pool_args(pool)
        pool_args = [v for a in pa[:4] for v in _pair(a)] + _pool_out_hw(conv_output_shape(conv, x), pa)
    s, s_bits, v_last = library.CONV_NORM_NEURON(
        x, x_bits, conv.weight, bn.weight, bn.bias, residual, residual_bits, rw, rb, mean, var, batches,
        *res_stats[:3], list(learned), p.name, constants, switches, list(conv.stride), list(conv.padding),
        list(conv.dilation), conv.groups, steps, batch, momentum, float(bn.eps), res_stats[3], SPLIT_BACKWARD_BYTES,
        recompute, CONV_CHUNK_ELEMENTS, pool_args, v0, return_state)
    if pool is None:   # the next layer's pack_spikes(s) takes these
        _remember_bits(s, s_bits)
    return (s, v_last) if return_state else s


def conv_output_shape(conv: nn.Conv2d, x: Tensor) -> list[int]:
    """``[N, C_out, H_out, W_out]`` of ``conv(x)`` for x ``[N, C, H, W]`` (numeric padding), without running it."""
    pad, dil, ker, st = (_pair(a) for a in (conv.padding, conv.dilation, conv.kernel_size, conv.stride))
    return [x.shape[0], conv.out_channels] + [(x.shape[2 + d] + 2 * pad[d] - dil[d] * (ker[d] - 1) - 1) // st[d] + 1
                                              for d in (0, 1)]


def conv_neurons(conv: nn.Conv2d, x: Tensor, steps: int) -> int:
    """The neurons of one step of ``conv_norm_neuron(conv, x, ..., steps)``: the length of its v0 and v_T."""
    n, c, h, w = conv_output_shape(conv, x)
    return n // steps * c * h * w


class _SpikeConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, weight, bias, stride, padding, dilation, groups):
        wc = weight.to(_compute_dtype(x))   # in autocast's dtype, when on: cast once, kept for backward
        out = F.conv2d(x, wc, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(bits, wc, bias)
        ctx.shape, ctx.dtype, ctx.channels_last = tuple(x.shape), out.dtype, is_channels_last(x)
        ctx.weight_dtype = weight.dtype
        ctx.conv = stride, padding, dilation, groups
        return out

    @staticmethod
    def backward(ctx, gout):
        bits, wc, bias = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        x = unpack_spikes(bits, ctx.shape, ctx.dtype, ctx.channels_last)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[2], bias is not None and ctx.needs_input_grad[3]]
        gx, gw, gb = torch.ops.aten.convolution_backward(gout.to(ctx.dtype), x, wc,
                                                         None if bias is None else list(bias.shape), stride, padding,
                                                         dilation, False, [0, 0], groups, mask)
        gw = gw.to(ctx.weight_dtype) if gw is not None else None
        gb = gb.to(bias.dtype) if gb is not None else None
        return gx, None, gw, gb, None, None, None, None


def spike_conv2d(conv: nn.Conv2d, x: Tensor, bits: Tensor) -> Tensor:
    """``conv(x)`` for spikes ``x`` (0/1) whose bits (``pack_spikes(x)``) are what backward keeps
    instead of x (1/32 of its float32 bytes); the same forward and gradients as ``conv(x)``."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"spike_conv2d takes zero padding given as numbers, got {conv.padding!r} "
                         f"/ {conv.padding_mode}")
    return _SpikeConv.apply(x, bits, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class _SpikeMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, kernel, stride, padding, dilation, ceil_mode):
        ctx.save_for_backward(bits)
        ctx.shape, ctx.dtype, ctx.channels_last = tuple(x.shape), x.dtype, is_channels_last(x)
        ctx.pool = kernel, stride, padding, dilation, ceil_mode
        return _pool_forward(bits, ctx.shape, x.dtype, ctx.channels_last, ctx.pool)

    @staticmethod
    def backward(ctx, gout):
        (bits,) = ctx.saved_tensors
        return _pool_backward(gout, bits, ctx.shape, ctx.dtype, ctx.channels_last, ctx.pool), None, None, None, \
            None, None, None


def _pool_out_hw(shape: Sequence[int], pool: tuple) -> list[int]:
    """[Ho, Wo] of ``F.max_pool2d(x, *pool)`` for x of ``shape`` [N, C, H, W] (PyTorch's formula, ceil_mode too);
    ValueError for what kernels/spike_pool.cuh cannot pool."""
    kernel, stride, padding, dilation, ceil_mode = (_pair(a) if k < 4 else a for k, a in enumerate(pool))
    out = []
    for d in (0, 1):
        size, k, st, p, dl = shape[2 + d], kernel[d], stride[d], padding[d], dilation[d]
        o = (size + 2 * p - dl * (k - 1) - 1 + (st - 1 if ceil_mode else 0)) // st + 1
        if ceil_mode and (o - 1) * st >= size + p:   # the last window must start inside the input or its padding
            o -= 1
        # a dilated window may hold no element of the input at all (PyTorch's max is then -inf, and its
        # backward writes out of bounds): refused. Undilated, every window holds one (padding <= kernel / 2).
        if dl > 1 and not all(any(0 <= j * st - p + i * dl < size for i in range(k)) for j in range(o)):
            raise ValueError(f"a max-pool of spikes needs every window to hold an element of the input: kernel "
                             f"{kernel}, dilation {dilation}, padding {padding} leave one all padding on a "
                             f"{shape[2]}x{shape[3]} input")
        out.append(o)
    if shape[1] * max(shape[2] * shape[3], out[0] * out[1]) > 65535 * 256:   # spike_pool.cu's grid: image x 256
        raise ValueError(f"a max-pool of spikes takes images of at most {65535 * 256:,} elements a pass, got "
                         f"{list(shape[1:])} -> {out}")
    return out


def _pool_forward(bits: Tensor, shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool,
                  pool: tuple) -> Tensor:
    """``max_pool2d(x, *pool)`` of spikes x ``shape`` read from their ``bits`` (no indices: a window's
    maximum is 1 when any of its spikes is), in x's memory format; one kernel pass (kernels/spike_pool.cuh)."""
    kernel, stride, padding, dilation, _ = pool
    return library.SPIKE_MAX_POOL(bits, list(shape), channels_last, dtype, _pair(kernel), _pair(stride),
                                  _pair(padding), _pair(dilation), _pool_out_hw(shape, pool))


def _pool_backward(gout: Tensor, bits: Tensor, shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool,
                   pool: tuple) -> Tensor:
    """dL/dx of ``max_pool2d(x, *pool)`` for spikes x ``shape`` kept as ``bits``, in x's memory format and
    gout's dtype cast to ``dtype``: each window's maximum found again from the bits where PyTorch's max-pool
    puts it, and dL/dout gathered in its order; one kernel pass, no unpacked input, no indices."""
    kernel, stride, padding, dilation, _ = pool
    return library.SPIKE_MAX_POOL_BACKWARD(gout.to(dtype), bits, list(shape), channels_last, _pair(kernel),
                                           _pair(stride), _pair(padding), _pair(dilation),
                                           _pool_out_hw(shape, pool))


def _pair(v) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def spike_max_pool2d(pool: nn.MaxPool2d, x: Tensor, bits: Tensor) -> Tensor:
    """``pool(x)`` for spikes ``x`` read from their bits (``pack_spikes(x)``), which are all backward keeps:
    each window's maximum is found again from them where PyTorch's max-pool puts it (its first 1, else
    its first element), so output and dL/dx are ``pool``'s bit for bit (kernels/spike_pool.cuh)."""
    return _SpikeMaxPool.apply(x, bits, *_pool_args(pool))


def _pool_args(pool: nn.MaxPool2d) -> tuple:
    """(kernel, stride, padding, dilation, ceil_mode) of ``pool``, as ``F.max_pool2d`` takes them."""
    if pool.return_indices:
        raise ValueError("a max-pool of spikes kept as bits does not return indices")
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    kernel, padding = _pair(pool.kernel_size), _pair(pool.padding)
    if kernel[0] * kernel[1] > 255:   # kernels/spike_pool.cuh keeps a window's maximum's place in one byte
        raise ValueError(f"a max-pool of spikes takes windows of at most 255 elements, got kernel {pool.kernel_size}")
    if any(p > k // 2 for k, p in zip(kernel, padding)):   # nn.MaxPool2d's own rule
        raise ValueError(f"a max-pool's padding must be at most half its kernel (as nn.MaxPool2d's), got padding "
                         f"{pool.padding} for kernel {pool.kernel_size}")
    return pool.kernel_size, stride, pool.padding, pool.dilation, pool.ceil_mode


__all__ = ["available", "conv_norm_neuron", "from_time_major", "is_channels_last", "norm_neuron", "pack_spikes",
           "spike_conv2d", "spike_max_pool2d", "time_major", "unpack_spikes"]
