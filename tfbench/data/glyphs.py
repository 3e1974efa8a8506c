"""Glyphs: the digits 0-9 drawn as pen strokes, generated from the seed; the dataset that needs no files.

Each digit is a skeleton of strokes (polylines in a unit box, ``SKELETONS``). An image moves every
vertex of its digit a little (``WOBBLE``: a hand's wobble), maps the skeleton through its own random
affine map (rotation, scale, aspect, shear, shift), draws the strokes anti-aliased with its own
width and ink, adds a fainter stray stroke to some images and Gaussian pixel noise, and is stored as
uint8 ``[1, H, W]`` like MNIST (the spec rate-codes it to ``[T, B, 3, H, W]`` as MNIST).

The draws come from CPU ``torch.Generator`` streams seeded by ``(seed, split, chunk)``: the same seed
gives the same images, image ``i`` does not depend on the split's size, and the train and test splits
are independent draws. Labels are balanced: each chunk of ``CHUNK`` images
holds every class ``CHUNK / 10`` times, in a random order.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .batches import TensorBatches
from .spec import DataRequest

NUM_CLASSES = 10
# Images drawn from one generator stream: balanced labels per chunk, and small enough tensors to
# render at once ([chunk, segments, pixels] floats: about 19 MB at 28x28).
CHUNK = 250
# Spread of each random transformation, in units of the glyph box (about 0.8 of the image side).
# Wide enough that no pixel, and no single template, tells the classes apart (tests/data/test_glyphs.py
# checks both); narrow enough that Spiking-ResNet18 learns them in the quick demo.
WOBBLE = 0.01              # standard deviation of each vertex's displacement
ROTATION = 0.1             # radians, either way (about 6 degrees)
SCALE = (0.8, 1.0)
ASPECT = (0.9, 1.1)        # width / height stretch
SHEAR = 0.1
SHIFT = 0.1                # either way, each axis (about 2 pixels at 28x28)
WIDTH_PX = (2.0, 3.0)      # stroke width in pixels (at 28x28; MNIST's strokes are 2-3 pixels wide)
INK = (0.9, 1.0)           # the stroke's intensity
STRAY_P = 0.2              # share of images with a stray stroke
STRAY_LENGTH_PX = (3.0, 9.0)
STRAY_INK = (0.3, 0.7)
NOISE = 0.03               # standard deviation of the Gaussian pixel noise


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int) -> list[tuple[float, float]]:
    """``n`` points on an ellipse from angle ``start`` to ``stop`` in degrees (0 right, 90 down)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in (start + (stop - start) * i / (n - 1) for i in range(n))]


# Each digit's strokes: polylines in the unit box, x to the right, y down (image coordinates).
SKELETONS: tuple[tuple[list[tuple[float, float]], ...], ...] = (
    (_arc(0.5, 0.5, 0.27, 0.4, 0, 360, 17),),                                                  # 0
    ([(0.32, 0.28), (0.54, 0.1), (0.54, 0.9)],),                                               # 1
    (_arc(0.5, 0.32, 0.26, 0.22, 195, 385, 9) + [(0.22, 0.9), (0.8, 0.9)],),                   # 2
    (_arc(0.48, 0.3, 0.24, 0.2, 200, 450, 9), _arc(0.48, 0.7, 0.27, 0.2, 270, 520, 9)),        # 3
    ([(0.62, 0.1), (0.18, 0.64), (0.85, 0.64)], [(0.62, 0.1), (0.62, 0.92)]),                  # 4
    ([(0.78, 0.1), (0.3, 0.1), (0.26, 0.45)] + _arc(0.5, 0.65, 0.27, 0.25, 235, 500, 10),),    # 5
    ([(0.72, 0.1), (0.42, 0.28)] + _arc(0.5, 0.68, 0.25, 0.22, 200, 560, 15),),                # 6
    ([(0.2, 0.1), (0.8, 0.1), (0.42, 0.92)],),                                                 # 7
    (_arc(0.5, 0.3, 0.2, 0.19, 90, 450, 13), _arc(0.5, 0.7, 0.25, 0.21, -90, 270, 13)),        # 8
    (_arc(0.5, 0.32, 0.24, 0.22, 0, 360, 13), [(0.74, 0.32), (0.7, 0.62), (0.56, 0.92)]),      # 9
)


@functools.lru_cache(maxsize=1)
def _skeleton_tables() -> tuple[Tensor, Tensor, list[int]]:
    """Vertices ``[classes, V, 2]``, segments as vertex pairs ``[classes, S, 2]`` (both padded at the end by
    repetition), and each digit's number of segments."""
    vertices, segments = [], []
    for strokes in SKELETONS:
        v: list[tuple[float, float]] = []
        s: list[tuple[int, int]] = []
        for line in strokes:
            s += [(len(v) + i, len(v) + i + 1) for i in range(len(line) - 1)]
            v += line
        vertices.append(v)
        segments.append(s)
    nv, ns = max(map(len, vertices)), max(map(len, segments))
    return (torch.tensor([v + v[:1] * (nv - len(v)) for v in vertices]),
            torch.tensor([s + s[:1] * (ns - len(s)) for s in segments]), [len(s) for s in segments])


