"""The result schema: the run configuration declared once, the status words, one frozen record per measurement.

- :class:`RunConfig` is the one declaration of a training run's configuration. Each field carries
  its type, default, help text, command-line spelling, whether a sweep may list several values
  (``grid``) and its part in the record's key (``Option``). ``tfbench run``'s, ``compare``'s and
  ``profile``'s options (tfbench/cli/options.py), sweep files and their strict parsing
  (tfbench/bench/config.py), the :class:`RunRecord` fields, the key and the tables' grouping
  (tfbench/report/tables.py) are all derived from it. Its values are validated once, by
  ``tfbench.bench.config.normalize``, which knows the registries that name the valid choices.
- Status words, one set everywhere: ``ok``, ``oom``, ``n/a: <reason>`` (cannot run here: a library
  missing or unable to express the neuron, no GPU path), ``error: <message>``. Records written before
  this schema say ``unavailable: <reason>``; ``normalize_status`` reads that as ``n/a``.
- Every record carries its full configuration, its environment (results/environment.py), a status
  and whether its output was checked against the reference before it was timed. ``key`` identifies
  the configuration (not the measurement), so a resumed sweep can skip what is already done.

Nothing here imports torch or a registry: this module is what every other layer may read.
"""

from __future__ import annotations

import hashlib
import json
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 2   # 2: setup time, energy, one status word for "cannot run here" (n/a)

# ------------------------------------------------------------------------------------------------
# Status words
# ------------------------------------------------------------------------------------------------
OK = "ok"
OOM = "oom"
NA = "n/a"          # cannot run here: the reason follows ("n/a: snntorch is not installed ...")
ERROR = "error"     # failed: the message follows; a resumed sweep runs it again
PENDING = "pending"
_LEGACY_NA = "unavailable"   # what records of schema 1 wrote for n/a


def na(reason: str) -> str:
    """The status of a run that cannot run here, with its reason."""
    return f"{NA}: {reason}"


def error(message: str) -> str:
    """The status of a run that failed, with its one-line message."""
    return f"{ERROR}: {message}"


def normalize_status(status: Any) -> str:
    """``status`` in today's words (``unavailable: x`` of older records reads ``n/a: x``)."""
    text = str(status)
    if text == _LEGACY_NA or text.startswith(_LEGACY_NA + ":"):
        return NA + text[len(_LEGACY_NA):]
    return text


def status_word(status: Any) -> str:
    """The word of a status without its reason: ok, oom, n/a, error or pending."""
    return normalize_status(status).split(":", 1)[0]


def is_finished(status: Any) -> bool:
    """Whether a record with ``status`` is final: a resumed sweep skips it (errors are retried)."""
    return status_word(status) in (OK, OOM, NA)


# ------------------------------------------------------------------------------------------------
# The run configuration
# ------------------------------------------------------------------------------------------------
KEY = "key"          # always part of the record's key
KEY_IF_SET = "set"   # part of the key only when not the default (options added after records were
                     # committed: every older record keeps its key, so a resumed sweep still skips it)


@dataclass(frozen=True)
class Option:
    """How one field of :class:`RunConfig` appears to users and in records.

    ``choices`` is a tuple of the valid values, or the name of the registry that lists them
    (``"dataset"``, ``"arch"``, ``"backend"``, ``"neuron"``, ``"device"``, ``"split_by"``,
    ``"in_channels"``: tfbench/bench/config.py resolves it). ``flags`` are the command-line spellings
    (default ``--<name-with-dashes>``); ``grid_flags`` replace them where a sweep takes a list
    (``compare --backends``); ``grid_key`` is that field's key in a sweep file when it differs.
    """

    help: str
    flags: tuple[str, ...] = ()
    choices: tuple[Any, ...] | str | None = None
    grid: bool = False
    grid_flags: tuple[str, ...] = ()
    grid_key: str | None = None
    key: str | None = KEY
    minimum: float | None = None
    positive: bool = False          # a number that must be > 0
    cli: bool = True                # a command-line option (False: set by the harness, e.g. world_size)
    show_default: str | None = None  # what --help says the default is, where the value itself would mislead


