"""The results store: append-only JSON Lines, one record per line; loaded into pandas.

A store is a folder (``--out``, default ``results/``) with ``runs.jsonl`` (training runs,
:class:`RunRecord`), ``layer.jsonl`` (LIF-layer timings, :class:`LayerRecord`) and ``scaling.jsonl``
(the temporal pipeline's single-layer scaling, :class:`ScalingRecord`).

- Appends are atomic at the record level: each record is one ``write`` of one whole line on a file
  opened for appending, followed by ``fsync``, under an exclusive lock. A crash or Ctrl-C can at
  worst leave a torn *last* line; loading skips it (with a warning), and the next append starts on a
  fresh line, so finished records are never lost.
Module-level ``append(path, record)``, ``has(path, key)`` and ``load(path)`` take a .jsonl file or a
store folder; :class:`Store` and :class:`JsonlStore` are the same as objects.

- Resume: ``has(key)`` tells whether a configuration already has a finished record (ok, oom or
  n/a; an ``error: ...`` is retried), so a re-run sweep skips it.
- A line that is valid JSON but no tfbench record (no known ``kind`` and ``key``) is skipped with a
  warning, like a torn one: a store a person or another tool wrote into still loads.
- Upsert: ``--force`` appends a new record for the same key; on load the newest record of each key
  wins, and the file keeps the history.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from .schema import RECORD_KINDS, LayerRecord, RunRecord, ScalingRecord, is_finished

RUNS_FILE = "runs.jsonl"
LAYER_FILE = "layer.jsonl"
SCALING_FILE = "scaling.jsonl"   # the temporal pipeline's single-layer scaling (ScalingRecord)
FILES = {"run": RUNS_FILE, "layer": LAYER_FILE, "scaling": SCALING_FILE}


def _jsonable(value: Any) -> Any:
    """NaN/inf are not JSON: store them as null (a missing measurement)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class JsonlStore:
    """One JSON Lines file of records of one kind."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def append(self, record: RunRecord | LayerRecord | dict[str, Any]) -> None:
        """Append one record as one line, durably (write + flush + fsync under an exclusive lock)."""
        d = record if isinstance(record, dict) else record.as_dict()
        line = (json.dumps(_jsonable(d), sort_keys=True, allow_nan=False, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line       # a torn last line from a crash: start this record on its own line
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def records(self, *, history: bool = False) -> list[dict[str, Any]]:
        """The records as dicts, the newest per key (all of them with ``history=True``), file order."""
        if not self.path.exists():
            return []
        out: list[dict[str, Any]] = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    warnings.warn(f"{self.path}:{lineno}: skipping an unreadable (torn) line", stacklevel=2)
                    continue
                if not (isinstance(d, dict) and d.get("kind") in RECORD_KINDS and isinstance(d.get("key"), str)):
                    warnings.warn(f"{self.path}:{lineno}: skipping a line that is not a tfbench record", stacklevel=2)
                    continue
                out.append(d)
        if history:
            return out
        newest: dict[str, int] = {}
        for i, d in enumerate(out):
            newest[d.get("key", f"#{i}")] = i
        keep = sorted(newest.values())
        return [out[i] for i in keep]

    def has(self, key: str) -> bool:
        """True when ``key``'s newest record is finished (status ok, oom or n/a; not error)."""
        for d in reversed(self.records(history=True)):
            if d.get("key") == key:
                return is_finished(d.get("status", ""))
        return False

    def load(self) -> pd.DataFrame:
        """The newest record of each key as a DataFrame (one row per record, the schema's columns)."""
        return pd.DataFrame(self.records())


class Store:
    """A results folder: ``runs`` (runs.jsonl) and ``layer`` (layer.jsonl)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.runs = JsonlStore(self.root / RUNS_FILE)
        self.layer = JsonlStore(self.root / LAYER_FILE)
        self.scaling = JsonlStore(self.root / SCALING_FILE)

    def of(self, kind: str) -> JsonlStore:
        """The file of records of ``kind`` ("run" or "layer")."""
        if kind not in FILES:
            raise ValueError(f"unknown record kind {kind!r}; choose from: {', '.join(FILES)}")
        return {"run": self.runs, "layer": self.layer, "scaling": self.scaling}[kind]

    def append(self, record: RunRecord | LayerRecord | ScalingRecord) -> None:
        self.of(record.kind).append(record)

    def has(self, key: str, kind: str = "run") -> bool:
        return self.of(kind).has(key)


def _file_for(path: Path | str, kind: str | None) -> Path:
    """``path`` itself if it names a file; in a store folder, the file of records of ``kind``."""
    path = Path(path)
    if path.suffix == ".jsonl" or path.is_file():
        return path
    if kind not in FILES:
        raise ValueError(f"{path} is a folder: a record kind is needed to pick its file; "
                         f"choose from: {', '.join(FILES)}")
    return path / FILES[kind]


def append(path: Path | str, record: RunRecord | LayerRecord | dict[str, Any]) -> None:
    """Append ``record`` durably to ``path`` (a .jsonl file, or a store folder: the file of its kind)."""
    kind = record.get("kind") if isinstance(record, dict) else record.kind
    JsonlStore(_file_for(path, kind)).append(record)


def has(path: Path | str, key: str) -> bool:
    """Whether ``path`` (a .jsonl file or a store folder) has a finished record for ``key`` (see ``JsonlStore.has``)."""
    return any(JsonlStore(p).has(key) for p in _paths(path) if Path(p).exists())


def _paths(path: Path | str) -> Iterable[Path]:
    path = Path(path)
    if path.is_dir():
        return [p for p in (path / name for name in FILES.values()) if p.exists()]
    return [path]


def load(path: Path | str, kind: str | None = None) -> pd.DataFrame:
    """Records under ``path`` (a store folder or one .jsonl file) as a DataFrame, newest per key.

    ``kind`` ("run" or "layer") keeps only that kind. A missing path raises FileNotFoundError.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}")
    rows: list[dict[str, Any]] = []
    for p in _paths(path):
        rows.extend(JsonlStore(p).records())
    df = pd.DataFrame(rows)
    if kind is not None and not df.empty:
        df = df[df["kind"] == kind].reset_index(drop=True)
    return df
