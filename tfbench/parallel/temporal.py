"""The temporal pipeline: the T time steps split into k contiguous segments, one per rank.

Rank g holds steps ``[g*T/k, (g+1)*T/k)`` of every sample and runs the whole network on them (convs
and BN on ``[T/k * B, ...]``). A spiking layer on rank g needs the membrane its neurons had at the
end of rank g-1's segment: it receives that as the fused op's ``v0`` from rank g-1 and sends its own
final membrane ``v_T`` to rank g+1 (rank 0 starts from the op's resting membrane, ``v0=None``:
``v_reset`` for a hard reset, 0 for a soft one, docs/neurons.md). Backward runs the other way: the layer
receives dL/dv_T from rank g+1 (none on the last rank), runs the op's backward with it, and sends
dL/dv0 to rank g-1. With these two messages per layer the pipeline computes exactly what one process
computes on all T steps, except BatchNorm, which normalises with each segment's own statistics (as
DDP without SyncBN normalises with each rank's).

Overlap. Sends are asynchronous (``isend``), receives are posted up front (``irecv``) and waited on
only where the value is needed, so the ranks work at once:
- over layers, a wavefront: while rank g runs layer l, rank g-1 already runs layer l+1;
- over neurons within a layer (``chunks`` C > 1): each layer's neurons are cut into C chunks and
  rank g starts chunk c as soon as rank g-1 has sent chunk c's membrane;
- over micro-batches (``micro_batches`` M > 1): the batch is split into M micro-batches that run
  through the whole network one after another, so rank g runs micro-batch m while rank g+1 runs
  m-1 (GPipe's schedule: every micro-batch's forward, then every backward, the last micro-batch's
  first, as autograd orders them). A rank then waits for its first membrane for one layer of one
  micro-batch instead of one layer of the whole batch. BatchNorm normalises each micro-batch's
  segment with that micro-batch's statistics (and its running statistics take M updates a step):
  reference.py's ``segmented_forward(..., micro_batches=M)`` is what this equals.
On a GPU nothing here blocks the host: a NCCL wait only orders the compute stream after NCCL's own
stream, on which the transfers run beside the kernels. (Ranks sharing GPUs, ``dist.SHARE_GPUS_ENV``,
run in a gloo group instead, which carries CPU tensors only: there each message is copied through host
memory, and a send and a wait block the host for it.)

Messages are told apart by tags (layer, direction, chunk, micro-batch) on gloo; NCCL ignores tags
and pairs a rank's sends to a peer with the peer's receives in the order they were posted, which
holds because every rank builds the same layers and runs them in the same order (autograd's
backward order is the same on every rank: the graphs are the same but for the first rank's missing
v0 and the last's missing v_T, and the engine runs nodes in decreasing creation order, so a lean
node's ``_Handoff``, made right after it, receives just before the node's backward on every rank).

The loss: every rank's network output is the sum of its segment's logits over its steps, divided by
the full T; ``TemporalParallel`` sums these over the ranks with an all-reduce whose backward is the
identity, so every rank holds the same logits and loss (cross-entropy on the logits averaged over
all T, as one process computes). After backward the parameter gradients, each rank's share, are
summed over the ranks (all-reduce SUM) so that the optimizer step keeps the parameters identical.
BatchNorm running statistics are averaged over the ranks before evaluation.

Lean networks (``models.build(..., lean=True)``: conv -> BatchNorm -> LIF as one fused node) run the same
protocol through ``PipelinedLIF.carry``: the node takes the received membrane as its ``v0`` and gives its
``v_T``, whose gradient comes back from the next rank through ``_Handoff`` (a zero in the network's
output); its neurons run as one chunk.

``reference.py`` holds the single-process computation this equals; tests/parallel compare every
spike, the loss and every gradient. The op is called only through ``segment_op.py`` (a lean node through
the model's ``Spiking.fold_conv``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from . import dist as tdist
from . import segment_op
from .segment_op import LIFParams

FORWARD, BACKWARD = 0, 1   # message directions (part of each message's tag)


class PeerLost(RuntimeError):
    """A pipeline neighbour stopped answering (it failed, or the group timed out)."""


def segment(T: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s time steps ``[lo, hi)`` of ``T`` split over ``world`` ranks; ValueError unless divisible."""
    if T % world:
        multiples = ", ".join(str(world * i) for i in range(1, 4))
        raise ValueError(f"the temporal pipeline needs T divisible by the number of processes: T={T}, "
                         f"{world} processes; choose T a multiple of {world} ({multiples}, ...)")
    steps = T // world
    return rank * steps, (rank + 1) * steps


