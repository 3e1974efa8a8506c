"""CLI test helpers: invoke the app, and check that an error is one line with no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tfbench.cli.main import app


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def assert_one_line_error(result, *fragments: str, codes: tuple[int, ...] = (1, 2)) -> str:
    """The command failed with exit code 1 or 2 and printed exactly one line naming ``fragments``."""
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert not (result.exception and not isinstance(result.exception, SystemExit)), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]
