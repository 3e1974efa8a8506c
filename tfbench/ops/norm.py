"""BatchNorm folded into a fused neuron, and spikes kept as bits: the training step's lean path.

``norm_neuron(z, bn, p, learned)`` is ``neuron(bn(z) + residual)`` for a multi-step neuron
description ``p`` (``LIFParams``, ``PLIFParams``) and an ``nn.BatchNorm2d``-like ``bn``, in three
passes over z instead of BatchNorm's and the neuron's five or six (docs/neurons.md, "BatchNorm
folded in"):

- forward: the statistics (one kernel pass: per neuron the mean over T and the squared deviations,
  combined per channel exactly), then one kernel that normalises, adds the residual and runs the
  neuron; BatchNorm's running statistics are updated exactly as ``nn.BatchNorm2d`` updates them;
- backward: the neuron's backward twice from z and the membrane checkpoints (``save="input"``'s
  recomputation): first the two per-channel sums BatchNorm's backward needs (sum gy and
  sum gy * (z - mean)), then dL/dz in one fused epilogue, ``gy * scale + (z - mean) * ea + eb``.

What backward keeps is z (the convolution's output, which BatchNorm keeps too), the float32
membrane every CKPT steps and, for an identity shortcut of spikes, those spikes as bits. BatchNorm's
output and the neuron's input are never stored.

``z`` is a ``[T, M, C, inner]`` view (``time_major``): channel dim 2, inner = H*W for NCHW
memory, 1 for channels-last. ``pack_spikes``/``unpack_spikes`` keep a 0/1 tensor as bits in its
memory order (element e is bit e % 8 of byte e // 8); ``spike_conv2d`` and ``spike_max_pool2d`` are
a convolution and a max-pool of spikes that keep their input as those bits for backward, through
the same backward ops PyTorch uses.
"""

from __future__ import annotations

import math
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
    of byte e // 8; any non-zero value is a 1). One kernel pass (``tfbench::pack_spikes``)."""
    return library.PACK_SPIKES(_memory_order(s))


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


