"""Stage lines for the slow first-time work (extracting, converting, integrating): alive, not flooding.

Lines go to the ``tfbench.data`` logger when logging is configured (as under pytest), else to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_log = logging.getLogger("tfbench.data")

PROGRESS_EVERY_S = 10.0        # a long stage logs a line this often: alive in a CI log without flooding it


class Progress:
    """Says one stage line: to the ``tfbench.data`` logger, or stderr if logging is unset; nothing if disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        if _log.hasHandlers():
            _log.info(message)
        else:
            print(f"[tfbench] {message}", file=sys.stderr, flush=True)


def count_files(folder: Path) -> int:
    """Files anywhere under ``folder`` (0 when it does not exist)."""
    return sum(len(files) for _, _, files in os.walk(folder))


@contextmanager
def watch(say: Progress, what: str, folder: Path, total: int) -> Iterator[None]:
    """Every ``PROGRESS_EVERY_S``, say how many of ``total`` files ``folder`` holds: SpikingJelly's stages."""
    stop = threading.Event()
    start = time.monotonic()

    def report() -> None:
        while not stop.wait(PROGRESS_EVERY_S):
            say(f"{what}: {count_files(folder)}/{total} samples ({time.monotonic() - start:.0f} s)")

    thread = threading.Thread(target=report, name="tfbench-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
