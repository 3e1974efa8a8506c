"""The training loop (``tfbench run`` / ``compare``): one :class:`RunConfig` in, one :class:`RunRecord` out.

A run has a setup and then its epochs. The setup (``setup_time_s``, synchronised at both ends) checks
the backend's spikes against the reference (which builds or loads its kernels), builds the model and
runs the warm-up steps of ``bench/step.py`` on the first batch (kernel builds, autotuning,
torch.compile, graph capture), after which the training state is put back as it was. Reading the
dataset is before the setup and in neither figure. Each epoch then runs ``steps`` training steps
(``bench/step.py``), every one timed alone (``timing.StepClock``: from the batch already on the
device to the optimizer step), with the epoch's wall time and GPU energy read at synchronised points
around them, then the test split. ``--precision`` is autocast (fp16 with a gradient scaler).

A backend that cannot run gives a record with status ``n/a: <reason>``; running out of memory
``oom``; any other exception ``error: <message>``. Missing data is the user's to fix and is raised
(``DataError``), not recorded. Ctrl-C raises :class:`Interrupted`, carrying the record when every
epoch had run.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import torch

from .. import backends, data, models, parallel
from ..results.schema import OK, OOM, RunConfig, RunRecord, error, na
from . import energy, timing
from .check import check_layer, check_norm_layer
from .config import lean_unavailable, neuron_params, normalize
from .progress import Reporter, SilentReporter
from .records import finished, is_oom, one_line, pending_record
from .step import WARMUP_STEPS, GraphedStep, TrainingStep, adam, warm_up

# How often (seconds) the live loss is read back from the device: each read is a synchronisation.
LOSS_READ_EVERY_S = 0.5

__all__ = ["Interrupted", "WARMUP_STEPS", "check_data", "train"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: ``record`` is its finished record when every epoch had run, else None."""

    def __init__(self, record: RunRecord | None, title: str):
        super().__init__(title)
        self.record, self.title = record, title


def check_data(cfg: RunConfig) -> None:
    """Open ``cfg``'s real training split once: raises ``DataError`` if it is missing (before any work)."""
    if cfg.synthetic:
        return
    cfg = normalize(cfg)
    spec = data.get(cfg.dataset)
    spec.batches(_request(cfg, torch.device("cpu"), True, cfg.batch_size), False)


def _request(cfg: RunConfig, device: torch.device, train_split: bool, batch_size: int) -> data.DataRequest:
    return data.DataRequest(root=Path(cfg.data_root).expanduser(), train=train_split, download=cfg.download,
                            T=cfg.T, batch_size=batch_size, seed=cfg.seed, device=device,
                            split_by=cfg.split_by or None)


def _neuron(cfg: RunConfig, device: torch.device):
    """``(factory of the spiking layers' neuron, checked, differences, status)``: status is None when the
    backend can run, else the record's status (n/a, oom, error)."""
    arch = models.get(cfg.arch)
    if not arch.spiking:
        return None, False, "the ANN twin: ReLU in every spiking layer's place, at batch T*B", None
    backend = backends.get(cfg.backend)
    params = neuron_params(cfg)
    reason = backend.unavailable(device)
    if reason is not None:
        return None, False, "", na(reason)
    differences = backend.differences
    make = backend.layer if cfg.step_mode == "multi" else backend.step_layer
    try:
        checked = check_layer(backend.layer(params).to(device), params, device)
        if cfg.lean:   # what is timed is the layer with BatchNorm folded in: check that too
            checked = checked and check_norm_layer(backend.layer(params).to(device), params, device)
        make(params)   # single-step mode: Unsupported here rather than deep in the model
    except backends.Unsupported as e:
        return None, False, differences, na(str(e))
    except Exception as e:  # noqa: BLE001 - a library that fails on this device is one failing cell
        return None, False, differences, OOM if is_oom(e) else error(one_line(e))
    return (lambda: make(params)), checked, differences, None


