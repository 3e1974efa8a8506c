"""Progress while training: a rich progress bar with live loss and throughput, one line per epoch.

On a terminal the bar updates live; elsewhere (CI logs, pipes) it is switched off and only the
per-epoch lines are printed, so a log stays readable.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Reporter(Protocol):
    """What the training loop tells whoever watches it."""

    def start(self, title: str, epochs: int, steps: int, test_batches: int) -> None: ...

    def step(self, epoch: int, done: int, loss: float | None, samples_per_s: float | None) -> None: ...

    def evaluating(self, epoch: int) -> None: ...

    def epoch(self, epoch: int, train_s: float, test_s: float, loss: float, accuracy: float) -> None: ...

    def finish(self, status: str) -> None: ...


class SilentReporter:
    """Says nothing (tests, library use)."""

    def start(self, title: str, epochs: int, steps: int, test_batches: int) -> None:
        pass

    def step(self, epoch: int, done: int, loss: float | None, samples_per_s: float | None) -> None:
        pass

    def evaluating(self, epoch: int) -> None:
        pass

    def epoch(self, epoch: int, train_s: float, test_s: float, loss: float, accuracy: float) -> None:
        pass

    def finish(self, status: str) -> None:
        pass


class RichReporter:
    """A rich progress bar per run (live on a terminal only) and one printed line per epoch."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, markup=False, highlight=False)
        self.progress: Progress | None = None
        self.task = None
        self.epochs = 0
        self.title = ""
        self.loss: float | None = None
        self.rate: float | None = None

    def start(self, title: str, epochs: int, steps: int, test_batches: int) -> None:
        self.title, self.epochs = title, epochs
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=True, disable=not self.console.is_terminal)
        self.progress.start()
        self.task = self.progress.add_task(f"{title} epoch 1/{epochs}", total=steps, stats="")

    def _stats(self) -> str:
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.rate is not None:
            parts.append(f"{self.rate:,.0f} samples/s")
        return "  ".join(parts)

    def step(self, epoch: int, done: int, loss: float | None, samples_per_s: float | None) -> None:
        if self.progress is None:
            return
        if loss is not None:
            self.loss = loss
        if samples_per_s is not None:
            self.rate = samples_per_s
        self.progress.update(self.task, completed=done, description=f"{self.title} epoch {epoch + 1}/{self.epochs}",
                             stats=self._stats())

    def evaluating(self, epoch: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"{self.title} epoch {epoch + 1}/{self.epochs} (testing)")

    def epoch(self, epoch: int, train_s: float, test_s: float, loss: float, accuracy: float) -> None:
        self.console.print(f"{self.title} epoch {epoch + 1}/{self.epochs}: train {train_s:.2f} s, test {test_s:.2f} s, "
                           f"loss {loss:.4f}, test accuracy {100 * accuracy:.2f} %",
                           highlight=False, soft_wrap=True, markup=False)
        if self.progress is not None:
            self.progress.reset(self.task)

    def finish(self, status: str) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if status != "ok":
            self.console.print(f"{self.title}: {status}", highlight=False, soft_wrap=True, markup=False)
