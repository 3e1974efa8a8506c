"""The training loop (``tfbench run`` / ``compare``): one config in, one :class:`RunRecord` out.

Each epoch: ``steps`` training steps (encode the batch to ``[T, B, C, H, W]``, forward, cross-entropy
on the time-averaged logits, backward, Adam step), then the test split. Train and test time per
epoch are wall-clock with the device synchronised at both ends (they include fetching the batches).
Each training step is also timed on its own (CUDA events on a GPU, no synchronisation inside a step;
``perf_counter`` on the CPU), from the batch already on the device to the optimizer step: fetching
the batch (reading, generating, copying it) happens before the step's clock starts, and reading the
live loss after it stops. The first epoch's first ``WARMUP_STEPS`` are untimed (kernel compilation,
autotuning, cuDNN benchmark); the steps of every epoch after them are summarised
(``timing.summarize``). ``--precision`` is autocast (fp16 with a gradient scaler).

A backend that cannot run gives a record with status ``unavailable: <reason>``; running out of
memory ``oom``; any other exception ``error: <message>``. Missing data is the user's to fix and is
raised (``DataError``), not recorded. ``run_sweep`` runs many configs, skipping the finished ones.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import backends, data, models, parallel
from ..ops.lif import PRESETS, LIFParams
from ..ops.neurons import PLIF_PRESETS, PLIFParams
from ..results import environment
from ..results.schema import RunRecord, options_text
from ..results.store import Store
from . import timing
from .check import check_layer
from .progress import Reporter, SilentReporter

# Steps of the first epoch left out of the step timing: they compile kernels (NVRTC, Triton
# autotuning) and run cuDNN's benchmark; three covers every layer shape of a ResNet.
# With --cuda-graphs the same three steps are the two eager runs and the capture (_GraphedStep).
WARMUP_STEPS = 3
# How often (seconds) the live loss is read back from the device: each read is a synchronisation.
LOSS_READ_EVERY_S = 0.5
# The neurons ``--neuron`` names: the paper's LIF preset (docs/neurons.md "The paper's preset"), IF,
# and PLIF: the paper's neuron with its time constant learned (init_tau 1.25).
NEURONS: dict[str, LIFParams | PLIFParams] = {"LIF": PRESETS["paper"], "IF": PRESETS["if"],
                                             "PLIF": PLIF_PRESETS["paper"]}
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
STEP_MODES = ("multi", "single")
ANN_BACKEND = "ann"   # the backend name recorded for an ANN arch (ReLU: no neuron library involved)


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults are the paper's (Table 1): T=32, batch 100, 5 epochs, Adam 1e-3."""

    dataset: str = "MNIST"
    arch: str = "Spiking-ResNet18"
    backend: str = "tfbench"
    neuron: str = "LIF"
    device: str = "cpu"
    T: int = 32
    batch_size: int = 100
    epochs: int = 5
    max_steps: int | None = None
    lr: float = 1e-3
    seed: int = 0
    precision: str = "fp32"
    synthetic: bool = False
    step_mode: str = "multi"
    data_root: str = "data"
    download: bool = False
    split_by: str | None = None       # event datasets: number | time (None: number); "" or None otherwise
    in_channels: int | None = None    # the network's input channels (None: 3); 2 only for event datasets
    parallel: str = "none"            # none | data | temporal: how the run is spread over processes (tfbench/parallel)
    world_size: int = 1               # processes of a parallel run (the launcher's WORLD_SIZE)
    chunks: int = 1                   # --parallel temporal: neuron chunks per layer that flow from rank to rank
    compile: bool = False             # torch.compile the model (default mode)
    cuda_graphs: bool = False         # capture the whole training step once, replay it every step (GPU only)
    channels_last: bool = False       # NHWC convs and BN; the neurons see the same memory, no layout copy

    @property
    def options(self) -> str:
        """The speed options that are on, as one word ("eager" when none is)."""
        return options_text(self.compile, self.cuda_graphs, self.channels_last)

    def normalized(self) -> "RunConfig":
        """Canonical names (registry spelling) and checked values; ValueError naming any bad one.

        ``split_by`` and ``in_channels`` get the dataset's defaults; for an image dataset ``split_by``
        becomes "" (not applicable) and giving it, or ``in_channels`` other than 3, is an error.
        """
        arch = models.get(self.arch)
        spec = data.get(self.dataset)
        split_by, in_channels = _input_options(spec, self.split_by, self.in_channels, self.synthetic)
        backend = ANN_BACKEND if not arch.spiking else backends.get(self.backend).name
        neuron = "ReLU" if not arch.spiking else _choice("neuron", self.neuron, NEURONS)
        precision = _choice("precision", self.precision, PRECISIONS)
        step_mode = _choice("step mode", self.step_mode, dict.fromkeys(STEP_MODES))
        for name, value in (("T", self.T), ("batch size", self.batch_size), ("epochs", self.epochs)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max steps must be >= 1, got {self.max_steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        device = resolve_device(self.device)
        if self.cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda-graphs needs a CUDA device; got device {str(device)!r}")
        if self.cuda_graphs and precision == "fp16":
            raise ValueError("cuda-graphs works with precision fp32 or bf16, not fp16: fp16's gradient scaler "
                             "reads its overflow check on the host every step, which a CUDA graph cannot replay")
        parallel_mode = parallel.strategy.check_config(
            self.parallel, self.world_size, self.chunks, T=self.T, batch_size=self.batch_size,
            train_size=spec.train_size, dataset=spec.name, compile=self.compile,
            cuda_graphs=self.cuda_graphs)
        if spec.train_size and self.batch_size > spec.train_size:
            raise ValueError(f"batch size {self.batch_size} is larger than the {spec.name} training set "
                             f"({spec.train_size} samples); choose 1..{spec.train_size}")
        return dataclasses.replace(self, arch=arch.name, dataset=spec.name, backend=backend, neuron=neuron,
                                   precision=precision, step_mode=step_mode, device=str(device),
                                   split_by=split_by, in_channels=in_channels, parallel=parallel_mode)


def event_dataset_names() -> list[str]:
    """The registered datasets that are event-camera frames (``--split-by`` and ``--in-channels 2`` apply)."""
    return [name for name, spec in data.DATASETS.items() if spec.events]


def _input_options(spec: data.DatasetSpec, split_by: str | None, in_channels: int | str | None,
                   synthetic: bool) -> tuple[str, int]:
    """``(split_by, in_channels)`` for ``spec``: defaults filled in, choices checked (ValueError naming them)."""
    events = ", ".join(event_dataset_names()) or "none registered"
    given_split = split_by not in (None, "")
    text = str(in_channels).strip()
    if in_channels is not None and (isinstance(in_channels, (bool, float)) or not text.lstrip("-").isdigit()):
        raise ValueError(f"in-channels must be a whole number, got {in_channels!r}; "
                         f"choose from: {', '.join(map(str, spec.channel_choices))}")
    channels = spec.in_channels if in_channels is None else int(text)
    if not spec.events:
        if given_split:
            raise ValueError(f"split-by {split_by!r} applies only to the event-camera datasets ({events}); "
                             f"{spec.name} has no events to cut into frames")
        if channels not in spec.channel_choices:
            raise ValueError(f"in-channels {channels} applies only to the event-camera datasets ({events}); "
                             f"{spec.name} feeds the {spec.in_channels}-channel stem "
                             f"(in-channels {spec.in_channels})")
        return "", channels
    split = _choice("split-by", split_by, dict.fromkeys(spec.split_by_choices)) if given_split \
        else spec.split_by_choices[0]
    if synthetic and split != spec.split_by_choices[0]:
        raise ValueError(f"split-by {split!r} needs the real {spec.name} data: synthetic event frames are cut "
                         f"one way only (split-by {spec.split_by_choices[0]}, equal event counts per frame)")
    if channels not in spec.channel_choices:
        raise ValueError(f"in-channels {channels} is not possible for {spec.name}; "
                         f"choose from: {', '.join(map(str, spec.channel_choices))}")
    return split, channels


def _choice(what: str, value: str, choices: dict) -> str:
    for key in choices:
        if key.lower() == str(value).lower():
            return key
    raise ValueError(f"unknown {what} {value!r}; choose from: {', '.join(choices)}")


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch.device that exists here; ValueError naming the choices."""
    name = str(name).strip().lower()
    available = ["cpu"] + ([f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [])
    choices = ", ".join(available[:1] + (["cuda"] if len(available) > 1 else []) + available[1:])
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; choose from: {choices}") from None
    if device.type == "cpu" and name == "cpu":
        return device
    if device.type == "cuda" and len(available) > 1:
        index = 0 if device.index is None else device.index
        if index < len(available) - 1:
            return torch.device("cuda", index)
        raise ValueError(f"device {name!r} does not exist here; choose from: {choices}")
    if device.type == "cuda":
        raise ValueError(f"device {name!r} is not available (no CUDA GPU here); choose from: {choices}")
    raise ValueError(f"unknown device {name!r}; choose from: {choices}")


def best_device() -> str:
    """The best device present: the first CUDA GPU, else the CPU."""
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def neuron_text(p: LIFParams | None) -> str:
    """The neuron's parameters as one line (recorded beside every run)."""
    if p is None:
        return ""
    return ", ".join(f"{k}={v}" for k, v in p.as_kwargs().items())


_ENV_CACHE: dict[str, environment.Environment] = {}


def capture_env(device: torch.device | str) -> environment.Environment:
    """``environment.capture(device)``, once per device per process."""
    key = str(device)
    if key not in _ENV_CACHE:
        _ENV_CACHE[key] = environment.capture(device)
    return _ENV_CACHE[key]


def pending_record(cfg: RunConfig) -> RunRecord:
    """The record ``cfg`` will produce, before it runs (status 'pending'): its ``key`` decides resume."""
    cfg = cfg.normalized()
    env = capture_env(cfg.device)
    params = NEURONS.get(cfg.neuron)
    return RunRecord(dataset=cfg.dataset, arch=cfg.arch, backend=cfg.backend, neuron=cfg.neuron,
                     neuron_params=neuron_text(params), device=cfg.device, device_name=env.device, T=cfg.T,
                     batch_size=cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps, lr=cfg.lr,
                     seed=cfg.seed, precision=cfg.precision, synthetic=cfg.synthetic, step_mode=cfg.step_mode,
                     split_by=cfg.split_by, in_channels=cfg.in_channels, parallel=cfg.parallel,
                     world_size=cfg.world_size, chunks=cfg.chunks, compile=cfg.compile,
                     cuda_graphs=cfg.cuda_graphs, channels_last=cfg.channels_last, status="pending",
                     env=env.as_dict())


def check_data(cfg: RunConfig) -> None:
    """Open ``cfg``'s real training split once (cached for the run): raises ``DataError`` if it is missing."""
    if cfg.synthetic:
        return
    cfg = cfg.normalized()
    spec = data.get(cfg.dataset)
    spec.batches(data.DataRequest(root=Path(cfg.data_root).expanduser(), train=True, download=cfg.download, T=cfg.T,
                                  batch_size=cfg.batch_size, seed=cfg.seed, device=torch.device("cpu"),
                                  split_by=cfg.split_by or None), False)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and ("out of memory" in str(e).lower()
                                            or "can't allocate memory" in str(e).lower())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _implementation(backend_name: str, device: torch.device) -> str:
    if backend_name.startswith("spikingjelly"):
        from ..backends.spikingjelly import implementation

        return implementation(device)
    if backend_name == "tfbench":
        return "cuda kernel" if device.type == "cuda" else "cpu loop"
    return ""


def train(cfg: RunConfig, reporter: Reporter | None = None, on_step=None) -> RunRecord:
    """Train ``cfg`` and return its record (any status); raises ``DataError`` when the data is missing.

    ``on_step(epoch, i)``, if given, is called after each training step, outside its timed region
    (the profiler's ``step()``: bench/profile.py).

    The network input is ``[T, B, C, H, W]`` float32 spikes (rate-coded images, or event frames);
    the loss is cross-entropy on the logits averaged over T (``[B, num_classes]``).
    """
    reporter = reporter or SilentReporter()
    rec = pending_record(cfg)
    cfg = cfg.normalized()
    device = torch.device(cfg.device)
    arch = models.get(cfg.arch)
    spec = data.get(cfg.dataset)
    params = NEURONS.get(cfg.neuron)

    def done(**kw) -> RunRecord:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return dataclasses.replace(rec, timestamp=stamp, **kw)

    # 0. spread over processes (--parallel): can this backend be, and how
    strategy = parallel.for_run(cfg.parallel, cfg.world_size, cfg.chunks)
    reason = strategy.unavailable(arch.spiking, cfg.backend, cfg.step_mode)
    if reason is not None:
        return done(status=f"unavailable: {reason}")

    # 1. the backend: can it run here, and does its neuron match LIF_SPEC?
    if arch.spiking:
        backend = backends.get(cfg.backend)
        reason = backend.unavailable(device)
        if reason is not None:
            return done(status=f"unavailable: {reason}", differences=backend.differences)
        try:
            layer = backend.layer(params).to(device)
            checked = check_layer(layer, params, device)
            make = backend.layer if cfg.step_mode == "multi" else backend.step_layer
            make(params)   # single-step mode: Unsupported here rather than deep in the model
        except backends.Unsupported as e:
            return done(status=f"unavailable: {e}", differences=backend.differences)
        except Exception as e:  # noqa: BLE001 - a library that fails on this device is one failing cell
            return done(status="oom" if _is_oom(e) else f"error: {_one_line(e)}", differences=backend.differences)
        del layer

        def neuron() -> torch.nn.Module:
            return make(params)

        differences = backend.differences
    else:
        neuron, checked, differences = None, False, "ANN: ReLU in every spiking layer's place, at batch T*B"
    neuron = strategy.neuron(neuron, params)

    # 2. the data (a DataError here is the user's to fix: raised, not recorded)
    def request(train_split: bool) -> data.DataRequest:
        return data.DataRequest(root=Path(cfg.data_root).expanduser(), train=train_split, download=cfg.download,
                                T=cfg.T, batch_size=strategy.source_batch_size(cfg.batch_size), seed=cfg.seed,
                                device=device,
                                split_by=cfg.split_by or None)

    train_batches = strategy.shard(spec.batches(request(True), cfg.synthetic))
    test_batches = strategy.shard(spec.batches(request(False), cfg.synthetic))
    steps = len(train_batches) if cfg.max_steps is None else min(cfg.max_steps, len(train_batches))
    n_test = len(test_batches) if cfg.max_steps is None else min(cfg.max_steps, len(test_batches))
    if steps < 1:
        raise data.DataUnavailable(f"{spec.name}'s training split has fewer samples than one batch of "
                                   f"{cfg.batch_size}")
    data_mem = sum(getattr(b, "nbytes", 0) for b in (train_batches, test_batches)) if device.type == "cuda" else None

    title = f"{cfg.arch} {cfg.backend} {cfg.dataset} T={cfg.T} B={cfg.batch_size} {cfg.precision}"
    reporter.start(title, cfg.epochs, steps, n_test)
    model = optimizer = run_model = None
    try:
        torch.manual_seed(cfg.seed)     # the same initial weights for every backend
        model = models.build(cfg.arch, neuron, in_channels=cfg.in_channels, num_classes=spec.num_classes,
                             step_mode=cfg.step_mode).to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model = strategy.wrap(model, device)
        # capturable: Adam keeps its step count on the device, so the step can be replayed from a graph
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, capturable=cfg.cuda_graphs)
        # Inductor's layout optimisation off: with it, torch 2.11's fake convolution_backward predicts
        # contiguous strides for a 3x3 weight gradient that cuDNN returns channels-last (the ANN alone
        # fails so; kernels/NOTES.md, "--compile"). The convolutions still run channels-last with
        # --channels-last.
        run_model = torch.compile(model, options={"layout_optimization": False}) if cfg.compile else model
        result = _fit(run_model, optimizer, cfg, spec, train_batches, test_batches, steps, n_test, device, reporter,
                      on_step)
        result = strategy.combine(result, cfg.batch_size)
        status = "ok"
        final = done(status=status, checked=checked, differences=differences, steps_per_epoch=steps,
                     test_batches=n_test, n_params=sum(p.numel() for p in model.parameters()),
                     data_mem_bytes=data_mem, implementation=_implementation(cfg.backend, device), **result)
    except KeyboardInterrupt:
        reporter.finish("interrupted")
        raise
    except data.DataError:
        reporter.finish("data error")
        raise
    except backends.Unsupported as e:
        status = f"unavailable: {e}"
        final = done(status=status, differences=differences)
    except Exception as e:  # noqa: BLE001 - one failing cell is recorded and the sweep goes on
        status = "oom" if _is_oom(e) else f"error: {_one_line(e)}"
        final = done(status=status, checked=checked, differences=differences)
    finally:
        del model, optimizer, run_model
        if cfg.compile:
            torch._dynamo.reset()   # the next run of the sweep compiles its own model from scratch
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    reporter.finish(status)
    return final


class _StepClock:
    """Times training steps alone: CUDA events around each step on a GPU (read once per epoch, after
    the epoch's closing synchronisation), ``perf_counter`` on the CPU. What happens between two
    ``run`` calls (fetching the next batch, reading the loss) is outside every timed region."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times_ms: list[float] = []
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def run(self, fn, *args, timed: bool = True):
        if not timed:
            return fn(*args)
        if self.device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            out = fn(*args)
            end.record()
            self._events.append((begin, end))
            return out
        t0 = time.perf_counter()
        out = fn(*args)
        self.times_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    def collect(self) -> None:
        """Read the recorded CUDA events; call with the device synchronised."""
        self.times_ms += [begin.elapsed_time(end) for begin, end in self._events]
        self._events.clear()


class _GraphedStep:
    """The whole training step (encode, forward, loss, backward, Adam) captured in one CUDA graph.

    The first ``EAGER_CALLS`` calls run the step eagerly on a side stream (cuDNN's benchmark,
    Triton's autotuning, NVRTC builds and lazy allocations all happen there, as capture forbids
    them); the next call captures the step and replays it once (the training run's first warm-up
    steps cover these calls); every later call only replays it, so
    a step costs one graph launch on the host. The batch is copied into fixed input buffers by
    ``load`` (outside the timed step); the returned loss is the graph's own output tensor, valid
    until the next replay. Requires Adam with ``capturable=True`` and no host synchronisation
    inside the step (fp16's gradient scaler has one: ``RunConfig.normalized`` refuses it).
    """

    EAGER_CALLS = 2   # two eager steps: the first tunes and builds, the second runs as captured code will

    def __init__(self, step, device: torch.device, generator: torch.Generator):
        self.step, self.device, self.generator = step, device, generator
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None
        self.calls = 0

    def load(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.x is None:
            self.x, self.y = x.clone(), y.clone()
        elif x.shape != self.x.shape:
            raise ValueError(f"a CUDA-graph step needs batches of one shape; got {tuple(x.shape)} after "
                             f"{tuple(self.x.shape)} (the last, smaller batch of an epoch: drop it)")
        else:
            self.x.copy_(x, non_blocking=True)
            self.y.copy_(y, non_blocking=True)

    def run(self) -> torch.Tensor:
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
            return self.loss
        if self.calls <= self.EAGER_CALLS:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                loss = self.step(self.x, self.y)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return loss
        torch.cuda.synchronize(self.device)
        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(self.generator)   # the rate coding's draws advance every replay
        with torch.cuda.graph(self.graph):
            self.loss = self.step(self.x, self.y)
        self.graph.replay()
        return self.loss


def _fit(model, optimizer, cfg: RunConfig, spec, train_batches, test_batches, steps: int, n_test: int,
         device: torch.device, reporter: Reporter, on_step=None) -> dict:
    """The epochs; returns the RunRecord fields they measure."""
    amp_dtype = PRECISIONS[cfg.precision]
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    gen = torch.Generator(device=device).manual_seed(cfg.seed)        # the rate coding's draws
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    def autocast():
        # no cast cache in a captured step: cached casts would be tensors of the capture, freed after it
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None,
                              cache_enabled=not cfg.cuda_graphs)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step on a batch already on the device; the loss stays there (no sync)."""
        inp = spec.encode(x, cfg.T, gen, cfg.in_channels)
        with autocast():
            logits = model(inp)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss.detach()

    out = {"train_time_s": [], "test_time_s": [], "train_loss": [], "test_accuracy": []}
    clock = _StepClock(device)
    graphed = _GraphedStep(step, device, gen) if cfg.cuda_graphs else None

    for epoch in range(cfg.epochs):
        model.train()
        warmup = min(WARMUP_STEPS, steps - 1) if epoch == 0 else 0
        loss_sum = torch.zeros((), device=device)
        batches = iter(train_batches)
        _sync(device)
        t0 = read_at = time.perf_counter()
        for i in range(steps):
            x, y = next(batches)                        # fetched before the step's clock starts
            if epoch == 0 and i == warmup:
                # peak memory of steady training: cudnn's autotuning workspaces during the warm-up
                # steps would otherwise count for whichever backend runs first in the process
                timing.peak_memory_reset(device)
            if graphed is not None:
                graphed.load(x, y)                      # into the graph's input buffers, before the clock
                loss = clock.run(graphed.run, timed=i >= warmup)
            else:
                loss = clock.run(step, x, y, timed=i >= warmup)
            loss_sum.add_(loss)
            if on_step is not None:
                on_step(epoch, i)
            now = time.perf_counter()
            if now - read_at >= LOSS_READ_EVERY_S or i + 1 == steps:
                read_at = now
                reporter.step(epoch, i + 1, float(loss.item()), (i + 1) * cfg.batch_size / max(now - t0, 1e-9))
        _sync(device)
        train_s = time.perf_counter() - t0
        _close(batches)
        clock.collect()
        train_loss = float(loss_sum.item()) / steps

        reporter.evaluating(epoch)
        model.eval()
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        batches = iter(test_batches)
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(n_test):
                x, y = next(batches)
                with autocast():
                    logits = model(spec.encode(x, cfg.T, gen, cfg.in_channels))
                correct += (logits.argmax(1) == y).sum()
                seen += y.shape[0]
        _sync(device)
        test_s = time.perf_counter() - t0
        _close(batches)
        accuracy = float(correct.item()) / max(seen, 1)
        for name, value in (("train_time_s", train_s), ("test_time_s", test_s), ("train_loss", train_loss),
                            ("test_accuracy", accuracy)):
            out[name].append(value)
        reporter.epoch(epoch, train_s, test_s, train_loss, accuracy)
    steps_timed = timing.summarize(clock.times_ms)
    out.update(step_ms=steps_timed.median_ms, step_p10_ms=steps_timed.p10_ms, step_p90_ms=steps_timed.p90_ms,
               timed_steps=steps_timed.repeats,
               samples_per_s=cfg.batch_size / (steps_timed.median_ms * 1e-3) if steps_timed.median_ms > 0 else None,
               peak_mem_bytes=timing.peak_memory(device))
    return out


def _close(batches) -> None:
    """End an epoch's batch iterator now (a DataLoader's workers stop), even when it was not run to its end."""
    close = getattr(batches, "close", None)
    if close is not None:
        close()


def run_sweep(configs: Iterable[RunConfig], store: Store | None, *, force: bool = False,
              reporter: Reporter | None = None, on_skip=None) -> list[RunRecord]:
    """Train each config in turn, appending each record to ``store`` as soon as it is finished.

    A config whose key already has a finished record in ``store`` is skipped (``on_skip(record)`` is
    called with its pending record) unless ``force``. Returns the records of the configs, run or
    skipped (skipped ones as their pending record); the store holds their results.
    """
    out = []
    for cfg in configs:
        pending = pending_record(cfg)
        if store is not None and not force and store.has(pending.key, "run"):
            if on_skip is not None:
                on_skip(pending)
            out.append(pending)
            continue
        rec = train(cfg, reporter)
        if store is not None:
            store.append(rec)
        out.append(rec)
    return out
