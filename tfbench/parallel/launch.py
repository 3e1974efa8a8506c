"""Start N processes of a command on this node through torch's own launcher (torchrun).

``tfbench run --nproc N`` (outside any launcher) calls ``torchrun(["run", ...], N, module=...)``: it
runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m <module>``, so every rank is
an ordinary torchrun worker (the same as a user's own multi-node ``torchrun ... -m tfbench``). The
command's own arguments travel in ``TFBENCH_ARGV`` (JSON), not on torchrun's command line: torchrun's
parser would take an option of ours that abbreviates one of its own (``--nproc``) as its own.
The children find tfbench even where it is not installed (a copied tree on ``PYTHONPATH``): the
folder holding the ``tfbench`` package is put in front of their ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import dist

# How often (s) torchrun checks its workers: when one exits with an error, the others are stopped
# within about this long (torchrun's own default is 0.1 s in recent versions, 5 s in older ones).
MONITOR_INTERVAL_S = 0.2
# Set in the ranks that tfbench itself launched (the launching process prints and records for them).
LAUNCHED_ENV = "TFBENCH_LAUNCHED"
ARGV_ENV = "TFBENCH_ARGV"   # the launched command's arguments, a JSON list of strings


@dataclass
class LaunchResult:
    """How a launched job ended: torchrun's exit code and the failures its ranks reported (first first)."""

    returncode: int
    failures: list[dict] = field(default_factory=list)


def package_root() -> Path:
    """The folder that holds the ``tfbench`` package (what ``PYTHONPATH`` needs to import it)."""
    return Path(__file__).resolve().parents[2]


def rank_args() -> list[str]:
    """In a launched rank: the arguments the launching process passed (``TFBENCH_ARGV``)."""
    text = os.environ.get(ARGV_ENV)
    if text is None:
        raise ValueError(f"{ARGV_ENV} is not set: this process was not started by tfbench's launcher")
    return [str(a) for a in json.loads(text)]


def child_env(nproc: int, failure_dir: str | None = None, args: list[str] | None = None) -> dict[str, str]:
    """The environment of the launched ranks: this one, tfbench importable, one CPU thread pool share each."""
    env = dict(os.environ)
    root = str(package_root())
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in paths if p != root])
    # torchrun sets 1 (with a warning) when unset: share the cores instead, so CPU ranks use them all
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(nproc, 1))))
    env[LAUNCHED_ENV] = "1"
    env[ARGV_ENV] = json.dumps(list(args or []))
    if failure_dir is not None:
        env[dist.FAILURE_DIR_ENV] = failure_dir
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)   # a stale launcher environment must not make the children join another job
    return env


def command(nproc: int, *, module: str | None = None, script: str | None = None) -> list[str]:
    """The torchrun command line that runs ``python -m module`` (or ``python script``) N times."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           f"--monitor-interval={MONITOR_INTERVAL_S}"]
    if script is not None:
        return cmd + [script]
    if module is None:
        raise ValueError("give a module or a script to launch")
    return cmd + ["-m", module]


def torchrun(args: list[str], nproc: int, *, module: str | None = None, script: str | None = None,
             timeout_s: float | None = None) -> LaunchResult:
    """Run ``module`` (or ``script``) in ``nproc`` ranks on this node and wait, ``args`` readable there
    with ``rank_args()``; returns the exit code and the failures the ranks reported.

    The ranks' output goes to this process's stdout/stderr. ``timeout_s`` kills the whole job after
    that long (None: no limit).
    """
    with tempfile.TemporaryDirectory(prefix="tfbench-failures-") as failures:
        proc = subprocess.Popen(command(nproc, module=module, script=script),
                                env=child_env(nproc, failures, args))
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        return LaunchResult(rc, dist.read_failures(failures))
