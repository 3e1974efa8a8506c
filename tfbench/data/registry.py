"""The registered datasets, each a :class:`DatasetSpec` of plain data: ``DATASETS`` and ``get``.

Importing this imports no torch: every loader, synthetic generator and encoder is a ``lazy``
reference to the module that does the work (``vision.py``, ``glyphs.py``, ``events/``,
``batches.py``, ``encoding.py``), imported at its first call. The command line builds its options
and ``--help`` from here.
"""

from __future__ import annotations

from .events.specs import EVENT_DATASETS, IN_CHANNELS, SPLIT_BY
from .spec import DatasetSpec, lazy

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")

ENCODE_IMAGES = lazy("tfbench.data.encoding:encode_images")   # Bernoulli rate coding to [T, B, 3, H, W]


def _synthetic_images(shape: tuple[int, int, int], num_classes: int, train_size: int, test_size: int):
    return lazy("tfbench.data.batches:synthetic_images", shape, num_classes, train_size, test_size)


MNIST = DatasetSpec(
    name="MNIST", num_classes=10, in_channels=3, image_size=(28, 28), train_size=60_000, test_size=10_000,
    load=lazy("tfbench.data.vision:load", "MNIST"), synthetic=_synthetic_images((1, 28, 28), 10, 60_000, 10_000),
    encode=ENCODE_IMAGES, spikes=True, files=f"<data-root>/MNIST/raw/{{{','.join(MNIST_FILES)}}}",
    description="handwritten digits, 28x28 grey, 10 classes (torchvision's files; --download fetches them)",
)

CIFAR10 = DatasetSpec(
    name="CIFAR-10", num_classes=10, in_channels=3, image_size=(32, 32), train_size=50_000, test_size=10_000,
    load=lazy("tfbench.data.vision:load", "CIFAR-10"),
    synthetic=_synthetic_images((3, 32, 32), 10, 50_000, 10_000),
    encode=ENCODE_IMAGES, spikes=True, files=f"<data-root>/cifar-10-batches-py/{{{','.join(CIFAR10_FILES)}}}",
    description="photos of 10 object classes, 32x32 colour (torchvision's files; --download fetches them)",
)


def _event_dataset(name: str, train_size: int, test_size: int, description: str) -> DatasetSpec:
    es = EVENT_DATASETS[name]
    return DatasetSpec(
        name=name, num_classes=es.num_classes, in_channels=3, image_size=es.sensor_size,
        train_size=train_size, test_size=test_size, load=lazy("tfbench.data.events.frames:load", name),
        synthetic=lazy("tfbench.data.events.synthetic:pooled", name, train_size, test_size),
        encode=lazy("tfbench.data.encoding:encode_frames"),
        files=f"<data-root>/{es.dirname}/download/{{{', '.join(es.raw_files)}}}",
        split_by_choices=SPLIT_BY, in_channels_choices=IN_CHANNELS, description=description,
    )


# Real split sizes, so that a synthetic epoch is as long as a real one: N-MNIST has MNIST's
# 60,000/10,000; SpikingJelly's DVS128Gesture splits the 1,464 trials' gestures into 1,176/288.
N_MNIST = _event_dataset("N-MNIST", 60_000, 10_000, "MNIST digits recorded by an event camera, 34x34, 2 polarities "
                                                    "(fetch the files yourself: licence)")
DVS_GESTURE = _event_dataset("DvsGesture", 1_176, 288, "11 hand gestures recorded by a 128x128 event camera, "
                                                       "2 polarities (fetch the files yourself: licence)")

# Glyphs (glyphs.py): generated, no files. 28x28 as MNIST, so its step time is MNIST's; 6,000 training
# images (MNIST's 6:1 split) are made in under a second on one core, more than an epoch of the quick
# demo; 1,000 test images give its accuracy to about +-1 % (one standard error near 90 %).
GLYPHS_SIZE, GLYPHS_TRAIN, GLYPHS_TEST = 28, 6_000, 1_000
GLYPHS = DatasetSpec(
    name="Glyphs", num_classes=10, in_channels=3, image_size=(GLYPHS_SIZE, GLYPHS_SIZE),
    train_size=GLYPHS_TRAIN, test_size=GLYPHS_TEST,
    load=lazy("tfbench.data.glyphs:load", GLYPHS_SIZE, GLYPHS_TRAIN, GLYPHS_TEST),
    synthetic=_synthetic_images((1, GLYPHS_SIZE, GLYPHS_SIZE), 10, GLYPHS_TRAIN, GLYPHS_TEST),
    encode=ENCODE_IMAGES, spikes=True,
    description="built in, no files: the digits 0-9 drawn as pen strokes, each image with its own wobble, "
                "rotation, scale, shear, shift, stroke width, ink, a stray stroke and noise, 28x28 grey like "
                "MNIST; made from --seed, train and test drawn apart",
)

DATASETS: dict[str, DatasetSpec] = {d.name: d for d in (MNIST, CIFAR10, N_MNIST, DVS_GESTURE, GLYPHS)}


def get(name: str) -> DatasetSpec:
    """The dataset called ``name`` (case-insensitive); ValueError listing the known names."""
    for key, spec in DATASETS.items():
        if key.lower() == name.lower():
            return spec
    raise ValueError(f"unknown dataset {name!r}; choose from: {', '.join(DATASETS)}")
