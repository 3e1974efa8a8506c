"""The training loop: every backend trains Spiking-ResNet18 on synthetic data; statuses; resume."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tfbench import data, models
from tfbench.backends import BACKENDS, get
from tfbench.bench import step as step_module
from tfbench.bench import timing
from tfbench.bench import train as train_module
from tfbench.bench.config import NEURONS, normalize, resolve_device
from tfbench.bench.records import pending_record
from tfbench.bench.sweep import run_sweep
from tfbench.bench.train import train
from tfbench.results.schema import RunConfig
from tfbench.results.store import Store

from ..conftest import DEVICES

TINY = dict(dataset="MNIST", synthetic=True, T=2, batch_size=2, epochs=1, max_steps=2, device="cpu")


# the backends whose library shares tfbench's environment (the others: tests/backends/test_environments.py)
IN_PROCESS = [name for name, b in BACKENDS.items() if b.environment is None]


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_every_backend_trains_spiking_resnet18(backend: str) -> None:
    rec = train(RunConfig(backend=backend, **TINY))
    assert rec.status == "ok", rec.status
    assert rec.checked, "the backend's spikes must match the reference before it is timed"
    assert rec.backend == backend and rec.arch == "Spiking-ResNet18" and rec.neuron == "LIF"
    assert rec.steps_per_epoch == 2 and rec.test_batches == 2 and rec.timed_steps == 2   # the warm-up is apart
    assert rec.setup_time_s > 0
    assert len(rec.train_time_s) == len(rec.test_time_s) == len(rec.test_accuracy) == len(rec.train_loss) == 1
    assert all(math.isfinite(v) and v > 0 for v in rec.train_time_s + rec.test_time_s + rec.train_loss)
    assert 0.0 <= rec.test_accuracy[0] <= 1.0
    assert rec.step_ms > 0 and rec.samples_per_s == pytest.approx(2 / (rec.step_ms * 1e-3))
    assert rec.peak_mem_bytes is None                       # no device memory on the CPU
    assert rec.n_params == 11_181_642 and rec.env["torch"] == torch.__version__


@pytest.mark.parametrize("backend", IN_PROCESS)
def test_gradient_reaches_the_stem_through_every_neuron(backend: str) -> None:
    """The surrogate gradient flows back through all 17 spiking layers to the first convolution."""
    p = NEURONS["LIF"]
    b = get(backend)
    torch.manual_seed(0)
    net = models.build("Spiking-ResNet18", lambda: b.layer(p), num_classes=10)
    x = data.MNIST.encode(torch.rand(2, 1, 28, 28), 3, torch.Generator().manual_seed(0))
    F.cross_entropy(net(x), torch.tensor([1, 2])).backward()
    assert net.conv1.weight.grad is not None and net.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backend", ["tfbench", "snntorch", "norse", "spikingjelly"])
def test_single_step_mode_trains(backend: str) -> None:
    rec = train(RunConfig(backend=backend, step_mode="single", **TINY))
    assert rec.status == "ok" and rec.step_mode == "single"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs(precision: str) -> None:
    rec = train(RunConfig(backend="tfbench", precision=precision, **TINY))
    assert rec.status == "ok" and rec.precision == precision
    assert math.isfinite(rec.train_loss[0])


def test_ann_floor_is_the_same_network_with_relu() -> None:
    rec = train(RunConfig(arch="ResNet18", backend="norse", **TINY))   # the backend is ignored for an ANN
    assert rec.status == "ok" and rec.backend == "ann" and rec.neuron == "ReLU" and rec.neuron_params == ""
    assert rec.n_params == 11_181_642


def test_synthetic_data_is_learnable() -> None:
    """Loss falls and accuracy rises on the synthetic data (class prototypes + noise): the loop really
    trains (the ANN twin: the same loop, the cheapest network)."""
    # 16 steps an epoch: with 8, BatchNorm's running statistics (what evaluation reads) had had 24 updates and
    # the test accuracy stood at 0.20 on one CPU (0.84 with 16)
    rec = train(RunConfig(arch="ResNet18", dataset="MNIST", synthetic=True, T=2, batch_size=32, epochs=3,
                          max_steps=16, device="cpu", lr=1e-3))
    assert rec.status == "ok"
    assert rec.train_loss[-1] < 0.7 * rec.train_loss[0]
    assert rec.test_accuracy[-1] > 0.25                     # chance is 0.10


def test_unavailable_is_recorded_not_raised() -> None:
    rec = train(RunConfig(backend="norse", neuron="IF", **TINY))
    assert rec.status.startswith("n/a: ") and "IF neuron" in rec.status
    assert rec.differences and not rec.checked and rec.step_ms is None


def test_missing_library_is_unavailable(monkeypatch) -> None:
    monkeypatch.setattr(type(BACKENDS["snntorch"]), "version", lambda self: None)
    rec = train(RunConfig(backend="snntorch", **TINY))
    assert rec.status == "n/a: snntorch is not installed (pip install 'tfbench[peers]')"


def test_oom_and_errors_are_recorded(monkeypatch) -> None:
    def oom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module, "_fit", oom)
    assert train(RunConfig(backend="torch", **TINY)).status == "oom"

    def boom(*_a, **_k):
        raise RuntimeError("something broke\nin two lines")

    monkeypatch.setattr(train_module, "_fit", boom)
    assert train(RunConfig(backend="torch", **TINY)).status == "error: RuntimeError: something broke in two lines"


def test_missing_data_is_raised(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="MNIST not found"):
        train(RunConfig(backend="torch", **{**TINY, "synthetic": False}, data_root=str(tmp_path)))


def test_config_validation() -> None:
    cfg = normalize(RunConfig(dataset="cifar-10", arch="spiking-resnet50", backend="SNNTORCH", neuron="if",
                              precision="BF16", step_mode="Single"))
    assert (cfg.dataset, cfg.arch, cfg.backend, cfg.neuron, cfg.precision, cfg.step_mode) == (
        "CIFAR-10", "Spiking-ResNet50", "snntorch", "IF", "bf16", "single")
    bad = [({"batch_size": 70_000}, "batch size 70000 is larger than the MNIST training set \\(60000 samples\\); "
                                    "choose 1..60000"),
           ({"batch_size": 0}, "batch_size must be >= 1, got 0"), ({"T": 0}, "T must be >= 1"),
           ({"precision": "fp8"}, "unknown precision 'fp8'; choose from: fp32, bf16, fp16"),
           ({"neuron": "Izhikevich"}, "unknown neuron 'Izhikevich'; choose from: LIF, IF"),
           ({"lr": -1.0}, "lr must be > 0, got -1.0"), ({"device": "tpu"}, "unknown device 'tpu'"),
           ({"seed": 1.5}, "seed must be a whole number, got 1.5"), ({"synthetic": "false"}, "synthetic must be "
                                                                                             "true or false"),
           ({"max_steps": 0}, "max_steps must be >= 1, got 0"), ({"epochs": [1, 2]}, "epochs takes one value")]
    for change, message in bad:
        with pytest.raises(ValueError, match=message):
            normalize(RunConfig(**change))


def test_resolve_device() -> None:
    assert resolve_device("CPU") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available \\(no CUDA GPU here\\); choose from: cpu"):
            resolve_device("cuda:1")


def test_sweep_skips_done_and_force_redoes(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = train_module.train

    def counting(cfg, reporter=None, **kw):
        calls.append(cfg.backend)
        return real(cfg, reporter, **kw)

    monkeypatch.setattr(train_module, "train", counting)
    store = Store(tmp_path)
    configs = [RunConfig(backend=b, **TINY) for b in ("torch", "norse")]
    first = run_sweep(configs, store)
    assert calls == ["torch", "norse"] and [r.status for r in first] == ["ok", "ok"]
    skipped = []
    again = run_sweep(configs, store, on_skip=skipped.append)
    assert calls == ["torch", "norse"] and [r.backend for r in skipped] == ["torch", "norse"]
    assert [r.key for r in again] == [r.key for r in first]
    run_sweep(configs[:1], store, force=True)
    assert calls == ["torch", "norse", "torch"]
    assert len(store.runs.records(history=True)) == 3 and len(store.runs.records()) == 2
    assert pending_record(configs[0]).key == first[0].key


class _RecordedFetches(data.Batches):
    """Wraps a batch source: each fetch sleeps ``delay_s`` (as a slow loader would) and is logged."""

    def __init__(self, inner: data.Batches, delay_s: float, log: list[str]):
        super().__init__()
        self.inner, self.delay_s, self.log = inner, delay_s, log

    def __len__(self) -> int:
        return len(self.inner)

    def _epoch(self, epoch: int):
        for batch in self.inner:
            self.log.append("fetch")
            time.sleep(self.delay_s)
            yield batch


@pytest.mark.parametrize("device", DEVICES)
def test_step_times_leave_out_fetching_the_batch(device: str, monkeypatch) -> None:
    """No batch is fetched while a step's clock runs, and the epoch's wall time includes the fetching.

    Checked by the order of events, not by comparing durations, so a loaded machine cannot flake it;
    the one duration check is a lower bound (a busy machine only makes wall time longer)."""
    delay, steps, epochs = 0.2, 3, 2
    log: list[str] = []

    def slow_train_split(req: data.DataRequest) -> data.Batches:
        batches = data.MNIST.synthetic(req)
        return _RecordedFetches(batches, delay, log) if req.train else batches

    slow = dataclasses.replace(data.MNIST, synthetic=slow_train_split)
    real_get = data.get
    monkeypatch.setattr(data, "get", lambda name: slow if name.lower() == "mnist" else real_get(name))
    real_run = timing.StepClock.run

    def logged_run(self, fn, *args):
        log.append("start")
        out = real_run(self, fn, *args)
        log.append("stop")
        return out

    monkeypatch.setattr(timing.StepClock, "run", logged_run)
    rec = train(RunConfig(arch="ResNet18", dataset="MNIST", synthetic=True, T=1, batch_size=2, epochs=epochs,
                          max_steps=steps, device=device))
    assert rec.status == "ok", rec.status
    assert rec.timed_steps == epochs * steps                   # every step of every epoch: the warm-up is apart
    assert log.count("start") == epochs * steps and log.count("fetch") == epochs * steps
    inside = False
    for event in log:
        assert not (inside and event == "fetch"), log
        inside = {"start": True, "stop": False}.get(event, inside)
    # epoch 0's first batch is the warm-up's, fetched in the setup; every other fetch is in its epoch
    assert rec.train_time_s[0] >= (steps - 1) * delay and rec.train_time_s[1] >= steps * delay


def test_the_warm_up_leaves_training_as_it_was(monkeypatch) -> None:
    """The warm-up's steps are undone: weights, BatchNorm statistics, Adam's state and the encoding's
    draws are put back, so every loss and accuracy equals a run without a warm-up, bit for bit."""
    cfg = RunConfig(backend="tfbench", **{**TINY, "epochs": 2, "max_steps": 3, "batch_size": 4})
    with_warm_up = train(cfg)
    monkeypatch.setattr(step_module, "WARMUP_STEPS", 0)
    without = train(cfg)
    assert with_warm_up.status == without.status == "ok"
    assert with_warm_up.train_loss == without.train_loss
    assert with_warm_up.test_accuracy == without.test_accuracy


def test_one_time_costs_are_setup_not_epochs(monkeypatch) -> None:
    """A model whose first call costs 1 s (as a compile would) pays it in the setup: it happens before
    any step's clock starts, and setup_time_s holds it."""
    log: list[str] = []

    class SlowFirstCall(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 1:
                log.append("one-time cost")
                time.sleep(1.0)
            return self.inner(x)

    monkeypatch.setattr(torch, "compile", lambda m, **kw: SlowFirstCall(m))
    real_run = timing.StepClock.run
    monkeypatch.setattr(timing.StepClock, "run", lambda self, fn, *a: log.append("step") or real_run(self, fn, *a))
    rec = train(RunConfig(backend="torch", compile=True, **TINY))
    assert rec.status == "ok"
    assert log[0] == "one-time cost" and log.count("one-time cost") == 1 and log.count("step") == 2
    assert rec.setup_time_s >= 1.0


def test_event_options_are_normalized_and_in_the_key() -> None:
    events = dict(TINY, dataset="n-mnist")
    cfg = normalize(RunConfig(**events))
    assert (cfg.dataset, cfg.split_by, cfg.in_channels) == ("N-MNIST", "number", 3)
    image = normalize(RunConfig(**TINY))
    assert (image.split_by, image.in_channels) == ("", 3)
    real = dict(events, synthetic=False)
    keys = {pending_record(RunConfig(**real, split_by=s, in_channels=c)).key
            for s in ("number", "TIME") for c in (2, 3)}
    assert len(keys) == 4                                      # each value is another config: never skipped as done
    assert pending_record(RunConfig(**events)).key == pending_record(
        RunConfig(**events, split_by="number", in_channels=3)).key   # the defaults are the defaults
    rec = pending_record(RunConfig(**real, split_by="time", in_channels=2))
    assert (rec.split_by, rec.in_channels) == ("time", 2) and {"split_by", "in_channels"} <= set(rec.config())
    bad = [(dict(TINY, split_by="time"), "split-by 'time' applies only to the event-camera datasets "
                                         "\\(N-MNIST, DvsGesture\\); MNIST has no events"),
           (dict(TINY, dataset="CIFAR-10", in_channels=2), "in-channels 2 applies only to the event-camera "
                                                           "datasets \\(N-MNIST, DvsGesture\\); CIFAR-10 feeds the "
                                                           "3-channel stem"),
           (dict(events, split_by="bogus"), "unknown split_by 'bogus'; choose from: number, time"),
           (dict(events, in_channels=4), "unknown in_channels 4; choose from: 2, 3"),
           (dict(events, in_channels="two"), "in_channels must be a whole number, got 'two'"),
           (dict(events, split_by="time"), "split-by 'time' needs the real N-MNIST data")]
    for kw, message in bad:
        with pytest.raises(ValueError, match=message):
            normalize(RunConfig(**kw))


def test_two_channel_stem_trains_on_event_frames() -> None:
    rec = train(RunConfig(backend="torch", **dict(TINY, dataset="DvsGesture", in_channels=2, max_steps=1)))
    assert rec.status == "ok" and (rec.split_by, rec.in_channels) == ("number", 2)
    # ResNet18's stem has 64 * in_channels * 7 * 7 weights; DvsGesture has 11 classes (fc: 512 + 1 more)
    assert rec.n_params == 11_181_642 - 64 * 7 * 7 + 513


# --- the speed options: --channels-last, --compile, --cuda-graphs -----------------------------------


# snnTorch's Leaky returns float32 spikes for float64 input, so it cannot run the float64 check
@pytest.mark.parametrize("backend", ["tfbench", "torch", "spikingjelly", "norse"])
def test_channels_last_computes_the_same_network(backend: str) -> None:
    """NHWC convs and BN with the neurons on the same memory: in float64 (where a different summation
    order cannot flip a spike) the logits and every gradient equal the NCHW network's."""
    b = get(backend)
    p = NEURONS["LIF"]
    x = data.MNIST.encode(torch.rand(2, 1, 28, 28), 3, torch.Generator().manual_seed(0)).double()
    outs = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        net = models.build("Spiking-ResNet18", lambda: b.layer(p), num_classes=10).double()
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        logits = net(x)
        F.cross_entropy(logits, torch.tensor([1, 2])).backward()
        outs.append((logits.detach(), [q.grad.clone() for q in net.parameters()]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-9, atol=1e-12)
    for g1, g0 in zip(outs[1][1], outs[0][1]):
        torch.testing.assert_close(g1, g0, rtol=1e-7, atol=1e-10)


def test_channels_last_run_is_recorded() -> None:
    rec = train(RunConfig(backend="tfbench", channels_last=True, **TINY))
    assert rec.status == "ok" and rec.channels_last and rec.options == "channels-last"
    assert rec.key != pending_record(RunConfig(backend="tfbench", **TINY)).key


def test_the_neuron_sees_channels_last_memory_without_a_copy() -> None:
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(x)
            return x * 2

    wrap = models.resnet.Spiking(Probe())
    wrap.T = 2
    x = torch.randn(6, 5, 4, 3).contiguous(memory_format=torch.channels_last)
    y = wrap(x)
    assert seen[0].is_contiguous() and seen[0].data_ptr() == x.data_ptr()   # a view, no copy
    assert seen[0].shape == (2, 3, 4, 3, 5)                                   # [T, B, H, W, C]
    assert y.shape == x.shape and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, x * 2)


def test_options_are_in_the_key_only_when_on() -> None:
    """Records written before the options existed keep their keys; each option on is another config."""
    base = pending_record(RunConfig(backend="tfbench", **TINY))
    assert "compile" not in base.config() and "cuda_graphs" not in base.config()
    keys = {base.key}
    for flag in ("compile", "channels_last"):
        rec = pending_record(RunConfig(backend="tfbench", **{flag: True}, **TINY))
        assert rec.config()[flag] is True
        keys.add(rec.key)
    assert len(keys) == 3


def test_cuda_graphs_need_a_gpu_and_no_loss_scaler() -> None:
    with pytest.raises(ValueError, match="cuda-graphs needs a CUDA device"):
        normalize(RunConfig(backend="tfbench", cuda_graphs=True, **TINY))
    if torch.cuda.is_available():
        gpu = dict(TINY, device="cuda")
        with pytest.raises(ValueError, match="not fp16"):
            normalize(RunConfig(backend="tfbench", cuda_graphs=True, precision="fp16", **gpu))


def test_compile_computes_the_same_network() -> None:
    """torch.compile of the whole Spiking-ResNet18, the fused op inside as its registered custom op: in
    float64 the logits and every gradient equal the eager network's."""
    p = NEURONS["LIF"]
    x = data.MNIST.encode(torch.rand(2, 1, 28, 28), 2, torch.Generator().manual_seed(0)).double()
    outs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        net = models.build("Spiking-ResNet18", lambda: get("tfbench").layer(p), num_classes=10).double()
        run = torch.compile(net, fullgraph=True) if compiled else net
        logits = run(x)
        F.cross_entropy(logits, torch.tensor([1, 2])).backward()
        outs.append((logits.detach(), [q.grad.clone() for q in net.parameters()]))
    torch._dynamo.reset()
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-9, atol=1e-12)
    for g1, g0 in zip(outs[1][1], outs[0][1]):
        torch.testing.assert_close(g1, g0, rtol=1e-7, atol=1e-10)