def train(cfg: RunConfig, reporter: Reporter | None = None, on_step=None, baseline: str = "") -> RunRecord:
    """Train ``cfg`` and return its record (any status); raises ``DataError`` when the data is missing.

    ``on_step(epoch, i)``, if given, is called after each training step, outside its timed region
    (the profiler's ``step()``: bench/profile.py). ``baseline`` is recorded (the backend a compare
    takes speed-ups over).

    The network input is ``[T, B, C, H, W]`` float32 spikes (rate-coded images, or event frames);
    the loss is cross-entropy on the logits averaged over T (``[B, num_classes]``).
    """
    reporter = reporter or SilentReporter()
    rec = pending_record(cfg)
    cfg = normalize(cfg)
    device = torch.device(cfg.device)
    spec = data.get(cfg.dataset)
    title = f"{cfg.arch} {cfg.backend} {cfg.dataset} T={cfg.T} B={cfg.batch_size} {cfg.precision}"

    strategy = parallel.for_run(cfg.parallel, cfg.world_size, cfg.chunks, cfg.micro_batches)
    reason = strategy.unavailable(models.get(cfg.arch), cfg.backend, cfg.step_mode)
    if reason is not None:
        return finished(rec, status=na(reason), baseline=baseline)
    backend = backends.get(cfg.backend) if models.get(cfg.arch).spiking else None
    reason = lean_unavailable(backend) if cfg.lean and backend is not None else None
    if reason is not None:
        return finished(rec, status=na(reason), baseline=baseline)
    if backend is not None and backend.isolated:      # its library lives in an environment of its own
        reason = backend.unavailable(device) or (
            f"{backend.name} runs in a worker process of its own; --parallel is not available for it"
            if cfg.parallel != "none" else None)
        if reason is not None:
            return finished(rec, status=na(reason), baseline=baseline)
        from .worker import train_in_environment

        return train_in_environment(cfg, backend.peer_environment(), baseline)
    timing.synchronize(device)
    setup_start = time.perf_counter()
    neuron, checked, differences, status = _neuron(cfg, device)
    outcome = dict(checked=checked, differences=differences, baseline=baseline)
    if status is not None:
        return finished(rec, status=status, **outcome)
    timing.synchronize(device)
    check_s = time.perf_counter() - setup_start
    neuron = strategy.neuron(neuron, neuron_params(cfg))

    # the data (a DataError here is the user's to fix: raised, not recorded)
    batch = strategy.source_batch_size(cfg.batch_size)
    train_batches = strategy.shard(spec.batches(_request(cfg, device, True, batch), cfg.synthetic))
    test_batches = strategy.shard(spec.batches(_request(cfg, device, False, batch), cfg.synthetic))
    steps = len(train_batches) if cfg.max_steps is None else min(cfg.max_steps, len(train_batches))
    n_test = len(test_batches) if cfg.max_steps is None else min(cfg.max_steps, len(test_batches))
    if steps < 1:
        raise data.DataUnavailable(f"{spec.name}'s training split has fewer samples than one batch of "
                                   f"{cfg.batch_size}")
    data_mem = sum(getattr(b, "nbytes", 0) for b in (train_batches, test_batches)) if device.type == "cuda" else None

    reporter.start(title, cfg.epochs, steps, n_test)
    model = optimizer = run_model = final = None
    status = OK
    try:
        try:
            timing.synchronize(device)
            build_start = time.perf_counter()
            torch.manual_seed(cfg.seed)     # the same initial weights for every backend
            model = models.build(cfg.arch, neuron, in_channels=cfg.in_channels, num_classes=spec.num_classes,
                                 step_mode=cfg.step_mode, backend=backend, params=neuron_params(cfg),
                                 lean=cfg.lean, spike_input=spec.spikes).to(device)
            if cfg.channels_last:
                model = model.to(memory_format=torch.channels_last)
            model = strategy.wrap(model, device)
            optimizer = adam(model, cfg)
            # Inductor's layout optimisation off: with it, torch 2.11's fake convolution_backward
            # predicts contiguous strides for a 3x3 weight gradient that cuDNN returns channels-last
            # (the ANN alone fails so; kernels/NOTES.md, "--compile").
            run_model = torch.compile(model, options={"layout_optimization": False}) if cfg.compile else model
            result = _fit(run_model, optimizer, cfg, spec, train_batches, test_batches, steps, n_test, device,
                          reporter, on_step, build_start)
            result["setup_time_s"] += check_s
            result = strategy.combine(result, cfg.batch_size)
            final = finished(rec, status=OK, steps_per_epoch=steps, test_batches=n_test,
                             n_params=sum(p.numel() for p in model.parameters()), data_mem_bytes=data_mem,
                             implementation=backends.get(cfg.backend).implementation(device)
                             if models.get(cfg.arch).spiking else "", **outcome, **result)
        except KeyboardInterrupt:
            reporter.finish("interrupted")
            raise Interrupted(final, title) from None
        except data.DataError:
            reporter.finish("data error")
            raise
        except backends.Unsupported as e:
            status = na(str(e))
            final = finished(rec, status=status, **outcome)
        except Exception as e:  # noqa: BLE001 - one failing cell is recorded and the sweep goes on
            status = OOM if is_oom(e) else error(one_line(e))
            final = finished(rec, status=status, **outcome)
        finally:
            del model, optimizer, run_model
            if cfg.compile:
                torch._dynamo.reset()   # the next run of the sweep compiles its own model from scratch
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    except KeyboardInterrupt as e:   # during the clean-up: the record, if finished, is kept
        raise e if isinstance(e, Interrupted) else Interrupted(final, title) from None
    reporter.finish(status)
    return final


