"""The dataset registry: names, lookup, plain data importable without torch, every lazy reference resolvable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tfbench import data
from tfbench.data.spec import Lazy, lazy

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "numpy", "spikingjelly")


def test_names_and_lookup() -> None:
    assert list(data.DATASETS) == ["MNIST", "CIFAR-10", "N-MNIST", "DvsGesture", "Glyphs"]
    assert data.get("glyphs") is data.GLYPHS and data.get("n-mnist") is data.N_MNIST
    with pytest.raises(ValueError, match="unknown dataset 'ImageNet'; choose from: MNIST, CIFAR-10, N-MNIST, "
                                         "DvsGesture, Glyphs$"):
        data.get("ImageNet")
    for spec in data.DATASETS.values():
        assert spec.in_channels == 3 and spec.num_classes in (10, 11)
        assert spec.description and "\n" not in spec.description


def test_the_registry_imports_no_torch() -> None:
    """What the command line reads to print --help or refuse an option, in a fresh interpreter."""
    code = ("import sys, tfbench.data as d\n"
            "s = d.get('mnist')\n"
            "facts = [(x.name, x.num_classes, x.in_channels, x.image_size, x.train_size, x.test_size, x.events,\n"
            "          x.split_by_choices, x.channel_choices, x.description) for x in d.DATASETS.values()]\n"
            "assert s.num_classes == 10 and d.POOL_BATCHES > 0 and d.DataRequest and d.DataError\n"
            "try:\n"
            "    d.get('ImageNet')\n"
            "except ValueError as e:\n"
            "    assert 'choose from: MNIST' in str(e)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_lazy_names_are_loaded_on_first_use() -> None:
    code = ("import sys, tfbench.data as d\n"
            "assert 'torch' not in sys.modules\n"
            "b = d.Batches\n"
            "assert 'torch' in sys.modules and b.__module__ == 'tfbench.data.batches'\n"
            "assert d.rate_encode.__module__ == 'tfbench.data.encoding'\n"
            "try:\n"
            "    d.nothing\n"
            "except AttributeError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'tfbench.data' has no attribute 'nothing'"


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_every_lazy_reference_names_a_function(name: str) -> None:
    spec = data.get(name)
    for hook in (spec.load, spec.synthetic, spec.encode):
        assert isinstance(hook, Lazy) and callable(hook.resolve())


def test_a_lazy_reference_calls_with_its_arguments_first() -> None:
    join = lazy("os.path:join", "a", "b")
    assert join("c") == str(Path("a", "b", "c"))
    with pytest.raises(ValueError, match="must read 'package.module:function'"):
        lazy("os.path.join")


@pytest.mark.parametrize(("name", "size", "classes"), [("N-MNIST", (34, 34), 10), ("DvsGesture", (128, 128), 11)])
def test_event_datasets_through_the_registry(name: str, size: tuple[int, int], classes: int) -> None:
    """The event datasets' synthetic frames come out of the same spec interface, encoded to [T, B, 3, H, W]."""
    spec = data.get(name)
    request = data.DataRequest(root=Path("/nonexistent"), train=True, download=False, T=3, batch_size=2, seed=0,
                               device=torch.device("cpu"))
    x, y = next(iter(spec.batches(request, synthetic=True)))
    assert x.shape == (2, 3, 2, *size)
    assert y.dtype == torch.int64 and int(y.max()) < classes
    encoded = spec.encode(x, 3, None)
    assert encoded.shape == (3, 2, 3, *size)
    assert torch.all(encoded[:, :, 2] == 0)                 # the zero third channel
    torch.testing.assert_close(encoded[:, :, :2], x.transpose(0, 1))