def _squared_distance(gx: Tensor, gy: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Squared distances ``[..., P]`` from pixel centres ``(gx, gy)`` (``[P]`` each) to segments ``a``-``b``
    (``[..., 2]`` each)."""
    ax, ay = a[..., 0, None], a[..., 1, None]
    dx, dy = b[..., 0, None] - ax, b[..., 1, None] - ay
    px, py = gx - ax, gy - ay
    t = ((px * dx + py * dy) / (dx * dx + dy * dy).clamp_min(1e-9)).clamp_(0, 1)
    return (px - t * dx).square_() + (py - t * dy).square_()


def render(labels: Tensor, generator: torch.Generator, size: int) -> Tensor:
    """One image per label (int64 ``[N]``): float32 ``[N, 1, size, size]`` in [0, 1], every draw from ``generator``."""
    n = labels.shape[0]
    vertices, segments, segment_counts = _skeleton_tables()

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return torch.rand(shape or (n,), generator=generator) * (hi - lo) + lo

    px = size / 28   # the pixel ranges are given at 28x28
    points = vertices[labels] + torch.randn((n, vertices.shape[1], 2), generator=generator) * WOBBLE
    angle, scale, aspect = uniform(-ROTATION, ROTATION), uniform(*SCALE), uniform(*ASPECT)
    shear, shift = uniform(-SHEAR, SHEAR), uniform(-SHIFT, SHIFT, n, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = scale * aspect, scale / aspect          # [[sx, shear * scale], [0, sy]], then rotated
    affine = torch.stack([cos * sx, cos * shear * scale - sin * sy,
                          sin * sx, sin * shear * scale + cos * sy], -1).reshape(n, 2, 2)
    points = torch.einsum("nij,nvj->nvi", affine, points - 0.5) + 0.5 + shift[:, None]
    points = (0.1 + 0.8 * points) * size - 0.5       # the unit box to pixels, 0.1 of a side margin
    ends = points.gather(1, segments[labels].reshape(n, -1, 1).expand(-1, -1, 2)).reshape(n, -1, 2, 2)
    width, ink = uniform(*WIDTH_PX) * px, uniform(*INK)

    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    gx, gy = xs.reshape(-1), ys.reshape(-1)
    distance = torch.empty(n, size * size)                                                # to the nearest stroke
    for digit, count in enumerate(segment_counts):   # each digit's own segments, not the padding
        mine = labels == digit
        e = ends[mine, :count]
        distance[mine] = _squared_distance(gx, gy, e[:, :, 0], e[:, :, 1]).amin(1).sqrt_()
    image = (width[:, None] / 2 + 0.5 - distance).clamp_(0, 1) * ink[:, None]             # 1 px anti-aliased edge

    start = uniform(0, size - 1, n, 2)
    direction, length = uniform(0, 2 * math.pi), uniform(*STRAY_LENGTH_PX) * px
    end = start + length[:, None] * torch.stack([torch.cos(direction), torch.sin(direction)], -1)
    stray_ink = uniform(*STRAY_INK) * (uniform(0, 1) < STRAY_P)
    stray = (1 - _squared_distance(gx, gy, start, end).sqrt_()).clamp_(0, 1) * stray_ink[:, None]
    image = torch.maximum(image, stray) + torch.randn((n, size * size), generator=generator) * NOISE
    return image.clamp_(0, 1).reshape(n, 1, size, size)


def render_split(seed: int, train: bool, num_samples: int, size: int) -> tuple[Tensor, Tensor]:
    """A split: uint8 images ``[N, 1, size, size]`` and int64 labels ``[N]``, on the CPU.

    Chunk ``k`` of ``CHUNK`` images is drawn from its own generator, seeded by ``(seed, train, k)``:
    the first ``n`` images of a split are the same whatever its size.
    """
    if seed < 0 or num_samples < 0 or size < 8:
        raise ValueError(f"seed={seed} and num_samples={num_samples} must be >= 0 and size={size} >= 8")
    images, labels = [], []
    for k in range(-(-num_samples // CHUNK)):
        g = torch.Generator().manual_seed(_stream(seed, train, k))
        n = min(CHUNK, num_samples - k * CHUNK)
        y = (torch.arange(CHUNK) % NUM_CLASSES)[torch.randperm(CHUNK, generator=g)]
        images.append(render(y, g, size)[:n].mul_(255).round_().to(torch.uint8))   # whole chunks: the same draws
        labels.append(y[:n])
    if not images:
        return torch.zeros(0, 1, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    return torch.cat(images), torch.cat(labels)


# A run reads its training split twice (checked before the run, then trained on): made once per process.
split = functools.lru_cache(maxsize=4)(render_split)


def _stream(seed: int, train: bool, chunk: int) -> int:
    """A generator seed for each (seed, split, chunk), distinct for chunks below 1,000,003 (250 million images)."""
    return (seed * 2 + int(train)) * 1_000_003 + chunk + 0x676C797068   # "glyph": apart from other streams


def load(size: int, train_size: int, test_size: int, request: DataRequest) -> TensorBatches:
    """Glyphs' ``load``: the split ``request.train`` (``train_size`` or ``test_size`` images) on the device."""
    images, labels = split(request.seed, request.train, train_size if request.train else test_size, size)
    return TensorBatches(images, labels, request.batch_size, shuffle=request.train, seed=request.seed,
                         device=request.device)