def _fit(model, optimizer, cfg: RunConfig, spec, train_batches, test_batches, steps: int, n_test: int,
         device: torch.device, reporter: Reporter, on_step, setup_start: float) -> dict:
    """The warm-up, then the epochs; returns the RunRecord fields they measure."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed)        # the rate coding's draws
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    step = TrainingStep(model, optimizer, spec, cfg, gen)
    graphed = GraphedStep(step, device, gen) if cfg.cuda_graphs else None
    clock = timing.StepClock(device)
    meter = energy.EnergyMeter(device)
    out = {"train_time_s": [], "test_time_s": [], "train_loss": [], "test_accuracy": [], "train_energy_j": []}

    for epoch in range(cfg.epochs):
        model.train()
        batches = iter(train_batches)
        first = next(batches) if epoch == 0 else None     # the warm-up's batch, fetched in the setup
        if first is not None:
            warm_up(step, graphed, *first)
            timing.synchronize(device)
            out["setup_time_s"] = time.perf_counter() - setup_start
            timing.peak_memory_reset(device)    # peak of steady training, not of the autotuning workspaces
        loss_sum = torch.zeros((), device=device)
        timing.synchronize(device)
        joules0 = meter.read()
        t0 = read_at = time.perf_counter()
        for i in range(steps):
            x, y = first if (i == 0 and first is not None) else next(batches)   # before the step's clock
            if graphed is not None:
                graphed.load(x, y)                          # into the graph's input buffers, before the clock
                loss = clock.run(graphed)
            else:
                loss = clock.run(step, x, y)
            loss_sum.add_(loss)
            if on_step is not None:
                on_step(epoch, i)
            now = time.perf_counter()
            if now - read_at >= LOSS_READ_EVERY_S or i + 1 == steps:
                read_at = now
                reporter.step(epoch, i + 1, float(loss.item()), (i + 1) * cfg.batch_size / max(now - t0, 1e-9))
        timing.synchronize(device)
        train_s = time.perf_counter() - t0
        joules1 = meter.read()
        _close(batches)
        clock.collect()
        train_loss = float(loss_sum.item()) / steps
        if joules0 is not None and joules1 is not None:
            out["train_energy_j"].append(joules1 - joules0)

        reporter.evaluating(epoch)
        test_s, accuracy = _evaluate(model, step, test_batches, n_test, device)
        for name, value in (("train_time_s", train_s), ("test_time_s", test_s), ("train_loss", train_loss),
                            ("test_accuracy", accuracy)):
            out[name].append(value)
        reporter.epoch(epoch, train_s, test_s, train_loss, accuracy)
    steps_timed = timing.summarize(clock.times_ms)
    out.update(step_ms=steps_timed.median_ms, step_p10_ms=steps_timed.p10_ms, step_p90_ms=steps_timed.p90_ms,
               timed_steps=steps_timed.repeats,
               samples_per_s=cfg.batch_size / (steps_timed.median_ms * 1e-3) if steps_timed.median_ms > 0 else None,
               peak_mem_bytes=timing.peak_memory(device), energy_note=meter.note,
               **energy.summarize(out["train_energy_j"], out["train_time_s"], steps))
    return out


def _evaluate(model, step: TrainingStep, test_batches, n_test: int, device: torch.device) -> tuple[float, float]:
    """``(seconds, accuracy)`` of the test split (synchronised wall time)."""
    model.eval()
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    batches = iter(test_batches)
    timing.synchronize(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n_test):
            x, y = next(batches)
            with step.autocast():
                logits = model(step.encode(x))
            correct += (logits.argmax(1) == y).sum()
            seen += y.shape[0]
    timing.synchronize(device)
    seconds = time.perf_counter() - t0
    _close(batches)
    return seconds, float(correct.item()) / max(seen, 1)


def _close(batches) -> None:
    """End an epoch's batch iterator now (a DataLoader's workers stop), even when it was not run to its end."""
    close = getattr(batches, "close", None)
    if close is not None:
        close()
