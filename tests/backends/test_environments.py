"""Peer environments: SpikingJelly 0.0.0.0.14 installed apart, its runs in a worker process, the numpy shim.

The runs through the command line need the environment installed (``.ci/run`` does it with ``tfbench
peers install spikingjelly014``; elsewhere they are skipped with that command as the reason)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfbench import backends
from tfbench.backends import environments
from tfbench.bench.train import train
from tfbench.results.schema import RunConfig
from tests.cli.conftest import assert_one_line_error, cli  # noqa: F401  (the command-line fixture)

SJ014 = environments.get("spikingjelly014")
TINY = ("--synthetic", "-T", "3", "--batch-size", "2", "--epochs", "1", "--max-steps", "2", "--device", "cpu")
needs_sj014 = pytest.mark.skipif(not SJ014.installed(), reason=f"not installed here: {SJ014.install_command()}")


def test_the_numpy_shim_puts_back_the_removed_aliases() -> None:
    # NumPy 2 brought np.bool back (as NumPy's own bool type): the shim adds only what is missing
    code = ("import numpy as np; from tfbench.backends.environments import restore_numpy_aliases; "
            "missing = [n for n in ('int', 'float', 'bool') if n not in np.__dict__]; assert 'int' in missing; "
            "added = restore_numpy_aliases(); assert added == missing, (added, missing); "
            "assert np.int is int and np.float is float and np.dtype('int64') != np.float; "
            "assert restore_numpy_aliases() == []")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import numpy as np

    assert "int" not in np.__dict__, "the shim is for the worker only: tfbench's own process keeps NumPy as it is"


def test_the_folder_is_keyed_by_what_it_holds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TFBENCH_CACHE_DIR", str(tmp_path))
    folder = SJ014.folder()
    assert folder.parent == tmp_path / "peers"
    assert "spikingjelly-0.0.0.0.14" in folder.name and folder.name.endswith("py{}{}".format(*sys.version_info[:2]))


def test_not_installed_is_na_with_the_command_that_installs_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TFBENCH_CACHE_DIR", str(tmp_path))
    reason = backends.get("spikingjelly014-torch").unavailable("cpu")
    assert reason == "SpikingJelly 0.0.0.0.14 is not installed; run: tfbench peers install spikingjelly014"
    rec = train(RunConfig(backend="spikingjelly014-torch", synthetic=True, T=2, batch_size=2, epochs=1, max_steps=1,
                          device="cpu"))
    assert rec.status == f"n/a: {reason}"
    assert backends.get("spikingjelly014").unavailable("cpu") == "spikingjelly014 runs only on CUDA GPUs"


def test_an_install_that_cannot_happen_is_one_line(cli, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("TFBENCH_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "wheels"
    empty.mkdir()
    result = cli("peers", "install", "spikingjelly014", "--find-links", empty)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert lines[0].startswith("installing SpikingJelly 0.0.0.0.14") and len(lines) == 2   # progress, then why
    assert lines[1].startswith("Error: installing SpikingJelly 0.0.0.0.14 failed: ") and "spikingjelly" in lines[1]
    assert not SJ014.installed()
    assert_one_line_error(cli("peers", "install", "brian2"), "unknown peer environment 'brian2'",
                          "choose from: spikingjelly014", codes=(2,))


@needs_sj014
def test_a_run_in_its_environment_is_recorded_like_any_other(cli, tmp_path: Path) -> None:  # noqa: F811
    result = cli("compare", *TINY, "--backends", "spikingjelly014-torch,torch", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    recs = {r["backend"]: r for r in map(json.loads, (tmp_path / "runs.jsonl").read_text().splitlines())}
    sj = recs["spikingjelly014-torch"]
    assert sj["status"] == "ok" and sj["checked"], sj["status"]      # its spikes matched tfbench's reference
    assert sj["env"]["libraries"]["spikingjelly"] == "0.0.0.0.14"     # measured in its own environment
    assert recs["torch"]["env"]["libraries"]["spikingjelly"] != "0.0.0.0.14"
    assert sj["key"] != recs["torch"]["key"] and sj["timed_steps"] == 2
    again = cli("compare", *TINY, "--backends", "spikingjelly014-torch", "--out", tmp_path)
    assert "skip (done)" in again.output


@needs_sj014
def test_its_neuron_is_spikingjellys(tmp_path: Path) -> None:
    """In the worker, ``import spikingjelly`` is 0.0.0.0.14 and its LIFNode gives tfbench's spikes for
    the paper's neuron and the SpikingJelly preset (both surrogates' forward are the same spike)."""
    code = ("import os, torch; from tfbench.backends import environments, get; "
            "environments.restore_numpy_aliases(); import spikingjelly, importlib.metadata as m; "
            "assert m.version('spikingjelly') == '0.0.0.0.14', m.version('spikingjelly'); "
            "from tfbench.bench.check import check_layer; from tfbench.ops.lif import PRESETS; "
            "b = get('spikingjelly014-torch'); "
            "assert all(check_layer(b.layer(PRESETS[n]), PRESETS[n], 'cpu') for n in ('paper', 'spikingjelly', 'if'))")
    env = {"PYTHONPATH": f"{SJ014.folder()}:{Path(__file__).resolve().parents[2]}", "TFBENCH_PEER_ENV": SJ014.name,
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
