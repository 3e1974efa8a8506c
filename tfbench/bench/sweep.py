"""Many runs in turn: each record appended as soon as it is finished, finished ones skipped on a re-run."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..results.schema import RunConfig, RunRecord
from ..results.store import Store
from .progress import Reporter
from .records import pending_record


def run_sweep(configs: Iterable[RunConfig], store: Store | None, *, force: bool = False,
              reporter: Reporter | None = None, on_skip: Callable[[RunRecord], None] | None = None,
              baseline: str = "") -> list[RunRecord]:
    """Train each config in turn, appending each record to ``store`` as soon as it is finished.

    A config whose key already has a finished record in ``store`` (ok, oom or n/a) is skipped
    (``on_skip(record)`` is called with its pending record) unless ``force``; an ``error`` is run
    again. ``baseline`` (the backend a compare takes speed-ups over) is recorded in each record.
    Returns the records of the configs, run or skipped (skipped ones as their pending record). Ctrl-C
    raises :class:`~tfbench.bench.train.Interrupted` with ``done``, the records kept so far (the
    interrupted run's too, when every epoch had run and it was appended).
    """
    from . import train as training   # looked up per call: tests replace train.train

    out = []
    for cfg in configs:
        pending = pending_record(cfg)
        if store is not None and not force and store.has(pending.key, "run"):
            if on_skip is not None:
                on_skip(pending)
            out.append(pending)
            continue
        try:
            rec = training.train(cfg, reporter, baseline=baseline)
        except training.Interrupted as e:
            if e.record is not None:
                if store is not None:
                    store.append(e.record)
                out.append(e.record)
            e.done = out
            raise
        if store is not None:
            store.append(rec)
        out.append(rec)
    return out
