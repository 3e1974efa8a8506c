"""GPU energy from NVML's total-energy counter: read at the epoch's synchronised points, or n/a with why."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from tfbench.bench import energy
from tfbench.bench.train import train
from tfbench.results.schema import RunConfig


class FakeNVML(types.ModuleType):
    """pynvml with a counter that reads ``readings`` in turn (millijoules)."""

    class NVMLError(Exception):
        pass

    def __init__(self, readings=None, supported=True):
        super().__init__("pynvml")
        self.readings = list(readings or [1000.0])
        self.supported = supported

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


@pytest.fixture
def gpu_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "_get_nvml_device_index", lambda device: 0)


def test_the_counter_is_read_in_joules(monkeypatch, gpu_index) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML([5_000.0, 5_000.0, 12_500.0]))
    meter = energy.EnergyMeter(torch.device("cuda", 0))
    assert meter.available and meter.note == ""
    assert meter.read() == 5.0 and meter.read() == 12.5


def test_no_counter_is_na_with_the_reason(monkeypatch, gpu_index) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML(supported=False))
    meter = energy.EnergyMeter(torch.device("cuda", 0))
    assert not meter.available and meter.read() is None
    assert meter.note.startswith("n/a: NVML has no energy counter for this GPU") and "Not Supported" in meter.note
    monkeypatch.setitem(sys.modules, "pynvml", None)       # not installed
    assert energy.EnergyMeter(torch.device("cuda", 0)).note == "n/a: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    cpu = energy.EnergyMeter(torch.device("cpu"))
    assert cpu.read() is None and "on the CPU" in cpu.note


def test_summary_per_step_and_power() -> None:
    out = energy.summarize([30.0, 50.0], [2.0, 2.0], steps_per_epoch=10)
    assert out == {"energy_per_step_j": pytest.approx(4.0), "avg_power_w": pytest.approx(20.0)}
    assert energy.summarize([], [2.0], 10) == {"energy_per_step_j": None, "avg_power_w": None}


def test_a_cpu_run_records_why_it_has_no_energy() -> None:
    rec = train(RunConfig(backend="torch", dataset="MNIST", synthetic=True, T=2, batch_size=2, epochs=1,
                          max_steps=2, device="cpu"))
    assert rec.status == "ok" and rec.energy_per_step_j is None and rec.train_energy_j == []
    assert rec.energy_note.startswith("n/a: ") and "CPU" in rec.energy_note


@pytest.mark.cuda
def test_a_gpu_run_measures_its_energy() -> None:
    rec = train(RunConfig(backend="tfbench", dataset="MNIST", synthetic=True, T=4, batch_size=16, epochs=2,
                          max_steps=20, device="cuda"))
    assert rec.status == "ok"
    if rec.energy_note:
        pytest.skip(rec.energy_note)
    assert len(rec.train_energy_j) == 2 and all(j > 0 for j in rec.train_energy_j)
    assert rec.energy_per_step_j == pytest.approx(sum(rec.train_energy_j) / 40)
    assert 10 < rec.avg_power_w < 2000
