"""The result schema: one frozen dataclass per kind of measurement, written one JSON line each.

Every record carries its full configuration, its environment (results/environment.py), a ``status``
("ok", "oom", "n/a: <reason>", "error: <message>") and whether its output was checked against the
reference before it was timed. ``key`` identifies the configuration (not the measurement), so a
resumed sweep can skip what is already done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1


def config_key(config: dict[str, Any]) -> str:
    """A stable short hash of a configuration dict."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def options_text(compile: bool, cuda_graphs: bool, channels_last: bool) -> str:
    """The training step's speed options as one word ("eager" when none is on)."""
    on = [name for name, flag in (("compile", compile), ("graphs", cuda_graphs), ("channels-last", channels_last))
          if flag]
    return "+".join(on) or "eager"


class _Record:
    """What every record kind shares: its configuration (``CONFIG_FIELDS``), the key made from it,
    and the JSON form."""

    CONFIG_FIELDS: tuple[str, ...] = ()
    # Configuration added after records were first committed: part of the key only when it differs
    # from this default, so every older record keeps its key (and a resumed sweep still skips it).
    OPTIONAL_CONFIG: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.CONFIG_FIELDS}
        out.update({k: getattr(self, k) for k, default in self.OPTIONAL_CONFIG.items() if getattr(self, k) != default})
        return out

    @property
    def key(self) -> str:
        return config_key(self.config())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class LayerRecord(_Record):
    """One LIF layer timed alone (``tfbench layer``; the paper's Fig. 5)."""

    backend: str
    precision: str              # fp32 | bf16 | fp16
    T: int
    N: int
    direction: str              # forward | backward | both
    mode: str                   # eager | graph (replayed from a CUDA graph)
    device: str                 # cuda:0 | cpu
    neuron: str                 # the LIFParams, as text
    status: str                 # ok | oom | n/a: <reason> | error: <message>
    checked: bool               # the backend's spikes matched the reference before timing
    device_name: str = ""       # "NVIDIA H100 80GB HBM3": part of the key, so another GPU's sweep is not "done"
    implementation: str = ""    # e.g. SpikingJelly's selected kernel (triton)
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    repeats: int = 0
    floor_ms: float | None = None          # bytes moved at least / measured copy bandwidth
    bytes_per_element: float | None = None
    copy_bandwidth_gbs: float | None = None
    peak_mem_bytes: int | None = None
    env: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    kind: str = "layer"
    schema: int = SCHEMA_VERSION

    CONFIG_FIELDS = ("kind", "backend", "precision", "T", "N", "direction", "mode", "device", "device_name",
                     "neuron")


