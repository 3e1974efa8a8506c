"""The event sensors' specs, and synthetic event frames: real shapes, learnable, deterministic by seed and index."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader

from tfbench.data.events.specs import EVENT_DATASETS
from tfbench.data.events.synthetic import synthetic_event_frames


def test_specs_are_the_real_sensors():
    assert {n: (s.sensor_size, s.num_classes, s.polarities) for n, s in EVENT_DATASETS.items()} == {
        "N-MNIST": ((34, 34), 10, 2), "DvsGesture": ((128, 128), 11, 2)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVENT_DATASETS["N-MNIST"].num_classes = 11


@pytest.mark.parametrize("name", ["N-MNIST", "DvsGesture"])
def test_synthetic_frames_have_the_real_shape_and_classes(name):
    spec = EVENT_DATASETS[name]
    H, W = spec.sensor_size
    dataset = synthetic_event_frames(name, T=8, num_samples=2 * spec.num_classes, seed=3)
    assert len(dataset) == 2 * spec.num_classes
    assert sorted(set(dataset.targets)) == list(range(spec.num_classes))
    frames, labels = next(iter(DataLoader(dataset, batch_size=spec.num_classes)))
    assert frames.shape == (spec.num_classes, 8, 2, H, W) and frames.dtype == torch.float32
    assert labels.tolist() == list(range(spec.num_classes))
    assert torch.all(frames >= 0) and torch.equal(frames, frames.round())
    per_sample = frames.sum(dim=(1, 2, 3, 4))
    assert torch.allclose(per_sample, torch.full_like(per_sample, spec.mean_events), rtol=0.1)
    per_frame = frames.sum(dim=(2, 3, 4))  # split_by="number": n // T events a frame, the rest in the last
    torch.testing.assert_close(per_frame[:, :-1], (per_sample // 8)[:, None].expand(-1, 7), rtol=0, atol=0)
    torch.testing.assert_close(per_frame[:, -1], per_sample - 7 * (per_sample // 8), rtol=0, atol=0)
    for label in range(spec.num_classes):  # the label's band of rows fires more: learnable
        rows = frames[label].sum(dim=(0, 1, 3))
        band = torch.zeros(H, dtype=torch.bool)
        band[label * H // spec.num_classes:(label + 1) * H // spec.num_classes] = True
        assert rows[band].mean() > 2 * rows[~band].mean()


def test_synthetic_frames_are_deterministic_by_seed_and_index():
    a = synthetic_event_frames("N-MNIST", T=4, num_samples=6, seed=7)
    b = synthetic_event_frames("N-MNIST", T=4, num_samples=6, seed=7)
    later_first = [b[i][0] for i in reversed(range(6))][::-1]
    for i in range(6):
        assert torch.equal(a[i][0], later_first[i])
    assert not torch.equal(a[0][0], synthetic_event_frames("N-MNIST", T=4, num_samples=6, seed=8)[0][0])
    assert not torch.equal(a[0][0], a[1][0])
    with pytest.raises(IndexError):
        a[6]
