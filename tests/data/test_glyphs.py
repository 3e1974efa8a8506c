"""Glyphs, the generated digits: shapes, balanced labels, the same images from the same seed, train and test
apart, and structure that a pixel or a template does not give away but a network learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tfbench import data
from tfbench.bench.train import train
from tfbench.cli.run import QUICK
from tfbench.data import glyphs
from tfbench.results.schema import RunConfig

CPU = torch.device("cpu")
SIZE = data.GLYPHS.image_size[0]


def request(train: bool, batch_size: int = 10, seed: int = 0) -> data.DataRequest:
    return data.DataRequest(root=Path("/nonexistent"), train=train, download=False, T=4, batch_size=batch_size,
                            seed=seed, device=CPU)


def test_the_spec_reads_like_mnist() -> None:
    spec = data.get("Glyphs")
    assert (spec.num_classes, spec.in_channels, spec.image_size) == (10, 3, (28, 28))
    assert not spec.events and spec.files == "" and "no files" in spec.description
    x, y = next(iter(spec.batches(request(True), synthetic=False)))
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (10,) and y.dtype == torch.int64
    spikes = spec.encode(x, 4, torch.Generator().manual_seed(0))
    assert spikes.shape == (4, 10, 3, 28, 28) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    train, test = spec.batches(request(True), False), spec.batches(request(False), False)
    assert len(train) == spec.train_size // 10 and len(test) == spec.test_size // 10


def test_labels_are_balanced_in_every_chunk() -> None:
    _, labels = glyphs.split(0, True, 3 * glyphs.CHUNK + 7, SIZE)
    for k in range(3):
        chunk = labels[k * glyphs.CHUNK:(k + 1) * glyphs.CHUNK]
        assert torch.bincount(chunk, minlength=10).tolist() == [glyphs.CHUNK // 10] * 10
        assert not torch.equal(chunk, labels[:glyphs.CHUNK]) or k == 0      # a new order in each chunk
    assert len(labels) == 3 * glyphs.CHUNK + 7


def test_the_same_seed_gives_the_same_images_whatever_the_split_size() -> None:
    images, labels = glyphs.split(3, True, 300, SIZE)
    again, again_labels = glyphs.render_split(3, True, 300, SIZE)     # not the cached tensors
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    fewer, fewer_labels = glyphs.render_split(3, True, 40, SIZE)
    assert torch.equal(fewer, images[:40]) and torch.equal(fewer_labels, labels[:40])
    other, _ = glyphs.render_split(4, True, 40, SIZE)
    assert not torch.equal(other, fewer)
    assert images.dtype == torch.uint8 and images.shape == (300, 1, SIZE, SIZE)


def test_train_and_test_are_independent_draws() -> None:
    train, _ = glyphs.split(0, True, 500, SIZE)
    test, _ = glyphs.split(0, False, 500, SIZE)
    flat_train, flat_test = train.reshape(500, -1).float(), test.reshape(500, -1).float()
    assert torch.cdist(flat_test, flat_train).min() > 0                 # no test image is a training image
    # and no image of one split is the other's seed + 1 (the streams of all (seed, split) are apart)
    next_seed, _ = glyphs.split(1, True, 500, SIZE)
    assert torch.cdist(next_seed.reshape(500, -1).float(), flat_test).min() > 0


def test_every_image_differs_and_shows_its_digit() -> None:
    images, labels = glyphs.split(0, True, 500, SIZE)
    flat = images.reshape(500, -1).float()
    distance = torch.cdist(flat, flat) + torch.eye(500) * 1e9
    assert distance.min() > 0
    ink = (images > 128).reshape(500, -1).sum(1)
    assert ink.min() >= 10 and ink.max() <= SIZE * SIZE // 3              # a stroke, not a blank or a blob


def _fit(name: str, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Test accuracy of a simple classifier fitted on ``train``: 'pixel' (the best single pixel, 8 levels,
    its majority class per level) or 'template' (the nearest class-mean image)."""
    (x, y), (xt, yt) = train, test
    x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    if name == "pixel":
        pixels, levels = x.shape[1], 8
        counts = torch.zeros(pixels * levels * 10)
        cell = ((torch.arange(pixels) * levels + x.long() * levels // 256) * 10 + y[:, None]).reshape(-1)
        counts.scatter_add_(0, cell, torch.ones(cell.numel()))
        majority = counts.reshape(pixels, levels, 10).argmax(-1)                  # [pixels, levels]
        predicted = majority.gather(1, (xt.long() * levels // 256).T)              # [pixels, test]
        return (predicted == yt).float().mean(1).max().item()
    means = torch.stack([x[y == k].float().mean(0) for k in range(10)])
    return (torch.cdist(xt.float(), means).argmin(1) == yt).float().mean().item()


def test_no_pixel_and_no_template_gives_the_classes_away() -> None:
    train, test = glyphs.split(0, True, 2000, SIZE), glyphs.split(0, False, 1000, SIZE)
    assert _fit("pixel", train, test) < 0.3            # about 0.2; chance is 0.1
    assert 0.5 < _fit("template", train, test) < 0.9   # about 0.82: one image per class is not enough


def test_synthetic_glyphs_are_random_images_of_the_same_shape() -> None:
    spec = data.get("Glyphs")
    x, y = next(iter(spec.batches(request(True), synthetic=True)))
    assert x.shape == (10, 1, 28, 28) and y.dtype == torch.int64
    real, _ = glyphs.split(0, True, 10, SIZE)
    assert not torch.equal(x, real.float() / 255)


# The quick demo of `tfbench run` with no options: under a minute on a 2-core CPU. Spiking-ResNet18 with
# tfbench's LIF neuron, the run's defaults otherwise (Adam, lr 1e-3).
QUICK_DEMO = QUICK


@pytest.mark.slow
def test_the_quick_demo_learns_glyphs() -> None:
    """Trained as the quick demo trains (seed 0, CPU: deterministic), the network tells the digits apart:
    at least 80 % of the 1,000 test images (chance: 10 %)."""
    record = train(RunConfig(device="cpu", seed=0, **QUICK_DEMO))
    assert record.status == "ok", record.status
    assert record.test_accuracy[-1] >= 0.8, record.test_accuracy
