"""One training step, its CUDA-graph replay, and the warm-up that keeps one-time costs out of the epochs.

``TrainingStep(model, optimizer, spec, cfg, generator)`` is the step: encode the batch (already on
the device) to ``[T, B, C, H, W]``, forward under ``--precision``'s autocast, cross-entropy on the
logits averaged over T, backward, Adam; it returns the loss on the device (no synchronisation).
``GraphedStep`` captures it once and replays it (``--cuda-graphs``). ``adam(model, cfg)`` is the optimizer
every backend trains with.

``warm_up(step, x, y, ...)`` runs the first steps that pay the one-time costs (NVRTC builds, cuDNN's
benchmark, Triton's autotuning, torch.compile, the graph capture) on the run's first batch, then
puts the weights, BatchNorm statistics, optimizer state, gradient scaler and the encoding's
generator back as they were, in place (a captured graph keeps pointing at the same tensors): the
epochs that follow train exactly as they would have without it, and none of them pays a one-time cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..results.schema import RunConfig

# Steps of the warm-up: enough to build every kernel and tune every layer shape of a ResNet; with
# --cuda-graphs, the two eager runs and the capture (GraphedStep.EAGER_CALLS + 1).
WARMUP_STEPS = 3
AMP_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def adam(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Adam:
    """The harness's optimizer, the same for every backend and model: Adam at ``cfg.lr``, fused (one kernel
    for all parameters instead of many small passes) on a GPU, PyTorch's default implementation elsewhere; capturable
    (its step count on the device) for ``--cuda-graphs``, so that the step can be replayed from a graph."""
    fused = torch.device(cfg.device).type == "cuda" or None
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=fused, capturable=cfg.cuda_graphs)


class TrainingStep:
    """``step(x, y) -> loss``: one optimisation step of ``model`` on a raw batch already on the device."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, spec, cfg: RunConfig,
                 generator: torch.Generator):
        self.model, self.optimizer, self.spec, self.cfg, self.generator = model, optimizer, spec, cfg, generator
        self.amp_dtype = AMP_DTYPES[cfg.precision]
        self.device_type = torch.device(cfg.device).type
        self.scaler = torch.amp.GradScaler(self.device_type) if cfg.precision == "fp16" else None

    def autocast(self):
        # no cast cache in a captured step: cached casts would be tensors of the capture, freed after it
        return torch.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None,
                              cache_enabled=not self.cfg.cuda_graphs)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.spec.encode(x, self.cfg.T, self.generator, self.cfg.in_channels)

    def encoded(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input: ``encode(x)``, in autocast's dtype under bf16/fp16. Every model's first op is
        a convolution or a linear layer, which autocast casts its input for anyway: the same values, and the
        float32 copy need not live through the step (under bf16 half the input's bytes)."""
        inp = self.encode(x)
        return inp if self.amp_dtype is None else inp.to(self.amp_dtype)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)   # first: the last step's gradients do not live through forward
        with self.autocast():   # the encoded input is not held here: what backward needs of it the graph keeps
            logits = self.model(self.encoded(x))
        loss = F.cross_entropy(logits.float(), y)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.detach()


class GraphedStep:
    """The whole training step (encode, forward, loss, backward, Adam) captured in one CUDA graph.

    The first ``EAGER_CALLS`` calls run the step eagerly on a side stream (cuDNN's benchmark,
    Triton's autotuning, NVRTC builds and lazy allocations all happen there, as capture forbids
    them); the next call captures the step and replays it once (the warm-up covers these calls);
    every later call only replays it, so a step costs one graph launch on the host. The batch is
    copied into fixed input buffers by ``load`` (outside the timed step); the returned loss is the
    graph's own output tensor, valid until the next replay. Requires Adam with ``capturable=True``
    and no host synchronisation inside the step (fp16's gradient scaler has one: refused by
    ``bench.config.normalize``).
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

    def __call__(self) -> torch.Tensor:
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


class _Snapshot:
    """The training state a warm-up changes, copied, to be put back in place."""

    def __init__(self, step: TrainingStep):
        self.model = {k: v.detach().clone() for k, v in step.model.state_dict().items()}
        self.generator = step.generator.get_state()
        self.scaler = None if step.scaler is None else step.scaler.state_dict()
        if any(step.optimizer.state.values()):
            raise RuntimeError("the warm-up must start from a fresh optimizer (no state yet)")

    def restore(self, step: TrainingStep) -> None:
        with torch.no_grad():
            for k, v in step.model.state_dict().items():
                v.copy_(self.model[k])
            # a fresh Adam: its first step sees zero moments and a zero step count, exactly the state
            # it creates lazily; zeroing in place keeps the tensors a captured graph points at
            for state in step.optimizer.state.values():
                for value in state.values():
                    if isinstance(value, torch.Tensor):
                        value.zero_()
                    else:
                        raise TypeError(f"cannot reset optimizer state of type {type(value).__name__}")
        step.generator.set_state(self.generator)
        if self.scaler is not None:
            step.scaler.load_state_dict(self.scaler)


def warm_up(step: TrainingStep, graphed: GraphedStep | None, x: torch.Tensor, y: torch.Tensor,
            steps: int | None = None) -> None:
    """Run ``steps`` (default ``WARMUP_STEPS``) training steps on ``(x, y)`` (graphed: the eager runs
    and the capture), then put the training state back as it was: what follows trains as if nothing
    had run."""
    steps = WARMUP_STEPS if steps is None else steps
    if steps <= 0:
        return
    snapshot = _Snapshot(step)
    for _ in range(steps):
        if graphed is not None:
            graphed.load(x, y)
            graphed()
        else:
            step(x, y)
    if step.device_type == "cuda":
        torch.cuda.synchronize()
    snapshot.restore(step)
