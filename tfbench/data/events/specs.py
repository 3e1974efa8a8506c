"""The two event-camera datasets as plain data: sensor, classes, the files a user fetches, where they go.

No torch, numpy or SpikingJelly here: the dataset registry (and so ``--help``) reads these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLIT_BY = ("number", "time")  # SpikingJelly's two ways to cut a sample's events into T frames
IN_CHANNELS = (2, 3)           # the 2 polarities as they are, or plus a zero channel for the 3-channel stem

# SpikingJelly's folder names under a dataset's root (``NeuromorphicDatasetFolder.prepare_raw_dataset``).
DOWNLOAD, EXTRACT, EVENTS = "download", "extract", "events_np"


@dataclass(frozen=True)
class EventSpec:
    """One event-camera dataset: its sensor, its classes, and what a user must fetch and where it goes."""

    name: str                        # the name tfbench uses ("N-MNIST", "DvsGesture")
    sensor_size: tuple[int, int]     # (H, W) in pixels
    num_classes: int
    raw_files: tuple[str, ...]       # the archives to fetch, put under <root>/<dirname>/download/
    sources: tuple[str, ...]         # the official pages they come from
    extracted: tuple[str, ...]       # the extracted layout SpikingJelly reads, under <root>/<dirname>/extract/
    dirname: str                     # the dataset's folder under the data root
    sj_class: str                    # the SpikingJelly class in ``spikingjelly.datasets``
    mean_events: int                 # the order of a real sample's event count: the synthetic data's density
    polarities: int = 2

    def dataset_root(self, root: Path | str) -> Path:
        """``<root>/<dirname>``: the folder SpikingJelly is given as the dataset's root."""
        return Path(root) / self.dirname

    def frame_cache(self, root: Path | str, T: int, split_by: str) -> Path:
        """The frame cache for (T, split_by): SpikingJelly's ``FrameFixedNumberBuilder.processed_root``."""
        return self.dataset_root(root) / f"frames_number_{T}_split_by_{split_by}"


EVENT_DATASETS: dict[str, EventSpec] = {
    "N-MNIST": EventSpec(
        name="N-MNIST",
        sensor_size=(34, 34),
        num_classes=10,
        raw_files=("Train.zip", "Test.zip"),
        sources=("https://www.garrickorchard.com/datasets/n-mnist",
                 "Mendeley Data https://data.mendeley.com/datasets/468j46mzdv/1 (doi:10.17632/468j46mzdv.1)"),
        extracted=("Train/<digit>/<id>.bin", "Test/<digit>/<id>.bin"),
        dirname="N-MNIST",
        sj_class="NMNIST",
        mean_events=4_200,
    ),
    "DvsGesture": EventSpec(
        name="DvsGesture",
        sensor_size=(128, 128),
        num_classes=11,
        raw_files=("DvsGesture.tar.gz",),
        sources=("https://research.ibm.com/interactive/dvsgesture/",),
        extracted=("DvsGesture/userXX_<lighting>.aedat", "DvsGesture/userXX_<lighting>_labels.csv",
                   "DvsGesture/trials_to_train.txt", "DvsGesture/trials_to_test.txt"),
        dirname="DvsGesture",
        sj_class="DVS128Gesture",
        mean_events=200_000,
    ),
}


def event_spec(name: str) -> EventSpec:
    """The event dataset called ``name`` (exact spelling); ValueError listing the known names."""
    try:
        return EVENT_DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown event dataset {name!r}; known: {', '.join(EVENT_DATASETS)}") from None


def check_split_by(split_by: str) -> None:
    """ValueError unless ``split_by`` is one of ``SPLIT_BY``."""
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by={split_by!r} is not one of {', '.join(SPLIT_BY)}")


def check_frame_count(T: int) -> None:
    """ValueError unless ``T`` (frames per sample) is a positive int."""
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T={T!r}: the number of frames must be a positive int")
