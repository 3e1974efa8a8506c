"""MNIST and CIFAR-10 read from files written here in the real formats (idx; python pickle batches)
through the same code path as real data; rate coding; synthetic data."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from tfbench import data
from tfbench.data import DataRequest, DataUnavailable
from tfbench.data.registry import CIFAR10_FILES, MNIST_FILES

CPU = torch.device("cpu")


def request(root: Path, train: bool, batch_size: int, seed: int = 0, T: int = 4) -> DataRequest:
    return DataRequest(root=root, train=train, download=False, T=T, batch_size=batch_size, seed=seed, device=CPU)


def write_idx_images(path: Path, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits = {}
    for prefix, n in (("train", 6), ("t10k", 5)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        splits[prefix] = (images, labels)
    return tmp_path, splits


def test_mnist_from_idx_files(mnist_root) -> None:
    root, splits = mnist_root
    train = data.get("mnist").batches(request(root, True, 2), synthetic=False)
    assert len(train) == 3                         # 6 samples, batch 2, last partial batch dropped
    images, labels = splits["train"]
    seen = []
    for x, y in train:
        assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        for xi, yi in zip(x, y):
            i = int(yi)                            # labels are the sample indices here
            torch.testing.assert_close(xi[0], torch.from_numpy(images[i]).float() / 255)
            seen.append(i)
    assert sorted(seen) == list(range(6))
    test = data.get("MNIST").batches(request(root, False, 2), synthetic=False)
    assert len(test) == 3                          # the test split keeps its last partial batch
    ys = torch.cat([y for _, y in test]).tolist()
    assert ys == splits["t10k"][1].tolist()        # in file order


def test_mnist_shuffles_per_epoch_deterministically(mnist_root) -> None:
    root, _ = mnist_root
    a = data.MNIST.batches(request(root, True, 6, seed=3), synthetic=False)
    b = data.MNIST.batches(request(root, True, 6, seed=3), synthetic=False)
    orders_a = [next(iter(a))[1].tolist() for _ in range(3)]
    orders_b = [next(iter(b))[1].tolist() for _ in range(3)]
    assert orders_a == orders_b
    assert len({tuple(o) for o in orders_a}) > 1


def test_mnist_missing_files_name_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable) as e:
        data.MNIST.batches(request(tmp_path, True, 2), synthetic=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "MNIST" / "raw") in msg
    for name in MNIST_FILES:
        assert name in msg
    assert "--download" in msg


def test_mnist_damaged_file_is_one_line(mnist_root) -> None:
    root, _ = mnist_root
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03truncated")
    with pytest.raises(DataUnavailable, match="could not be read.*corrupted or partial"):
        data.MNIST.batches(request(root / "." , True, 2), synthetic=False)


def _cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as f:
        pickle.dump({"data": images.reshape(len(images), -1), "labels": labels, "batch_label": path.name}, f)


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch) -> tuple[Path, np.ndarray, list[int]]:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    all_images, all_labels = [], []
    for i in range(1, 6):
        images = rng.integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)   # CHW, as the real pickles
        labels = [(2 * i) % 10, (2 * i + 1) % 10]
        _cifar_batch(folder / f"data_batch_{i}", images, labels)
        all_images.append(images)
        all_labels += labels
    test_images = rng.integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    _cifar_batch(folder / "test_batch", test_images, [7, 8, 9])
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 2}, f)

    # torchvision checks each file's MD5 against the real dataset's: give it these files' sums,
    # and everything else (the reading code) stays torchvision's own.
    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")]
                                                         for i in range(1, 6)])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                                   "md5": md5("batches.meta")})
    return tmp_path, np.concatenate(all_images), all_labels


def test_cifar10_from_pickle_batches(cifar_root) -> None:
    root, images, labels = cifar_root
    train = data.get("cifar-10").batches(request(root, True, 5), synthetic=False)
    assert len(train) == 2
    got = {}
    for x, y in train:
        assert x.shape == (5, 3, 32, 32)
        for xi, yi in zip(x, y):
            got.setdefault(int(yi), []).append(xi)
    # every image comes back channel-first, scaled to [0, 1], with its own label
    for idx, (img, lab) in enumerate(zip(images, labels)):
        expected = torch.from_numpy(img).float() / 255
        assert any(torch.equal(expected, xi) for xi in got[lab]), f"image {idx} (label {lab}) not found"
    test = data.CIFAR10.batches(request(root, False, 2), synthetic=False)
    assert torch.cat([y for _, y in test]).tolist() == [7, 8, 9]


def test_cifar10_missing_and_corrupted(tmp_path: Path, cifar_root) -> None:
    with pytest.raises(DataUnavailable) as e:
        data.CIFAR10.batches(request(tmp_path / "elsewhere", True, 2), synthetic=False)
    msg = str(e.value)
    assert str(tmp_path / "elsewhere" / "cifar-10-batches-py") in msg
    assert all(name in msg for name in CIFAR10_FILES)
    root, _, _ = cifar_root
    with open(root / "cifar-10-batches-py" / "data_batch_3", "ab") as f:
        f.write(b"garbage")                       # checksum no longer matches
    with pytest.raises(DataUnavailable, match="corrupted or partial: delete them and pass --download"):
        data.CIFAR10.batches(request(root / "cifar-10-batches-py" / "..", True, 2), synthetic=False)


def test_rate_encoding() -> None:
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, :14] = 1.0
    x[:, :, 14:, :14] = 0.5
    g = torch.Generator().manual_seed(0)
    s = data.MNIST.encode(x, 64, g)
    assert s.shape == (64, 4, 3, 28, 28) and s.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(s[:, :, :, :14] == 1)                  # intensity 1: a spike every step
    assert torch.all(s[:, :, :, 14:, 14:] == 0)             # intensity 0: never
    rate = s[:, :, :, 14:, :14].mean().item()
    assert abs(rate - 0.5) < 0.02                           # intensity 0.5: half the steps
    assert not torch.equal(s[0], s[1])                      # a new draw every time step


def test_synthetic_is_deterministic_and_real_shaped() -> None:
    for spec, shape in ((data.MNIST, (1, 28, 28)), (data.CIFAR10, (3, 32, 32))):
        a = spec.batches(request(Path("/nonexistent"), True, 8, seed=5), synthetic=True)
        b = spec.batches(request(Path("/nonexistent"), True, 8, seed=5), synthetic=True)
        assert len(a) == spec.train_size // 8
        xa, ya = next(iter(a))
        xb, yb = next(iter(b))
        assert xa.shape == (8, *shape) and torch.equal(xa, xb) and torch.equal(ya, yb)
        assert 0 <= xa.min() and xa.max() <= 1 and ya.max() < spec.num_classes
        x2, _ = next(iter(a))                               # the next epoch draws new samples
        assert not torch.equal(xa, x2)
        t = spec.batches(request(Path("/nonexistent"), False, 8, seed=5), synthetic=True)
        assert torch.equal(next(iter(t))[0], next(iter(t))[0])   # the test split is fixed
        c = spec.batches(request(Path("/nonexistent"), True, 8, seed=6), synthetic=True)
        assert not torch.equal(next(iter(c))[0], xa)