def _opt(default: Any, **kw: Any) -> Any:
    return field(default=default, metadata={"option": Option(**kw)})


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults are the paper's (Table 1): T=32, batch 100, 5 epochs, Adam 1e-3."""

    dataset: str = _opt("MNIST", choices="dataset", grid=True, help="Dataset to train on.")
    arch: str = _opt("Spiking-ResNet18", choices="arch", grid=True, help=(
        "Network: Spiking-ResNet18/34/50 (torchvision layout, the neuron from the backend), or ResNet18/34/50, "
        "the same network with ReLU at batch T*B (the ANN twin)."))
    backend: str = _opt("tfbench", choices="backend", grid=True, grid_flags=("--backends",), grid_key="backends",
                        help="Neuron implementation in every spiking layer.")
    neuron: str = _opt("LIF", choices="neuron", grid=True, help=(
        "LIF: the paper's preset (tau 1.25, no input decay, threshold 0.3, hard reset to 0, sigmoid alpha 4); "
        "IF: no leak (threshold 1, hard reset to 0)."))
    device: str | None = _opt(None, choices="device", show_default="the best device present",
                              help="cpu, cuda or cuda:N.")
    T: int = _opt(32, flags=("-T", "--time-steps"), grid=True, minimum=1, help="Time steps per sample.")
    batch_size: int = _opt(100, grid=True, minimum=1, help="Samples per training step (up to the training set).")
    epochs: int = _opt(5, minimum=1, help="Passes over the training set (the test split after each).")
    max_steps: int | None = _opt(None, minimum=1, show_default="the whole split", help=(
        "Cap on training steps per epoch; also caps the test batches."))
    lr: float = _opt(1e-3, positive=True, help="Adam learning rate.")
    seed: int = _opt(0, minimum=0, help=(
        "Seed of the initial weights, the shuffling, the encoding and the synthetic data (the same for every "
        "backend)."))
    precision: str = _opt("fp32", choices=("fp32", "bf16", "fp16"), grid=True, help=(
        "fp32, or bf16/fp16 autocast (fp16 with a gradient scaler)."))
    synthetic: bool = _opt(False, help=(
        "Random data of the dataset's real shapes and class count (no files, nothing learnable): for timing "
        "offline. Step times never include making, loading or copying a batch."))
    step_mode: str = _opt("multi", choices=("multi", "single"), grid=True, help=(
        "multi: each neuron runs all T steps at once (convs on [T*B, ...]); single: the whole network stepped "
        "one time step at a time, as snnTorch and Norse tutorials train."))
    data_root: str = _opt("data", key=None, help=(
        "Root folder of the datasets: torchvision's layout for DATA_ROOT/MNIST/raw and "
        "DATA_ROOT/cifar-10-batches-py; DATA_ROOT/N-MNIST/download/{Train,Test}.zip and "
        "DATA_ROOT/DvsGesture/download/DvsGesture.tar.gz, which you fetch yourself (their licences forbid "
        "automatic download)."))
    download: bool = _opt(False, key=None, help="Fetch MNIST or CIFAR-10 into --data-root if missing.")
    split_by: str | None = _opt(None, choices="split_by", grid=True, show_default="number", help=(
        "N-MNIST and DvsGesture only: how SpikingJelly cuts each sample's events into T frames: number (equal "
        "event counts, the paper's) or time (equal durations). Each (T, split-by) has its own frame cache."))
    in_channels: int | None = _opt(None, choices="in_channels", grid=True, show_default="3", help=(
        "N-MNIST and DvsGesture only: 3 feeds the 2 polarity channels plus a zero third channel to the "
        "3-channel stem (as the paper); 2 builds a 2-channel stem. MNIST and CIFAR-10 always use 3."))
    parallel: str = _opt("none", choices=("none", "data", "temporal"), key=KEY_IF_SET, grid=False, help=(
        "Spread the run over processes (GPUs): data (DistributedDataParallel, --batch-size per process) or "
        "temporal (T split into one contiguous segment per process, membranes passed between them; the tfbench "
        "backend, T divisible by the processes)."))
    world_size: int = _opt(1, minimum=1, key=KEY_IF_SET, cli=False, help="Processes of a parallel run.")
    shared_gpus: bool = _opt(False, key=KEY_IF_SET, cli=False, help=(
        "The run's processes shared fewer GPUs than there were processes (TFBENCH_SHARE_GPUS=1): its peak memory is "
        "a process's each, its times are not a multi-GPU run's, and no energy is recorded."))
    chunks: int = _opt(1, minimum=1, key=KEY_IF_SET, help=(
        "--parallel temporal: neuron chunks per layer; a process starts a chunk as soon as the previous one "
        "has sent its membrane."))
    micro_batches: int = _opt(1, minimum=1, key=KEY_IF_SET, help=(
        "--parallel temporal: split each batch into M micro-batches that follow one another through the "
        "processes (one runs micro-batch m while the next runs m-1), so a process waits for its first "
        "membrane for one micro-batch, not the whole batch. BatchNorm then normalises each micro-batch's "
        "time segment with its own statistics."))
    compile: bool = _opt(False, grid=True, key=KEY_IF_SET, help=(
        "torch.compile the model (default mode); compiling is part of the setup time, not of any epoch."))
    cuda_graphs: bool = _opt(False, grid=True, key=KEY_IF_SET, help=(
        "Capture the whole training step (encode, forward, backward, Adam) in one CUDA graph and replay it: no "
        "per-op launch cost. GPU only; fp32 or bf16. The capture is part of the setup time."))
    channels_last: bool = _opt(False, grid=True, key=KEY_IF_SET, help=(
        "Run convs and BN on NHWC (channels-last) tensors; the neurons see the same memory (no copy)."))
    lean: bool = _opt(False, grid=True, key=KEY_IF_SET, help=(
        "Keep less for backward: every BatchNorm before a spiking layer folded into the neuron (with the residual "
        "add), every conv and max-pool of spikes keeping its input as bits. The same network, spikes and "
        "gradients to fp32 rounding. tfbench's backends and Spiking-ResNets, multi-step."))

    @property
    def options(self) -> str:
        """The speed options that are on, as one word ("eager" when none is)."""
        return options_text(self.compile, self.cuda_graphs, self.channels_last, self.lean)


