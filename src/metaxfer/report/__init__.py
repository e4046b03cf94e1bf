"""The comparison a ``metaxfer run`` folder holds, and its self-contained HTML report.

- :mod:`~metaxfer.report.schema`: :class:`Comparison` and its parts, the typed form of ``<run>/comparison.json``;
- :mod:`~metaxfer.report.tables`: :func:`format_table` (the printed results table) and :func:`summary_text`;
- :mod:`~metaxfer.report.plots`: the accuracy bar chart and learning curves (matplotlib, Agg, no pyplot);
- :mod:`~metaxfer.report.html`: :func:`write_report`, which writes ``<run>/report.html``.
"""

from __future__ import annotations

from metaxfer.report.html import REPORT_FILE, render_report, write_report
from metaxfer.report.schema import (
    COMPARISON_FILE,
    FAMILIES,
    Accuracy,
    Comparison,
    ComparisonError,
    ImageRef,
    Paired,
    PathResult,
    Seconds,
    Setting,
)
from metaxfer.report.tables import format_table, lead_is_clear, summary_text

__all__ = [
    "COMPARISON_FILE",
    "REPORT_FILE",
    "FAMILIES",
    "Accuracy",
    "Comparison",
    "ComparisonError",
    "ImageRef",
    "Paired",
    "PathResult",
    "Seconds",
    "Setting",
    "format_table",
    "lead_is_clear",
    "summary_text",
    "render_report",
    "write_report",
]