def time_major(x: Tensor, steps: int) -> Tensor:
    """``[T*B, C, H, W]`` (NCHW or channels-last memory) as the ``[T, M, C, inner]`` view the norm ops
    take, no copy: ``[T, B, C, H*W]`` for NCHW, ``[T, B*H*W, C, 1]`` for channels-last."""
    if x.dim() != 4:
        raise ValueError(f"the lean path takes [T*B, C, H, W] feature maps, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if is_channels_last(x):
        return x.permute(0, 2, 3, 1).view(steps, (n // steps) * h * w, c, 1)
    return x.contiguous().view(steps, n // steps, c, h * w)


def from_time_major(y: Tensor, like: Tensor) -> Tensor:
    """The inverse of ``time_major`` for a tensor of ``like``'s shape and memory format."""
    n, c, h, w = like.shape
    if is_channels_last(like):
        return y.view(n, h, w, c).permute(0, 3, 1, 2)
    return y.view(n, c, h, w)


def _channel_sums(sums: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """``[2, n]`` per-neuron sums -> two ``[C]`` sums over a channel's neurons (fixed order)."""
    steps, m, c, inner = z.shape
    per = sums.view(2, m, c, inner).sum(dim=(1, 3))
    return per[0], per[1]


def batch_statistics(z: Tensor) -> tuple[Tensor, Tensor]:
    """BatchNorm's batch mean and biased variance per channel of ``z`` ``[T, M, C, inner]``, float32
    (float64 for float64 z), from one kernel pass: the per-neuron means over T and squared
    deviations, combined as var = (sum_i M2_i + T sum_i (mean_i - mean)^2) / (T * neurons)."""
    steps, m, c, inner = z.shape
    sums = library.NORM_STATS(z).view(2, m, c, inner)
    means, m2 = sums[0], sums[1]
    mean = means.mean(dim=(0, 2))
    dev = means - mean.view(1, c, 1)
    var = (m2.sum(dim=(0, 2)) + steps * (dev * dev).sum(dim=(0, 2))) / (steps * m * inner)
    return mean, var


class _NormNeuron(torch.autograd.Function):
    """neuron(BatchNorm(z) + residual) with batch statistics (``train``) or given ones; see the module."""

    @staticmethod
    def forward(ctx, z, residual, weight, bias, mean, var, bits, eps, train, neuron, constants, switches,
                *learned):
        acc = torch.float64 if z.dtype == torch.float64 else torch.float32
        invstd = torch.rsqrt(var.to(acc) + eps)
        w = weight.to(acc) if weight is not None else torch.ones_like(invstd)
        b = bias.to(acc) if bias is not None else torch.zeros_like(invstd)
        mean = mean.to(acc)
        scale = w * invstd
        shift = b - mean * scale
        kept_res = bits if bits is not None else residual
        s, ckpt, _ = library.NORM_FORWARD(z, kept_res, scale, shift, None, list(learned), neuron, constants,
                                          switches, False)
        ctx.save_for_backward(z, kept_res, ckpt, scale, shift, mean, invstd, *learned)
        ctx.train = train
        ctx.neuron, ctx.constants, ctx.switches = neuron, constants, switches
        ctx.has_residual = residual is not None
        ctx.affine = weight is not None, bias is not None
        ctx.mark_non_differentiable(ckpt)
        ctx.set_materialize_grads(False)
        return s

    @staticmethod
    def backward(ctx, gs):
        z, kept_res, ckpt, scale, shift, mean, invstd, *learned = ctx.saved_tensors
        want_gres = ctx.has_residual and ctx.needs_input_grad[1]
        want_w, want_b = ctx.affine[0] and ctx.needs_input_grad[2], ctx.affine[1] and ctx.needs_input_grad[3]
        need_sums = ctx.train or want_w or want_b or bool(learned)
        args = (ctx.neuron, ctx.constants, ctx.switches)
        ea = eb = None
        glearned: list[Tensor] = []
        gweight = gbias = None
        if ctx.train:  # dL/dz depends on the batch's two sums: they first, then dL/dz
            _, _, _, glearned, sums = library.NORM_BACKWARD(gs, None, ckpt, z, kept_res, scale, shift, mean, None,
                                                            None, None, list(learned), *args, True, False, False,
                                                            False)
            sum_gy, sum_gyx = _channel_sums(sums, z)
            count = z.numel() // z.shape[2]
            ea = -scale * invstd * invstd * sum_gyx / count
            eb = -scale * sum_gy / count
            gz, gres, _, _, _ = library.NORM_BACKWARD(gs, None, ckpt, z, kept_res, scale, shift, mean, ea, eb, None,
                                                      list(learned), *args, False, True, want_gres, False)
        else:  # given statistics: dL/dz = gy * scale, one pass, the sums alongside when wanted
            gz, gres, _, glearned, sums = library.NORM_BACKWARD(gs, None, ckpt, z, kept_res, scale, shift, mean, None,
                                                                None, None, list(learned), *args, need_sums, True,
                                                                want_gres, False)
            if need_sums:
                sum_gy, sum_gyx = _channel_sums(sums, z)
        if want_w:
            gweight = sum_gyx * invstd
        if want_b:
            gbias = sum_gy
        return (gz, gres if want_gres else None, gweight, gbias, None, None, None, None, None, None, None, None,
                *(glearned if glearned else [None] * len(learned)))


def norm_neuron(z: Tensor, bn: nn.modules.batchnorm._BatchNorm, p: NeuronParams, learned: Sequence[Tensor] = (),
                residual: Tensor | None = None, residual_bits: Tensor | None = None) -> Tensor:
    """Spikes of ``neuron(bn(z) + residual)``, all T steps fused; ``z`` ``[T, M, C, inner]`` (``time_major``).

    ``bn``: the ``nn.BatchNorm2d`` whose parameters and running statistics are used and updated as its
    own forward would (batch statistics in training or without running statistics, else the running
    ones; momentum None is the cumulative average). ``p``/``learned``: the neuron (``LIFParams``,
    ``PLIFParams`` with its ``w``). ``residual``: None, or a tensor of z's shape added before the
    neuron; when it is spikes, ``residual_bits`` (``pack_spikes`` of it) is what is read and kept.
    Returns spikes of z's shape and dtype; gradients flow to z, the residual, bn's weight and bias,
    and the learned tensors.
    """
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    use_batch = bn.training or not bn.track_running_stats
    if use_batch:
        with torch.no_grad():
            mean, var = batch_statistics(z)
            if bn.training and bn.track_running_stats:
                bn.num_batches_tracked.add_(1)
                factor = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
                count = z.numel() // z.shape[2]
                bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
                bn.running_var.mul_(1 - factor).add_((var * (count / max(count - 1, 1))).to(bn.running_var.dtype),
                                                     alpha=factor)
    else:
        mean, var = bn.running_mean, bn.running_var
    constants, switches = kernel_args(p)
    return _NormNeuron.apply(z, residual, bn.weight, bn.bias, mean, var, residual_bits, float(bn.eps), use_batch,
                             p.name, constants, switches, *learned)


class _SpikeConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, weight, bias, stride, padding, dilation, groups):
        w = weight
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            x, w = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(x.device.type, enabled=False):
            out = F.conv2d(x, w, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(bits, w)
        ctx.shape, ctx.dtype, ctx.channels_last = tuple(x.shape), x.dtype, is_channels_last(x)
        ctx.conv = stride, padding, dilation, groups
        ctx.bias_shape = None if bias is None else list(bias.shape)
        ctx.weight_dtype = weight.dtype
        return out

    @staticmethod
    def backward(ctx, gout):
        bits, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        x = unpack_spikes(bits, ctx.shape, ctx.dtype, ctx.channels_last)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.bias_shape is not None and ctx.needs_input_grad[3]]
        gx, gw, gb = torch.ops.aten.convolution_backward(gout.to(w.dtype), x, w, ctx.bias_shape, stride, padding,
                                                         dilation, False, [0, 0], groups, mask)
        gw = gw.to(ctx.weight_dtype) if gw is not None else None
        return gx, None, gw, gb, None, None, None, None


def spike_conv2d(conv: nn.Conv2d, x: Tensor, bits: Tensor) -> Tensor:
    """``conv(x)`` for spikes ``x`` (0/1) whose bits (``pack_spikes(x)``) are what backward keeps
    instead of x (1/32 of its float32 bytes); the same forward and gradients as ``conv(x)``."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"spike_conv2d takes zero padding given as numbers, got {conv.padding!r} / {conv.padding_mode}")
    return _SpikeConv.apply(x, bits, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class _SpikeMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bits, kernel, stride, padding, dilation, ceil_mode):
        ctx.save_for_backward(bits)
        ctx.shape, ctx.dtype, ctx.channels_last = tuple(x.shape), x.dtype, is_channels_last(x)
        ctx.pool = kernel, stride, padding, dilation, ceil_mode
        return F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def backward(ctx, gout):
        (bits,) = ctx.saved_tensors
        kernel, stride, padding, dilation, ceil_mode = ctx.pool
        x = unpack_spikes(bits, ctx.shape, ctx.dtype, ctx.channels_last)
        _, indices = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
        gx = torch.ops.aten.max_pool2d_with_indices_backward(gout, x, _pair(kernel), _pair(stride), _pair(padding),
                                                             _pair(dilation), ceil_mode, indices)
        return gx, None, None, None, None, None, None


def _pair(v) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def spike_max_pool2d(pool: nn.MaxPool2d, x: Tensor, bits: Tensor) -> Tensor:
    """``pool(x)`` for spikes ``x`` keeping only their bits for backward; the maximum's position is
    recomputed there from them (the same position: the same op on the same input)."""
    if pool.return_indices:
        raise ValueError("spike_max_pool2d does not return indices")
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return _SpikeMaxPool.apply(x, bits, pool.kernel_size, stride, pool.padding, pool.dilation, pool.ceil_mode)


__all__ = ["available", "batch_statistics", "from_time_major", "is_channels_last", "norm_neuron", "pack_spikes",
           "spike_conv2d", "spike_max_pool2d", "time_major", "unpack_spikes"]