def test_compile_option_compiles_the_trained_model(monkeypatch) -> None:
    """--compile hands the model to torch.compile (replaced here by a recording pass-through: the real
    compile is checked above) and is recorded."""
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(m) or m)
    rec = train(RunConfig(backend="tfbench", compile=True, **TINY))
    assert rec.status == "ok" and rec.compile and rec.options == "compile"
    assert len(compiled) == 1 and isinstance(compiled[0], models.resnet.SpikingResNet)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["tfbench", "torch"])
def test_cuda_graph_replays_the_eager_step(backend: str, monkeypatch) -> None:
    """Replaying the captured step computes what the eager step computes: from the same weights and
    batches, the same loss step after step (forward, backward and Adam all replayed; cuDNN fixed to
    deterministic algorithms so both runs use the same kernels)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    dev = torch.device("cuda")
    p = NEURONS["LIF"]
    gen = torch.Generator(device=dev).manual_seed(0)
    batches = [(data.MNIST.encode(torch.rand(4, 1, 28, 28, device=dev), 3, gen),
                torch.randint(0, 10, (4,), device=dev)) for _ in range(6)]
    losses = []
    for graphed in (False, True):
        torch.manual_seed(0)
        net = models.build("Spiking-ResNet18", lambda: get(backend).layer(p), num_classes=10).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, capturable=True)   # one Adam maths for both runs

        def step(x, y):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()

        run = step_module.GraphedStep(step, dev, gen) if graphed else None
        out = []
        for x, y in batches:
            if run is None:
                out.append(float(step(x, y)))
            else:
                run.load(x, y)
                out.append(float(run()))
        assert (run is None) or run.graph is not None    # steps 3.. were replays
        losses.append(out)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5), losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("backend", ["tfbench", "torch"])
def test_cuda_graph_option_trains(backend: str, precision: str) -> None:
    """--cuda-graphs through train(): recorded, timed like eager, learning. (Its loss is not the eager run's
    to the digit: cuDNN's benchmark may pick other algorithms, and a spiking network turns the last-bit
    differences into other spikes; the exact check is the test above.)"""
    cfg = dict(TINY, device="cuda", max_steps=8, batch_size=4, precision=precision)
    eager = train(RunConfig(backend=backend, **cfg))
    graphed = train(RunConfig(backend=backend, cuda_graphs=True, **cfg))
    assert eager.status == graphed.status == "ok", (eager.status, graphed.status)
    assert graphed.cuda_graphs and graphed.options == "graphs" and graphed.timed_steps == eager.timed_steps
    assert graphed.train_loss == pytest.approx(eager.train_loss, rel=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_warm_up_is_undone_under_a_cuda_graph(monkeypatch) -> None:
    """Warm-up, capture, then the state put back: the graph's replays from there compute what a fresh
    eager run computes from the same weights and batches, loss for loss (the rate coding's generator,
    registered with the graph, restarts too; cuDNN fixed to deterministic algorithms)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    dev = torch.device("cuda")
    p = NEURONS["LIF"]
    cfg = normalize(RunConfig(backend="tfbench", dataset="MNIST", T=3, batch_size=4, device="cuda"))
    batches = [(torch.rand(4, 1, 28, 28, device=dev, generator=torch.Generator(device=dev).manual_seed(i)),
                torch.arange(4, device=dev) + i) for i in range(5)]
    losses = []
    for graphed in (False, True):
        torch.manual_seed(0)
        net = models.build("Spiking-ResNet18", lambda: get("tfbench").layer(p), num_classes=10).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, capturable=True)
        gen = torch.Generator(device=dev).manual_seed(0)
        step = step_module.TrainingStep(net, opt, data.MNIST, cfg, gen)
        run = step_module.GraphedStep(step, dev, gen) if graphed else None
        if run is not None:
            step_module.warm_up(step, run, *batches[0])
            assert run.graph is not None
        out = []
        for x, y in batches:
            if run is None:
                out.append(float(step(x, y)))
            else:
                run.load(x, y)
                out.append(float(run()))
        losses.append(out)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5), losses


def test_bf16_step_feeds_the_network_its_input_in_bf16() -> None:
    """Under bf16 the step encodes the batch as float32 does and hands the network the bf16 cast (the cast
    the first convolution's autocast would make): the loss is the one the float32 input gives, bit for bit."""
    p = NEURONS["LIF"]
    cfg = normalize(RunConfig(backend="tfbench", dataset="MNIST", T=2, batch_size=3, precision="bf16", device="cpu"))
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(3)
    seen, losses = [], []
    for cast in (True, False):
        torch.manual_seed(0)
        net = models.build("Spiking-ResNet18", lambda: get("tfbench").layer(p), num_classes=10)
        net.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
        step = step_module.TrainingStep(net, torch.optim.Adam(net.parameters()), data.MNIST, cfg,
                                        torch.Generator().manual_seed(0))
        if not cast:   # the float32 input as it was fed before
            step.encoded = step.encode
        losses.append(step(x, y))
    assert seen == [torch.bfloat16, torch.float32]
    assert torch.equal(losses[0], losses[1])
