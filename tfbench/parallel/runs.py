"""Independent runs pipelined through the time segments: how the paper's Fig. 6 ran (R runs, k ranks).

R independent runs of one LIF layer (each its own input ``[T, N]`` and initial membrane) are the
micro-batches of the temporal pipeline. Rank g holds steps ``[g*T/k, (g+1)*T/k)`` of every run and
runs the whole layer (all N neurons, one kernel launch per run and direction: no neuron chunks).

Protocol, forward, on rank g (the tags name the run, so gloo pairs them; NCCL pairs in posting
order, the same on both sides):
for r = 0, 1, ..., R-1: make sure receives from rank g-1 are posted for runs up to
r + ``RECV_AHEAD`` - 1, wait for run r's ``v0`` (rank 0: the run's own initial membrane, or rest),
run the op on run r's segment, ``isend`` its ``v_T`` to rank g+1 (the last rank keeps it: the
run's final membrane) and go straight on to run r+1, the send still in flight.
Backward is the same in reverse: rank g receives run r's dL/dv_T from rank g+1 (the last rank: the
run's own gradient of its final membrane, or zero), runs the op's backward and sends dL/dv0 to rank
g-1 (rank 0 keeps it: the gradient of the run's initial membrane).

So up to k runs are being computed at once, one segment on each rank, with more queued. On a GPU no
call here blocks the host, so each rank's host enqueues all R runs within milliseconds: a receive's
wait makes the compute stream wait for NCCL's stream, where the transfers run, and a send waits on
the compute stream from NCCL's side, so the kernels of run r+1 overlap the transfer of run r's
membrane. Every run's input must have the same shape and dtype (the receive buffers are made
ahead from run r's). Each run's result is exactly one process's: every segment is the same
op started from the previous segment's v_T (tests/parallel check it bit for bit in fp32).

Time. With every segment taking ``t_seg`` and a hop ``t_c``, rank g starts run r at
``g*(t_seg + t_c) + r*t_seg`` (rank 0 is never held up; the others receive faster than they
compute), so the last rank ends run R-1 at ``R*t_seg + (k-1)*(t_seg + t_c)``: only the pipeline's
fill and drain, ``k-1`` segments and hops, are lost (bench/scaling.py records this model beside the
measurement).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from . import segment_op
from .segment_op import LIFParams
from .temporal import BACKWARD, FORWARD, Link

# Receives posted ahead of the run being computed: a membrane that arrives early finds its buffer
# (a NCCL send waits on its own stream until the receive is posted), yet a rank does not post R of
# them (R up to hundreds, ~15 us of host time each) before its first kernel.
RECV_AHEAD = 4

# Per run, forward: (run, spikes, kept h, v_T on the last rank when final=True, else None).
ForwardSink = Callable[[int, Tensor, Tensor, "Tensor | None"], None]
# Per run, backward: (run, dL/dx, dL/dv0 on the first rank when initial_grad=True, else None).
BackwardSink = Callable[[int, Tensor, "Tensor | None"], None]


def _check_runs(runs: int, link: Link) -> None:
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if runs > link.micro_batches:
        raise ValueError(f"{runs} runs on a link made for {link.micro_batches} micro-batches; "
                         f"build it with micro_batches >= {runs}")


def forward_runs(runs: int, x_of: Callable[[int], Tensor], p: LIFParams, link: Link, *,
                 v0_of: Callable[[int], Tensor | None] | None = None, final: bool = False,
                 emit: ForwardSink | None = None, layer: int = 0) -> list[tuple]:
    """The forward of ``runs`` independent runs of one layer on this rank's segment, pipelined.

    Args:
        runs: R, at most ``link.micro_batches``.
        x_of: run r's input current on this rank's segment, ``[T/k, *]`` (fp32, bf16, fp16 or fp64;
            the same shape and dtype for every run).
        p: the neuron. link: the pipeline (its ranks hold the segments in order).
        v0_of: run r's initial membrane ``[*]`` (``membrane_dtype``), read on the first rank only;
            None: every run starts at rest.
        final: on the last rank, also compute each run's final membrane v_T.
        emit: called with ``(r, s, h, v_T)`` as soon as run r is done (None: the tuples are returned).
        layer: the layer's index (its messages' tag).

    Returns the ``(s, h, v_T)`` of every run in order when ``emit`` is None, else an empty list.
    Sends are still in flight on return: ``link.flush()`` waits for them.
    """
    _check_runs(runs, link)
    prev, nxt = link.prev, link.next
    out: list[tuple] = []
    recvs: dict[int, tuple] = {}
    for r in range(runs):
        x = x_of(r)
        if prev is not None:
            while len(recvs) + r < min(runs, r + RECV_AHEAD):
                q = r + len(recvs)
                recvs[q] = link.post_recvs([x.shape[1:]], segment_op.membrane_dtype(x.dtype), x.device, prev, layer,
                                           FORWARD, q)[0]
            v0 = link.wait(recvs.pop(r), prev, f"run {r}'s membrane")
        else:
            v0 = v0_of(r) if v0_of is not None else None
        s, h, v_last = segment_op.forward(x, v0, p, nxt is not None or final)
        if nxt is not None:
            link.send(v_last, nxt, layer, FORWARD, 0, r)
            v_last = None
        if emit is None:
            out.append((s, h, v_last))
        else:
            emit(r, s, h, v_last)
    return out


def backward_runs(runs: int, gs_of: Callable[[int], Tensor], h_of: Callable[[int], Tensor], p: LIFParams,
                  link: Link, *, gv_last_of: Callable[[int], Tensor | None] | None = None,
                  initial_grad: bool = False, emit: BackwardSink | None = None, layer: int = 0) -> list[tuple]:
    """The backward of ``runs`` independent runs on this rank's segment, pipelined from the last rank.

    Args:
        gs_of: run r's dL/ds on this segment (h's shape, any float dtype). h_of: run r's kept h
            from ``forward_runs``.
        gv_last_of: run r's dL/dv_T ``[*]``, read on the last rank only (None: zero).
        initial_grad: on the first rank, also compute each run's dL/dv0.
        emit: called with ``(r, dL/dx, dL/dv0)`` as soon as run r is done (None: returned in order).

    Returns the ``(dL/dx, dL/dv0)`` of every run when ``emit`` is None, else an empty list.
    """
    _check_runs(runs, link)
    prev, nxt = link.prev, link.next
    out: list[tuple] = []
    recvs: dict[int, tuple] = {}
    for r in range(runs):
        h = h_of(r)
        if nxt is not None:
            while len(recvs) + r < min(runs, r + RECV_AHEAD):
                q = r + len(recvs)
                recvs[q] = link.post_recvs([h.shape[1:]], segment_op.membrane_dtype(h.dtype), h.device, nxt, layer,
                                           BACKWARD, q)[0]
            gv_last = link.wait(recvs.pop(r), nxt, f"run {r}'s membrane gradient")
        else:
            gv_last = gv_last_of(r) if gv_last_of is not None else None
        gx, gv0 = segment_op.backward(gs_of(r), h, gv_last, p, prev is not None or initial_grad)
        if prev is not None:
            link.send(gv0, prev, layer, BACKWARD, 0, r)
            gv0 = None
        if emit is None:
            out.append((gx, gv0))
        else:
            emit(r, gx, gv0)
    return out
