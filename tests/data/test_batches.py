"""Batch sources: the pre-made pool of synthetic event batches, the request's split_by, worker errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from tfbench import data
from tfbench.data import batches
from tfbench.data.batches import PooledBatches
from tfbench.data.errors import DatasetCorrupted
from tfbench.data.events import synthetic as synthetic_events
from tfbench.data.spec import POOL_BATCHES, DataRequest

CPU = torch.device("cpu")


def request(train: bool, batch_size: int = 2, T: int = 2, seed: int = 0, split_by: str | None = None) -> DataRequest:
    return DataRequest(root=Path("/nonexistent"), train=train, download=False, T=T, batch_size=batch_size, seed=seed,
                       device=CPU, split_by=split_by)


def _order(batches: PooledBatches, n: int) -> list[int]:
    """The pool indices of the first ``n`` batches of one epoch of ``batches``."""
    index = {x.data_ptr(): i for i, (x, _) in enumerate(batches.pool)}
    return [index[x.data_ptr()] for (x, _), _ in zip(batches, range(n))]


@pytest.mark.parametrize("name", ["N-MNIST", "DvsGesture"])
def test_synthetic_events_are_a_pool_made_once(name: str, monkeypatch) -> None:
    """The batches are made when the split is asked for (before any step), at most POOL_BATCHES of them;
    an epoch is as long as the real split's and cycles through the pool."""
    spec = data.get(name)
    train = spec.batches(request(True), synthetic=True)
    test = spec.batches(request(False), synthetic=True)
    assert isinstance(train, PooledBatches)
    assert len(train) == spec.train_size // 2 and len(train.pool) == POOL_BATCHES
    assert train.nbytes == sum(x.numel() * 4 + y.numel() * 8 for x, y in train.pool)

    def made_late(*_args):
        raise AssertionError("a synthetic sample was made after the pool")

    monkeypatch.setattr(synthetic_events.SyntheticEventFrames, "__getitem__", made_late)
    n = POOL_BATCHES
    first = _order(train, 3 * n)
    assert sorted(first[:n]) == list(range(n))                 # every pool batch once ...
    assert first[n:2 * n] == first[:n] == first[2 * n:]         # ... then again, in the same order
    assert _order(train, n) != first[:n]                        # a new order the next epoch
    assert len(test) == -(-spec.test_size // 2)
    assert _order(test, n + 1) == [*range(n), 0] == _order(test, n + 1)   # the test split: in order, every epoch


def test_pool_is_deterministic_by_seed_and_apart_between_splits() -> None:
    spec = data.get("N-MNIST")
    a = spec.batches(request(True, seed=3), synthetic=True)
    b = spec.batches(request(True, seed=3), synthetic=True)
    c = spec.batches(request(True, seed=4), synthetic=True)
    t = spec.batches(request(False, seed=3), synthetic=True)
    for (xa, ya), (xb, yb) in zip(a.pool, b.pool):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert [torch.equal(x, y) for (x, _), (y, _) in zip(a, b)] == [True] * len(a)   # the same order too
    assert not torch.equal(a.pool[0][0], c.pool[0][0])
    assert not any(torch.equal(x, y) for (x, _), (y, _) in zip(a.pool, t.pool))
    x, y = a.pool[0]
    assert x.shape == (2, 2, 2, 34, 34) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_pool_size_is_capped_in_bytes() -> None:
    source = [(torch.zeros(10, 25), torch.zeros(10, dtype=torch.int64)) for _ in range(20)]   # 1,080 bytes each
    assert len(PooledBatches(source, 20, shuffle=False, seed=0, max_bytes=3_500).pool) == 3
    assert len(PooledBatches(source, 20, shuffle=False, seed=0, max_bytes=10).pool) == 1   # at least one
    assert len(PooledBatches(source, 2, shuffle=False, seed=0).pool) == 2                  # no more than an epoch


def test_synthetic_events_take_only_the_split_they_are_made_as() -> None:
    spec = data.get("DvsGesture")
    assert spec.events and spec.split_by_choices == ("number", "time") and spec.channel_choices == (2, 3)
    assert not data.MNIST.events and data.MNIST.channel_choices == (3,)
    spec.batches(request(True, split_by="number"), synthetic=True)
    with pytest.raises(ValueError, match="split_by='number' only, not 'time'"):
        spec.batches(request(True, split_by="time"), synthetic=True)


def test_event_encoding_gives_the_channels_asked_for() -> None:
    spec = data.get("N-MNIST")
    x, _ = next(iter(spec.batches(request(True), synthetic=True)))
    two, three = spec.encode(x, 2, None, 2), spec.encode(x, 2, None)
    assert two.shape == (2, 2, 2, 34, 34) and three.shape == (2, 2, 3, 34, 34)
    torch.testing.assert_close(two, three[:, :, :2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="3 channels only"):
        data.MNIST.encode(torch.full((2, 1, 28, 28), 0.5), 2, torch.Generator().manual_seed(0), 2)


class _Damaged(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise DatasetCorrupted(f"the sample file {index}.npz is damaged; delete the cache")


def test_a_data_error_in_a_loader_worker_keeps_its_one_line_message() -> None:
    source = batches.DatasetBatches(_Damaged(), 2, shuffle=False, seed=0, device=CPU)
    source.workers = 1                    # as on a GPU run
    with pytest.raises(DatasetCorrupted) as e:
        next(iter(source))
    assert str(e.value) == "the sample file 0.npz is damaged; delete the cache"
    with pytest.raises(DatasetCorrupted) as raw:  # what the DataLoader alone gives: the worker's traceback
        next(iter(DataLoader(_Damaged(), batch_size=2, num_workers=1)))
    assert "Traceback" in str(raw.value)
    assert str(batches.worker_error_message(raw.value)) == str(e.value)
