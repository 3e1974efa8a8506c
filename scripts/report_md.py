"""The benchmark scripts' Markdown output: a report printed, and appended to a file when one is given."""

from __future__ import annotations


def emit(lines: list[str], out: str | None) -> None:
    """Print ``lines`` as one block; append it (and a blank line) to ``out`` when given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")
