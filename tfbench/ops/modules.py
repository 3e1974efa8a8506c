"""The fused neurons as ``nn.Module`` layers: ``LIF`` and ``PLIF`` (multi-step: ``[T, *]`` in and out)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .functional import _run, check_inputs, check_w, kernel_args
from .neurons import LIFParams, PLIFParams, check_save, plif_preset, preset


def _float(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:g}"


class LIF(nn.Module):
    """A LIF layer over all T steps at once; keywords as ``tfbench.lif`` (SpikingJelly's ``LIFNode``).

    ``forward(x, v0=None)`` takes ``[T, *]`` and returns spikes of the same shape and dtype; with
    ``return_state=True`` it returns ``(spikes, v_T)``. The module keeps no state between calls.
    ``save`` is what backward keeps, as for ``tfbench.lif``: ``"h"`` (the membrane) or ``"input"``
    (x and membrane checkpoints; h recomputed in backward, fewer bytes moved).
    """

    def __init__(self, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: float | None = 0.0, detach_reset: bool = False, surrogate: str = "sigmoid",
                 alpha: float = 4.0, save: str = "h"):
        super().__init__()
        self.params = LIFParams(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate, alpha).validate()
        self.save = check_save(save)
        self._kernel_args = kernel_args(self.params)  # looked up once, not per call

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LIF":
        """A layer of a named neuron (``tfbench.PRESETS``: 'paper', 'spikingjelly', 'if', ...)."""
        return cls(**{**preset(name).as_kwargs(), **overrides})

    def forward(self, x: Tensor, v0: Tensor | None = None, return_state: bool = False):
        check_inputs(x, v0)
        s, v_last = _run(x, v0, self.params, (), self.save, return_state, self._kernel_args)
        return (s, v_last) if return_state else s

    def norm_args(self) -> tuple[LIFParams, tuple[Tensor, ...]]:
        """(its description, its learned tensors): what ``tfbench.ops.norm``'s functions take for this layer."""
        return self.params, ()

    def forward_norm(self, z: Tensor, bn: nn.Module, residual: Tensor | None = None,
                     residual_bits: Tensor | None = None, residual_bn: nn.Module | None = None) -> Tensor:
        """This layer on ``bn(z) + residual`` (``+ residual_bn(residual)`` when given), BatchNorm folded in
        (``tfbench.ops.norm.norm_neuron``): z ``[T, M, C, inner]``, spikes of its shape. Starts from rest;
        ``save`` does not apply (it keeps z)."""
        from .norm import norm_neuron

        return norm_neuron(z, bn, *self.norm_args(), residual, residual_bits, residual_bn)

    def extra_repr(self) -> str:
        p = self.params
        return (f"tau={_float(p.tau)}, decay_input={p.decay_input}, v_threshold={p.v_threshold:g}, "
                f"v_reset={p.v_reset}, detach_reset={p.detach_reset}, surrogate={p.surrogate}, alpha={p.alpha:g}"
                + (f", save={self.save!r}" if self.save != "h" else ""))


class PLIF(nn.Module):
    """A PLIF layer (SpikingJelly's ``ParametricLIFNode``): LIF with a learned time constant.

    Its one parameter is ``w``, 1/tau = sigmoid(w), initialised to -log(init_tau - 1) as
    SpikingJelly does, so a SpikingJelly checkpoint's ``w`` loads unchanged. ``channels=None``: one
    w for the layer (shape ``[]``, as SpikingJelly); ``channels=C``: one per channel of a
    ``[T, B, C, ...]`` input (shape ``[C]``). ``forward(x, v0=None)`` takes ``[T, *]`` and returns
    the spikes (``(spikes, v_T)`` with ``return_state=True``). ``save`` as ``LIF``.
    """

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: float | None = 0.0, detach_reset: bool = False, surrogate: str = "sigmoid",
                 alpha: float = 4.0, channels: int | None = None, save: str = "h"):
        super().__init__()
        self.params = PLIFParams(init_tau, decay_input, v_threshold, v_reset, detach_reset, surrogate,
                                 alpha).validate()
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels < 1):
            raise ValueError(f"channels must be None (one w for the layer) or an int >= 1, got {channels!r}")
        self.channels = channels
        self.save = check_save(save)
        self._kernel_args = kernel_args(self.params)
        shape = () if channels is None else (channels,)
        self.w = nn.Parameter(torch.full(shape, self.params.init_w(), dtype=torch.float32))

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "PLIF":
        """A layer of a named PLIF neuron (``tfbench.PLIF_PRESETS``: 'paper', 'spikingjelly')."""
        return cls(**{**plif_preset(name).as_kwargs(), **overrides})

    @property
    def tau(self) -> Tensor:
        """The current membrane time constant(s), 1 / sigmoid(w) (no gradient)."""
        with torch.no_grad():
            return 1.0 / self.w.sigmoid()

    def forward(self, x: Tensor, v0: Tensor | None = None, return_state: bool = False):
        check_inputs(x, v0)
        check_w(x, self.w)
        s, v_last = _run(x, v0, self.params, (self.w,), self.save, return_state, self._kernel_args)
        return (s, v_last) if return_state else s

    def norm_args(self) -> tuple[PLIFParams, tuple[Tensor, ...]]:
        """(its description, (w,)): what ``tfbench.ops.norm``'s functions take for this layer."""
        return self.params, (self.w,)

    def forward_norm(self, z: Tensor, bn: nn.Module, residual: Tensor | None = None,
                     residual_bits: Tensor | None = None, residual_bn: nn.Module | None = None) -> Tensor:
        """As ``LIF.forward_norm``; w per channel is per channel of z's dim 2 (BatchNorm's channels)."""
        from .norm import norm_neuron

        check_w(z, self.w)
        return norm_neuron(z, bn, *self.norm_args(), residual, residual_bits, residual_bn)

    def extra_repr(self) -> str:
        p = self.params
        tau = self.tau
        shown = f"{tau.item():.4g}" if tau.numel() == 1 else f"[{tau.numel()} channels]"
        return (f"tau={shown} (init_tau={p.init_tau:g}), decay_input={p.decay_input}, v_threshold={p.v_threshold:g}, "
                f"v_reset={p.v_reset}, detach_reset={p.detach_reset}, surrogate={p.surrogate}, alpha={p.alpha:g}"
                + (f", save={self.save!r}" if self.save != "h" else ""))
