"""The paper's Table 1 beside the same grid measured here: RESULTS/paper_vs_tfbench.{md,csv}.

    python scripts/paper_table1.py results/h200     # after: bash scripts/gpu_table1.sh results/h200
"""

from __future__ import annotations

import sys
from pathlib import Path

from tfbench.report.paper import load_paper, paper_vs_measured, to_markdown
from tfbench.results.store import load

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    results = Path(sys.argv[1])
    paper = load_paper(ROOT / "results" / "paper" / "table1_a100.toml")
    table = paper_vs_measured(load(results, kind="run"), paper)
    table.to_csv(results / "paper_vs_tfbench.csv", index=False)
    (results / "paper_vs_tfbench.md").write_text(to_markdown(table, paper))
    print(to_markdown(table, paper))
