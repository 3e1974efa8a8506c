"""Reports: tables (rich, CSV, markdown) and plots (PNG, SVG) made only from stored records."""

from .tables import layer_table, render, run_table, to_markdown, write

__all__ = ["layer_table", "render", "run_table", "to_markdown", "write"]
