"""A run in a worker process, for backends whose library lives in an environment of its own.

``train_in_environment(cfg, env)`` starts ``python -m tfbench.bench.worker CONFIG.json RECORD.json``
with the environment's folder first on ``PYTHONPATH`` (then tfbench itself) and ``TFBENCH_PEER_ENV``
naming it; the worker applies the environment's shims, runs ``bench.train.train`` on the config and
writes the record, which comes back here as a :class:`RunRecord`: the same schema, correctness check
and table row as any other run, appended to the same store by the caller. The worker's progress
lines pass through on stderr. A worker that dies gives a record with ``error: ...``; Ctrl-C stops
it too (the whole process group gets the signal) and is raised here as ``Interrupted``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..results.schema import RunConfig, RunRecord, error

# The tfbench package root: a worker imports this very tfbench, not one installed elsewhere.
_ROOT = Path(__file__).resolve().parents[2]


def train_in_environment(cfg: RunConfig, env, baseline: str = "") -> RunRecord:
    """Run ``cfg`` in a worker inside ``env`` (a PeerEnvironment that is installed) and return its record."""
    from .train import Interrupted

    with tempfile.TemporaryDirectory(prefix="tfbench-worker-") as tmp:
        config_path, record_path = Path(tmp) / "config.json", Path(tmp) / "record.json"
        config_path.write_text(json.dumps({"config": dataclasses.asdict(cfg), "baseline": baseline}))
        paths = [str(env.folder()), str(_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        environ = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "TFBENCH_PEER_ENV": env.name}
        live = _has_fileno(sys.stderr)   # the worker's lines pass straight through, else after it ends
        try:
            out = subprocess.run([sys.executable, "-m", "tfbench.bench.worker", str(config_path), str(record_path)],
                                 env=environ, stdout=sys.stderr if live else subprocess.PIPE,
                                 stderr=None if live else subprocess.STDOUT, text=True)
            if not live and out.stdout:
                sys.stderr.write(out.stdout)
        except KeyboardInterrupt:
            raise Interrupted(None, f"{cfg.backend} run in {env.title}") from None
        if out.returncode == 130:
            raise Interrupted(None, f"{cfg.backend} run in {env.title}")
        if record_path.is_file():
            return RunRecord.from_dict(json.loads(record_path.read_text()))
    from .records import finished, pending_record

    return finished(pending_record(cfg), status=error(f"the {env.title} worker process exited with code "
                                                      f"{out.returncode} before writing its record"),
                    baseline=baseline)


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    """The worker: ``CONFIG.json RECORD.json``; exit code 0 once the record is written."""
    from ..backends import environments

    config_path, record_path = Path(argv[0]), Path(argv[1])
    env = environments.get(os.environ[environments.ACTIVE_ENV])
    for shim in env.shims:
        environments.SHIMS[shim]()
    job = json.loads(config_path.read_text())
    cfg = RunConfig(**job["config"])
    from .progress import RichReporter
    from .train import Interrupted, train

    from rich.console import Console

    try:
        rec = train(cfg, RichReporter(Console(stderr=True, markup=False, highlight=False)), baseline=job["baseline"])
    except Interrupted as e:
        if e.record is None:
            return 130
        rec = e.record
    record_path.write_text(json.dumps(rec.as_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