# The options of a run spread over processes: a single-process command (compare, profile) has none.
PARALLEL_FIELDS = ("parallel", "chunks", "micro_batches")


def option(name: str) -> Option:
    """The :class:`Option` of the RunConfig field ``name``."""
    return _OPTIONS[name]


def config_fields() -> tuple[str, ...]:
    """RunConfig's field names, in declaration order."""
    return tuple(_OPTIONS)


def field_type(name: str) -> Any:
    """The annotation of the RunConfig field ``name`` (e.g. ``int | None``) as a typing object."""
    return _TYPES[name]


_OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in fields(RunConfig)}
_TYPES: dict[str, Any] = typing.get_type_hints(RunConfig)


def options_text(compile: bool, cuda_graphs: bool, channels_last: bool, lean: bool = False) -> str:
    """The training step's speed options as one word ("eager" when none is on)."""
    on = [name for name, flag in (("compile", compile), ("graphs", cuda_graphs), ("channels-last", channels_last),
                                  ("lean", lean)) if flag]
    return "+".join(on) or "eager"


def config_key(config: dict[str, Any]) -> str:
    """A stable short hash of a configuration dict."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------
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
        values = {k: v for k, v in d.items() if k in names}
        if "status" in values:
            values["status"] = normalize_status(values["status"])
        return cls(**values)


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
class RunRecord(RunConfig, _Record):
    """One training run (``tfbench run`` / ``compare``; the paper's Table 1): its :class:`RunConfig`
    (normalized: registry spellings, the device resolved), then what was measured.

    Times: ``setup_time_s`` is the one-time cost before the first epoch, with the device synchronised
    at both ends: the backend's correctness check (which builds or loads its kernels), building the
    model, and the warm-up steps (``bench/train.py``: NVRTC builds, cuDNN and Triton autotuning,
    torch.compile, the CUDA-graph capture), after which the weights, optimizer and generators are put
    back as they were, so training itself is unchanged. Reading the dataset is not in it. Every epoch
    is then steady: ``train_time_s`` per epoch is wall-clock, synchronised, including fetching the
    batches; ``step_*_ms`` are the training steps alone (CUDA events on a GPU), each from its batch
    already on the device to its optimizer step; ``samples_per_s`` is the global batch over the
    median step. ``peak_mem_bytes`` is the peak device memory of steady training (None on the CPU),
    which includes ``data_mem_bytes`` of dataset held on the device.

    Energy (GPU runs, NVML's total-energy counter): ``train_energy_j`` per epoch, read at the same
    synchronised points as ``train_time_s``; ``energy_per_step_j`` is their sum over all training
    steps, ``avg_power_w`` their sum over the epochs' time. ``energy_note`` says why they are empty
    (a CPU run, no counter).

    A run over several processes (``parallel`` data or temporal) records the slowest rank's times, the
    largest rank's peak memory (per GPU), the ranks' energies summed, and losses and accuracies
    averaged over the ranks.
    """

    # --- recorded beside the configuration, part of the key ---
    neuron_params: str = ""     # the neuron's parameters, as text ("" for the ANN)
    device_name: str = ""       # the GPU's (or CPU's) name: the same config on another GPU is another run
    # --- the outcome ---
    status: str = PENDING       # ok | oom | n/a: <reason> | error: <message> | pending
    checked: bool = False       # the backend's spikes matched the reference before training
    implementation: str = ""    # e.g. SpikingJelly's selected kernel (triton)
    differences: str = ""       # where the backend's neuron differs from tfbench's (docs/neurons.md)
    baseline: str = ""          # the backend ``compare`` took speed-ups over when it ran this record
    steps_per_epoch: int = 0
    test_batches: int = 0
    setup_time_s: float | None = None
    train_time_s: list[float] = field(default_factory=list)     # per epoch, steady
    test_time_s: list[float] = field(default_factory=list)      # per epoch
    train_loss: list[float] = field(default_factory=list)       # per epoch, mean over its steps
    test_accuracy: list[float] = field(default_factory=list)    # per epoch, fraction in [0, 1]
    step_ms: float | None = None          # median training step
    step_p10_ms: float | None = None
    step_p90_ms: float | None = None
    timed_steps: int = 0
    samples_per_s: float | None = None
    train_energy_j: list[float] = field(default_factory=list)   # per epoch (GPU: NVML)
    energy_per_step_j: float | None = None
    avg_power_w: float | None = None
    energy_note: str = ""       # why there is no energy ("n/a: ..."), "" when measured
    peak_mem_bytes: int | None = None
    data_mem_bytes: int | None = None
    n_params: int = 0
    env: dict[str, Any] = field(default_factory=dict)
    timestamp: str = ""
    kind: str = "run"
    schema: int = SCHEMA_VERSION

    CONFIG_FIELDS = ("kind", "neuron_params", "device_name") + tuple(n for n, o in _OPTIONS.items() if o.key == KEY)
    OPTIONAL_CONFIG = {f.name: f.default for f in fields(RunConfig) if _OPTIONS[f.name].key == KEY_IF_SET}

    def config_only(self) -> RunConfig:
        """The :class:`RunConfig` this record ran."""
        return RunConfig(**{n: getattr(self, n) for n in _OPTIONS})


# How ``tfbench scale`` times the pipeline: one run's latency, or R independent runs' throughput.
SCALING_MODES = ("latency", "throughput")


@dataclass(frozen=True)
class ScalingRecord(_Record):
    """One LIF layer split over ``gpus`` ranks by the temporal pipeline, timed (``tfbench scale``; the
    paper's Fig. 6). Long format: one record per (mode, T, gpus, chunks or runs, direction, ...).

    ``mode`` "latency": one run, its neurons in ``chunks`` chunks that flow rank to rank.
    ``median_ms`` (p10/p90 over ``repeats``) is the pipeline's time for the whole layer: per repeat,
    from a barrier to the last rank's end (the largest rank time). ``ts_ms`` is the same layer on one
    GPU (the record with ``gpus`` 1), ``tc_ms`` one boundary hop (all of a layer's membrane chunks
    sent from one rank to the next, half a measured round trip); ``model_speedup`` is the paper's
    ``k*Ts / (k*(k-1)*Tc + Ts)`` with those, beside the measured ``speedup`` = ts_ms / median_ms;
    ``optimal_gpus`` = sqrt(Ts/Tc), where the model's time Ts/k + (k-1)*Tc is least.

    ``mode`` "throughput": ``runs`` R independent runs pipelined through the ranks (whole layer per
    segment, ``chunks`` 1; tfbench/parallel/runs.py). ``median_ms`` is the time of all R runs,
    barrier to the last rank's end. ``ts_ms`` is one run on one GPU (the ``gpus`` 1 record of the same
    R, divided by R), ``tseg_ms`` one segment of T/k steps of the whole layer timed alone on each rank
    (the slowest rank's median), ``tc_ms`` one hop of the layer's whole membrane (N values);
    ``speedup`` = R*ts_ms / median_ms and ``model_speedup`` = R*Ts / (R*tseg + (k-1)*(tseg + Tc)):
    the last rank ends after R segments plus the fill, k-1 segments and hops (with tseg = Ts/k and
    Tc << tseg this is k*R / (R + k - 1)). ``optimal_gpus`` is None: the model grows with k.
    """

    backend: str                # tfbench (the only op with v0 / v_T)
    precision: str              # fp32 | bf16 | fp16
    T: int
    N: int
    gpus: int                   # k: ranks the T steps are split over
    chunks: int                 # neuron chunks per rank (1 for gpus=1 and for throughput)
    direction: str              # forward | backward
    device: str                 # cuda | cpu
    device_name: str
    neuron: str                 # the LIFParams, as text
    status: str                 # ok | oom | n/a: <reason> | error: <message>
    checked: bool               # the pipeline's spikes and gradients matched one rank's before timing
    unroll: int | None = None   # the kernel's time unroll when set for this sweep (None: the op's default)
    mode: str = "latency"       # latency (one run, chunked) | throughput (R independent runs pipelined)
    runs: int = 1               # R: independent runs in one timed repeat (throughput)
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    repeats: int = 0
    ts_ms: float | None = None
    tc_ms: float | None = None
    tseg_ms: float | None = None           # throughput: one T/k-step segment of the whole layer, alone
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
    OPTIONAL_CONFIG = {"mode": "latency", "runs": 1}


RECORD_KINDS: dict[str, type[_Record]] = {"run": RunRecord, "layer": LayerRecord, "scaling": ScalingRecord}