@dataclass(frozen=True)
class RunRecord(_Record):
    """One training run (``tfbench run`` / ``compare``; the paper's Table 1): config, per-epoch results.

    Times are wall-clock seconds with the device synchronised at both ends; ``step_*_ms`` are the
    per-step times (CUDA events on a GPU) of the training steps after the first epoch's warm-up
    steps, each from its batch already on the device to its optimizer step (fetching the batch is
    not in them; it is in ``train_time_s``); ``samples_per_s`` is ``batch_size`` over the median
    step. ``peak_mem_bytes`` is the peak device memory allocated during the run (None on the CPU),
    which includes ``data_mem_bytes`` of dataset held on the device.

    A run over several processes (``parallel`` data or temporal, ``world_size`` > 1) records the
    slowest rank's times, the largest rank's peak memory (per GPU), and losses and accuracies
    averaged over the ranks; ``samples_per_s`` counts the global batch (data: ``batch_size *
    world_size``; temporal: ``batch_size``, every rank working on all of it).
    """

    dataset: str
    arch: str
    backend: str                # a tfbench.backends name, or "ann" for the ANN floor (ReLU)
    neuron: str                 # LIF | IF | ReLU
    neuron_params: str          # the LIFParams, as text ("" for the ANN)
    device: str                 # cuda:0 | cpu
    device_name: str            # the GPU's (or CPU's) name: the same config on another GPU is another run
    T: int
    batch_size: int
    epochs: int
    max_steps: int | None       # training steps per epoch cap (also caps evaluation batches); None: full
    lr: float
    seed: int
    precision: str              # fp32 | bf16 | fp16
    synthetic: bool
    step_mode: str              # multi | single
    status: str                 # ok | oom | unavailable: <reason> | error: <message>
    split_by: str = ""          # event datasets: number | time (how events are cut into T frames); "" otherwise
    in_channels: int = 3        # the network's input channels (event datasets: 3 = 2 polarities + a zero one, or 2)
    parallel: str = "none"      # none | data | temporal (how the run was spread over processes)
    world_size: int = 1         # processes (GPUs); data: the global batch is batch_size * world_size
    chunks: int = 1             # temporal: neuron chunks per layer passed rank to rank
    compile: bool = False       # the model ran through torch.compile (default mode)
    cuda_graphs: bool = False   # the whole training step (encode, forward, backward, Adam) replayed from a CUDA graph
    channels_last: bool = False  # convs and BN on NHWC (channels-last) tensors; the neurons see them without a copy
    checked: bool = False       # the backend's spikes matched the reference LIF before training
    implementation: str = ""    # e.g. SpikingJelly's selected kernel (triton)
    differences: str = ""       # where the backend's neuron differs from LIF_SPEC
    steps_per_epoch: int = 0
    test_batches: int = 0
    train_time_s: list[float] = field(default_factory=list)     # per epoch
    test_time_s: list[float] = field(default_factory=list)      # per epoch
    train_loss: list[float] = field(default_factory=list)       # per epoch, mean over its steps
    test_accuracy: list[float] = field(default_factory=list)    # per epoch, fraction in [0, 1]
    step_ms: float | None = None          # median training step
    step_p10_ms: float | None = None
    step_p90_ms: float | None = None
    timed_steps: int = 0
    samples_per_s: float | None = None
    peak_mem_bytes: int | None = None
    data_mem_bytes: int | None = None
    n_params: int = 0
    env: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    kind: str = "run"
    schema: int = SCHEMA_VERSION

    CONFIG_FIELDS = ("kind", "dataset", "arch", "backend", "neuron", "neuron_params", "device", "device_name", "T",
                     "batch_size", "epochs", "max_steps", "lr", "seed", "precision", "synthetic", "step_mode",
                     "split_by", "in_channels")
    OPTIONAL_CONFIG = {"compile": False, "cuda_graphs": False, "channels_last": False, "parallel": "none",
                       "world_size": 1, "chunks": 1}

    @property
    def options(self) -> str:
        """The speed options that were on, as one word: "compile+graphs+channels-last", or "eager"."""
        return options_text(self.compile, self.cuda_graphs, self.channels_last)



@dataclass(frozen=True)
class ScalingRecord(_Record):
    """One LIF layer split over ``gpus`` ranks by the temporal pipeline, timed (``tfbench scale``; the
    paper's Fig. 6). Long format: one record per (T, gpus, direction, ...).

    ``median_ms`` (p10/p90 over ``repeats``) is the pipeline's time for the whole layer: per repeat,
    from a barrier to the last rank's end (the largest rank time). ``ts_ms`` is the same layer on one
    GPU (the record with ``gpus`` 1), ``tc_ms`` one boundary hop (all of a layer's membrane chunks
    sent from one rank to the next, half a measured round trip); ``model_speedup`` is the paper's
    ``k*Ts / (k*(k-1)*Tc + Ts)`` with those, beside the measured ``speedup`` = ts_ms / median_ms;
    ``optimal_gpus`` = sqrt(Ts/Tc), where the model's time Ts/k + (k-1)*Tc is least.
    """

    backend: str                # tfbench (the only op with v0 / v_T)
    precision: str              # fp32 | bf16 | fp16
    T: int
    N: int
    gpus: int                   # k: ranks the T steps are split over
    chunks: int                 # neuron chunks per rank (1 for gpus=1)
    direction: str              # forward | backward
    device: str                 # cuda | cpu
    device_name: str
    neuron: str                 # the LIFParams, as text
    status: str                 # ok | oom | unavailable: <reason> | error: <message>
    checked: bool               # the pipeline's spikes and gradients matched one rank's before timing
    unroll: int | None = None   # the kernel's time unroll when set for this sweep (None: the op's default)
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    repeats: int = 0
    ts_ms: float | None = None
    tc_ms: float | None = None
    speedup: float | None = None
    model_speedup: float | None = None
    efficiency: float | None = None        # speedup / gpus
    optimal_gpus: float | None = None
    peak_mem_bytes: int | None = None      # the largest rank's
    env: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    kind: str = "scaling"
    schema: int = SCHEMA_VERSION

    CONFIG_FIELDS = ("kind", "backend", "precision", "T", "N", "gpus", "chunks", "direction", "device",
                     "device_name", "neuron", "unroll")
