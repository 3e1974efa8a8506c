"""What each rank that ``--nproc`` launched runs: the tfbench command with the launching process's
arguments (``TFBENCH_ARGV``; see tfbench/parallel/launch.py for why not on torchrun's command line)."""

from __future__ import annotations

from ..parallel.launch import rank_args
from .main import app


def main() -> None:
    app(args=rank_args(), prog_name="tfbench")


if __name__ == "__main__":
    main()
