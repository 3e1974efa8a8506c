"""The one-line header a run prints before it starts: the same workload words alone and in parallel."""

from __future__ import annotations

from tfbench.cli import distributed, run
from tfbench.results.schema import RunConfig


def test_one_epoch_and_the_options_in_both_headers() -> None:
    cfg = RunConfig(synthetic=True, T=2, batch_size=4, epochs=1, max_steps=3, lean=True, device="cpu")
    alone, parallel = run.header(cfg), distributed.header(cfg, 2, quick=False)
    for text in (alone, parallel):
        assert "1 epoch (3 steps)" in text and "epochs" not in text and text.endswith(", lean")
    assert "batch 4 per process" in parallel and "per process" not in alone


def test_several_epochs_and_eager() -> None:
    text = run.header(RunConfig(synthetic=True, epochs=3, device="cpu"))
    assert "3 epochs (full)" in text and "eager" not in text