def chunk_bounds(n: int, chunks: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of ``chunks`` near-equal contiguous pieces of ``n`` neurons (at most n pieces)."""
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    chunks = max(1, min(chunks, n))
    base, extra = divmod(n, chunks)
    out, lo = [], 0
    for c in range(chunks):
        hi = lo + base + (1 if c < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


@dataclass
class Link:
    """One rank's place in the pipeline: its neighbours in ``group`` and its messages in flight.

    ``ranks`` are the group's global ranks in pipeline order (rank 0 holds the first segment);
    ``chunks`` is the number of neuron chunks per layer; ``micro_batches`` the number of micro-batches
    (or independent runs, runs.py) in flight per step, ``micro`` the one being run forward now. Sends
    stay referenced until ``flush()``.
    """

    ranks: list[int]
    rank: int                          # this process's index in ``ranks``
    group: dist.ProcessGroup | None = None
    chunks: int = 1
    timeout_s: float = tdist.DEFAULT_TIMEOUT_S
    micro_batches: int = 1
    micro: int = 0
    handoffs: list = field(default_factory=list)   # the lean nodes' v_T in this forward (_Handoff's zeros)
    _sends: list = field(default_factory=list)
    _layers: int = 0

    @classmethod
    def world(cls, chunks: int = 1, micro_batches: int = 1) -> "Link":
        """The pipeline over every rank of the default group."""
        n = dist.get_world_size()
        return cls(ranks=list(range(n)), rank=dist.get_rank(), chunks=chunks, micro_batches=micro_batches,
                   timeout_s=tdist.timeout_s())

    @property
    def size(self) -> int:
        return len(self.ranks)

    @property
    def prev(self) -> int | None:
        """Global rank of the previous segment's holder (None on the first)."""
        return self.ranks[self.rank - 1] if self.rank > 0 else None

    @property
    def next(self) -> int | None:
        """Global rank of the next segment's holder (None on the last)."""
        return self.ranks[self.rank + 1] if self.rank + 1 < self.size else None

    def register(self) -> int:
        """A new layer's index: the same on every rank when layers are built in the same order."""
        self._layers += 1
        return self._layers - 1

    def _tag(self, layer: int, direction: int, chunk: int, micro: int = 0) -> int:
        if not 0 <= micro < max(self.micro_batches, 1):
            raise ValueError(f"micro-batch {micro} of a link made for {self.micro_batches}")
        return ((layer * 2 + direction) * max(self.chunks, 1) + chunk) * max(self.micro_batches, 1) + micro

    def _through_host(self, device: torch.device) -> bool:
        """Whether a message of ``device``'s tensors goes through host memory: a gloo group (ranks
        sharing GPUs, ``dist.SHARE_GPUS_ENV``) carries only CPU tensors between processes."""
        return device.type == "cuda" and dist.get_backend(self.group) == "gloo"

    def post_recvs(self, shapes: Sequence[torch.Size], dtype: torch.dtype, device: torch.device, src: int,
                   layer: int, direction: int, micro: int = 0) -> list[tuple[object, Tensor, Tensor]]:
        """Post one receive per chunk from ``src``; each item is waited on with ``wait``."""
        out = []
        through_host = self._through_host(device)
        for c, shape in enumerate(shapes):
            # through the host the GPU buffer is made now too: a rank holds on its GPU what it would with NCCL
            buf = torch.empty(shape, dtype=dtype, device=device)
            message = torch.empty(shape, dtype=dtype) if through_host else buf
            tag = self._tag(layer, direction, c, micro)
            out.append((dist.irecv(message, src=src, group=self.group, tag=tag), message, buf))
        return out

    def wait(self, item: tuple[object, Tensor, Tensor], src: int, what: str) -> Tensor:
        """The received tensor of ``item``, on the device it was posted for; PeerLost (one line naming
        both ranks) if it never comes."""
        work, message, buf = item
        try:
            if message.is_cuda:
                work.wait()            # orders the streams; the host does not block
            else:
                work.wait(timedelta(seconds=self.timeout_s))
        except Exception as e:  # noqa: BLE001 - gloo/NCCL raise several types for a lost peer
            raise PeerLost(f"rank {self.ranks[self.rank]}: {what} from rank {src} never came: "
                           f"{tdist.one_line(e)}") from None
        return buf if message is buf else buf.copy_(message)

    def send(self, t: Tensor, dst: int, layer: int, direction: int, chunk: int, micro: int = 0) -> None:
        """Send ``t`` to ``dst`` without waiting; ``t`` is kept alive until ``flush()`` (through the host
        too: a rank then holds on its GPU what it would hold with NCCL)."""
        self._sends = [s for s in self._sends if not s[0].is_completed()]
        tag = self._tag(layer, direction, chunk, micro)
        message = t.cpu() if self._through_host(t.device) else t
        self._sends.append((dist.isend(message, dst=dst, group=self.group, tag=tag), message, t))

    def flush(self) -> None:
        """Wait for every send in flight (PeerLost if a neighbour stopped receiving)."""
        sends, self._sends = self._sends, []
        for work, message, _ in sends:
            try:
                if message.is_cuda:
                    work.wait()
                else:
                    work.wait(timedelta(seconds=self.timeout_s))
            except Exception as e:  # noqa: BLE001
                raise PeerLost(f"rank {self.ranks[self.rank]}: a membrane sent to a neighbour was never "
                               f"received: {tdist.one_line(e)}") from None


def forward_segment(xs: Sequence[Tensor], p: LIFParams, link: Link, layer: int,
                    micro: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """One layer's forward on this rank's segment, chunk by chunk.

    Args:
        xs: the chunks of the layer's input current, each ``[T/k, *]`` (fp32, bf16, fp16 or fp64),
            together all the layer's neurons; chunk c of every rank holds the same neurons.
        p: the neuron (validated ``LIFParams``). link: the pipeline. layer: the layer's index.
        micro: the micro-batch's index (its messages' tag).

    Returns ``(s, h)``: per chunk the spikes and the kept pre-reset membrane, each of its chunk's
    shape and dtype. Receives chunk c's ``v0`` (float32, float64 for float64) from the previous rank
    before running it, and sends its ``v_T`` to the next rank right after.
    """
    prev, nxt = link.prev, link.next
    recvs = None
    if prev is not None:
        recvs = link.post_recvs([x.shape[1:] for x in xs], segment_op.membrane_dtype(xs[0].dtype), xs[0].device,
                                prev, layer, FORWARD, micro)
    spikes, kept = [], []
    for c, x in enumerate(xs):
        v0 = link.wait(recvs[c], prev, f"the membrane of layer {layer} chunk {c}") if recvs else None
        s, h, v_last = segment_op.forward(x, v0, p, nxt is not None)
        if nxt is not None:
            link.send(v_last, nxt, layer, FORWARD, c, micro)
        spikes.append(s)
        kept.append(h)
    return spikes, kept


def backward_segment(gss: Sequence[Tensor], hs: Sequence[Tensor], p: LIFParams, link: Link,
                     layer: int, micro: int = 0) -> list[Tensor]:
    """One layer's backward on this rank's segment, chunk by chunk: per chunk ``dL/dx``.

    ``gss``: dL/ds per chunk (any float dtype, the chunk's shape); ``hs``: the chunks' kept membranes
    from ``forward_segment``. Receives chunk c's dL/dv_T from the next rank (none on the last), runs
    the op's backward with it, and sends dL/dv0 to the previous rank (none from the first).
    """
    prev, nxt = link.prev, link.next
    recvs = None
    if nxt is not None:
        recvs = link.post_recvs([h.shape[1:] for h in hs], segment_op.membrane_dtype(hs[0].dtype), hs[0].device,
                                nxt, layer, BACKWARD, micro)
    grads = []
    for c, (gs, h) in enumerate(zip(gss, hs)):
        gv_last = link.wait(recvs[c], nxt, f"the membrane gradient of layer {layer} chunk {c}") if recvs else None
        gx, gv0 = segment_op.backward(gs, h, gv_last, p, prev is not None)
        if prev is not None:
            link.send(gv0, prev, layer, BACKWARD, c, micro)
        grads.append(gx)
    return grads


def _split(flat: Tensor, bounds: list[tuple[int, int]]) -> list[Tensor]:
    return [flat] if len(bounds) == 1 else [flat[:, lo:hi] for lo, hi in bounds]


def _join(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class _PipelinedLIFFunction(torch.autograd.Function):
    """The layer's fused op with its membrane exchanged at the segment boundaries (module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, layer: "PipelinedLIF") -> Tensor:  # type: ignore[override]
        steps = x.shape[0]
        flat = x.reshape(steps, -1)
        bounds = chunk_bounds(flat.shape[1], layer.link.chunks)
        micro = layer.link.micro
        s, h = forward_segment(_split(flat, bounds), layer.params, layer.link, layer.index, micro)
        ctx.save_for_backward(*h)
        ctx.layer, ctx.bounds, ctx.micro = layer, bounds, micro
        return _join(s).view(x.shape)

    @staticmethod
    def backward(ctx, gs: Tensor):  # type: ignore[override]
        layer = ctx.layer
        flat = gs.reshape(gs.shape[0], -1)
        gx = backward_segment(_split(flat, ctx.bounds), ctx.saved_tensors, layer.params, layer.link, layer.index,
                              ctx.micro)
        return _join(gx).view(gs.shape), None


class PipelinedLIF(nn.Module):
    """A multi-step LIF layer ``[T/k, *] -> [T/k, *]`` (spikes, x's dtype) in the temporal pipeline.

    Layers must be built in the same order on every rank (their index pairs the messages).
    ``chunks > 1`` (``link.chunks``) cuts the layer's neurons into chunks that flow through the
    pipeline one after another; in a network it costs one copy of the input and of the spikes.
    """

    def __init__(self, params: LIFParams, link: Link):
        super().__init__()
        if params.learned:
            raise ValueError(f"the temporal pipeline runs LIF neurons (tfbench.ops.neurons.LIFParams), not "
                             f"{type(params).__name__}: a learned time constant is not carried across ranks")
        self.params = params.validate()
        self.link = link
        self.index = link.register()

    def forward(self, x: Tensor) -> Tensor:
        return _PipelinedLIFFunction.apply(x, self)

    def norm_args(self) -> tuple[LIFParams, tuple[Tensor, ...]]:
        """What a lean network's fused nodes take for this layer (``Spiking.fold_conv``)."""
        return self.params, ()

    def carry(self, run, x: Tensor, neurons: int) -> Tensor:
        """A lean network's fused conv -> BatchNorm -> LIF node, ``run(v0, return_state) -> (s, v_T)``, on this
        rank's segment (``Spiking.fold_conv``; x its input, ``neurons`` its v0's length): v0 received from the
        previous rank, v_T sent to the next; in backward dL/dv_T received before the node runs (``_Handoff``,
        whose zero is in the network's output) and dL/dv0 sent once computed (a hook on v0, which autograd calls
        in a full ``loss.backward()``: not under ``autograd.grad`` or ``backward(inputs=...)``, which would leave
        the previous rank waiting). The node's neurons run as one chunk."""
        link, prev, nxt, micro, layer = self.link, self.link.prev, self.link.next, self.link.micro, self.index
        dtype, grad = segment_op.membrane_dtype(x.dtype), torch.is_grad_enabled()
        v0 = None
        if prev is not None:
            (item,) = link.post_recvs([torch.Size([neurons])], dtype, x.device, prev, layer, FORWARD, micro)
            v0 = link.wait(item, prev, f"the membrane of layer {layer}")
            if grad:
                v0.requires_grad_(True)
                v0.register_hook(lambda g: link.send(g.contiguous(), prev, layer, BACKWARD, 0, micro))
        if nxt is None:
            return run(v0, False)
        s, v_last = run(v0, True)
        link.send(v_last.detach(), nxt, layer, FORWARD, 0, micro)
        if grad:   # the next rank sends dL/dv0 whenever grad is on: received even where nothing before needs it
            anchor = v_last if v_last.requires_grad else v_last.detach().requires_grad_(True)
            link.handoffs.append(_Handoff.apply(anchor, self, micro))
        return s

    def extra_repr(self) -> str:
        return f"layer={self.index}, rank={self.link.rank} of {self.link.size}, chunks={self.link.chunks}"


class _Handoff(torch.autograd.Function):
    """A lean node's v_T, already sent to the next rank, as a zero scalar in the network's output
    (``TemporalParallel`` adds ``link.handoffs`` to the logits): its backward receives dL/dv_T from the
    next rank and gives it to the node, whose backward then runs with it."""

    @staticmethod
    def forward(ctx, v_last: Tensor, layer: "PipelinedLIF", micro: int) -> Tensor:  # type: ignore[override]
        ctx.layer, ctx.micro, ctx.shape, ctx.dtype, ctx.device = layer, micro, v_last.shape, v_last.dtype, v_last.device
        return v_last.new_zeros(())

    @staticmethod
    def backward(ctx, _: Tensor):  # type: ignore[override]
        link, layer = ctx.layer.link, ctx.layer.index
        (item,) = link.post_recvs([ctx.shape], ctx.dtype, ctx.device, link.next, layer, BACKWARD, ctx.micro)
        return link.wait(item, link.next, f"the membrane gradient of layer {layer}"), None, None


class _SumOverRanks(torch.autograd.Function):
    """All-reduce SUM forward, identity backward: every rank's logits get the loss's full gradient.

    In training it also queues the parameter-gradient all-reduce to run when backward ends."""

    @staticmethod
    def forward(ctx, partial: Tensor, owner: "TemporalParallel") -> Tensor:  # type: ignore[override]
        total = partial.to(torch.promote_types(partial.dtype, torch.float32)).contiguous().clone()
        dist.all_reduce(total, group=owner.link.group)
        ctx.owner, ctx.dtype = owner, partial.dtype
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        owner = ctx.owner
        if owner.training:
            torch.autograd.Variable._execution_engine.queue_callback(owner.reduce_gradients)
        return grad.to(ctx.dtype), None


class TemporalParallel(nn.Module):
    """A Spiking-ResNet (built with ``PipelinedLIF`` neurons) run as the temporal pipeline.

    ``forward(x)``: x is the whole input ``[T, B, C, H, W]`` (the same on every rank); this rank runs
    its segment and returns the logits averaged over all T, ``[B, classes]`` float32 (float64 for a
    float64 network), identical on every rank. With ``micro_batches`` M > 1 the batch is cut into
    ``min(M, B)`` near-equal micro-batches (``torch.tensor_split``: the first ones one sample larger)
    that flow through the ranks one after another (module docstring). After ``loss.backward()``
    every parameter's gradient is the full gradient (summed over the ranks). Parameters and buffers
    are copied from the pipeline's first rank at construction.
    """

    def __init__(self, module: nn.Module, link: Link, micro_batches: int = 1):
        super().__init__()
        if micro_batches < 1:
            raise ValueError(f"micro_batches must be >= 1, got {micro_batches}")
        if not any(isinstance(m, PipelinedLIF) for m in module.modules()):
            raise ValueError(f"{type(module).__name__} has no PipelinedLIF layer: its neurons would start every "
                             "segment from rest; build it with the pipeline's neuron")
        self.module = module
        self.link = link
        self.micro_batches = micro_batches
        link.micro_batches = max(link.micro_batches, micro_batches)
        self._stats_stale = False
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=link.ranks[0], group=link.group)

    def forward(self, x: Tensor) -> Tensor:
        lo, hi = segment(x.shape[0], self.link.rank, self.link.size)
        self.link.flush()                   # the previous step's messages have all arrived
        self.link.handoffs.clear()          # none of an earlier forward that did not finish
        if self.training:
            self._stats_stale = True
        elif self._stats_stale:
            self.average_statistics()
        seg = x[lo:hi]
        parts = torch.tensor_split(seg, min(self.micro_batches, seg.shape[1]), dim=1)
        if len(parts) > self.link.micro_batches:
            raise ValueError(f"{len(parts)} micro-batches on a link made for {self.link.micro_batches}")
        logits = []
        for m, part in enumerate(parts):
            self.link.micro = m             # the tag of this micro-batch's messages (PipelinedLIF reads it)
            logits.append(self.module(part))
        self.link.micro = 0
        partial = (logits[0] if len(logits) == 1 else torch.cat(logits, 0)) * ((hi - lo) / x.shape[0])
        if self.link.handoffs:   # zeros, through which the lean nodes' dL/dv_T come back (_Handoff)
            handoffs, self.link.handoffs = self.link.handoffs, []
            partial = partial + torch.stack(handoffs).sum().to(partial.dtype)
        return _SumOverRanks.apply(partial, self)

    def reduce_gradients(self) -> None:
        """Sum every parameter's gradient over the ranks (a parameter with none counts as zero)."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        if not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat, group=self.link.group)
        for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
            if p.grad is None:
                p.grad = g
            else:
                p.grad.copy_(g)

    @torch.no_grad()
    def average_statistics(self) -> None:
        """Average the floating-point buffers (BatchNorm running statistics) over the ranks."""
        bufs = [b for b in self.module.buffers() if b.dtype.is_floating_point]
        if bufs:
            flat = _flatten_dense_tensors(bufs)
            dist.all_reduce(flat, group=self.link.group)
            flat /= self.link.size
            for b, v in zip(bufs, _unflatten_dense_tensors(flat, bufs)):
                b.copy_(v)
        self._stats_stale = False
