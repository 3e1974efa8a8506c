"""Errors a user can act on: each message says what is wrong, with which path, and what to do.

The CLI prints ``str(error)`` of a ``DataError`` and exits; it never shows a traceback for one.
"""

from __future__ import annotations


class DataError(Exception):
    """A dataset cannot be used as asked (a missing optional dependency, a missing or damaged dataset)."""


class DataUnavailable(DataError):
    """The dataset cannot be read (missing files, failed download, not implemented): one line says why."""


class DatasetMissing(DataError):
    """The dataset's files are not under the data root; the message names them, their source and their place."""


class DatasetCorrupted(DataError):
    """The dataset's files are there but damaged or incomplete; the message names the file and the remedy."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and message, whitespace collapsed (tarfile's span lines)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
