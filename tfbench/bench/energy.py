"""Energy of the GPU while it trains: NVML's total-energy counter, read at synchronised points.

``nvmlDeviceGetTotalEnergyConsumption`` counts the millijoules the whole board has used since the
driver loaded (Volta and newer). ``EnergyMeter.read()`` returns it in joules; the training loop
reads it where it reads the epoch's wall clock (the device synchronised), so an epoch's energy is
the difference of two readings over the same interval as ``train_time_s``. The counter covers the
whole GPU, so whatever else runs on it at the same time is counted too; the board's idle power is
in it (that is what the run costs). The counter's own update period (tens of ms on recent boards)
makes an epoch shorter than about a second a coarse figure.

Where it cannot measure, ``EnergyMeter.note`` says why ("n/a: ...") and ``read()`` returns None:
on the CPU, without ``nvidia-ml-py``, or on a GPU whose counter is "not supported".
"""

from __future__ import annotations

from ..results.schema import na


class EnergyMeter:
    """The total-energy counter of the GPU ``device`` (a torch.device), or an explained absence."""

    def __init__(self, device):
        self._handle = None
        self._nvml = None
        self.note = ""
        if device.type != "cuda":
            self.note = na("energy is measured on NVIDIA GPUs (NVML); this run is on the CPU")
            return
        try:
            import pynvml
        except ImportError:
            self.note = na("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
            return
        try:
            import torch

            pynvml.nvmlInit()
            index = torch.cuda._get_nvml_device_index(device)
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self._nvml = pynvml
        except Exception as e:  # noqa: BLE001 - NVMLError_NotSupported, no driver access, ...
            self._handle = None
            self.note = na(f"NVML has no energy counter for this GPU ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:120]})")

    @property
    def available(self) -> bool:
        return self._handle is not None

    def read(self) -> float | None:
        """Joules the GPU has used since the driver loaded (None where there is no counter)."""
        if self._handle is None:
            return None
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


def summarize(epoch_joules: list[float], epoch_seconds: list[float], steps_per_epoch: int) -> dict:
    """The record's energy fields from per-epoch joules (empty: no counter)."""
    if not epoch_joules:
        return {"energy_per_step_j": None, "avg_power_w": None}
    total = sum(epoch_joules)
    seconds = sum(epoch_seconds)
    return {"energy_per_step_j": total / (steps_per_epoch * len(epoch_joules)),
            "avg_power_w": total / seconds if seconds > 0 else None}
