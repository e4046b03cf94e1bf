"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state).

Every function returns PNG bytes (or ``None`` when there is nothing to draw), ready to embed in HTML. Nothing here
touches ``matplotlib.pyplot`` or ``rcParams``, so drawing a report never changes a caller's plotting settings or
leaves figures open.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from metaxfer.engine.runs import Run
from metaxfer.report.schema import FAMILIES, Comparison

__all__ = [
    "FAMILY_COLOURS",
    "METRIC_FAMILIES",
    "metric_family",
    "read_curves",
    "curves_of",
    "learning_curves_png",
    "accuracy_bars_png",
    "figure_png",
]

log = logging.getLogger(__name__)

#: Bar colours per path family (colour-blind-safe Okabe-Ito hues).
FAMILY_COLOURS: dict[str, str] = {"baseline": "#7f7f7f", "meta-learning": "#0072b2", "gan": "#e69f00",
                                  "meta-gan": "#009e73"}

#: Panels of the learning-curve figure, in order.
METRIC_FAMILIES: tuple[str, ...] = ("loss", "accuracy")

_PATH_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442",
                 "#8c564b", "#7f7f7f")

Curves = dict[str, tuple[list[float], list[float]]]
"""``{metric key: (steps, values)}`` of one path."""


def metric_family(key: str) -> str | None:
    """The panel a metrics.jsonl key belongs to: ``"loss"``, ``"accuracy"`` or ``None`` (not drawn).

    The last ``/``-separated part decides: ``train/loss`` and ``d/loss_fake`` are losses; ``eval/acc``,
    ``train/accuracy``, ``eval/query_acc`` and ``eval/transfer/real/acc`` are accuracies; ``lr``, ``eval/ci``,
    ``eval/acc_std`` and ``grad_norm`` are not drawn.
    """
    leaf = key.rsplit("/", 1)[-1].lower()
    if "loss" in leaf:
        return "loss"
    if leaf in ("acc", "accuracy") or leaf.endswith(("_acc", "_accuracy")):
        return "accuracy"
    return None


def read_curves(run_folder: str | os.PathLike[str]) -> Curves:
    """The loss and accuracy series of one engine run folder's ``metrics.jsonl``.

    Args:
        run_folder: The engine run folder (its ``metrics.jsonl`` holds one JSON object per line with a ``step``
            key; a torn last line is skipped).

    Returns:
        ``{key: (steps, values)}`` for every key :func:`metric_family` draws, in step order; non-finite values
        are dropped. Empty when the file is missing or holds no such key.
    """
    rows = Run(run_folder).read_metrics()
    curves: Curves = {}
    for row in sorted((r for r in rows if isinstance(r, dict) and _number(r.get("step"))), key=lambda r: r["step"]):
        for key, value in row.items():
            if key == "step" or not _number(value) or not math.isfinite(value) or metric_family(key) is None:
                continue
            steps, values = curves.setdefault(key, ([], []))
            steps.append(float(row["step"]))
            values.append(float(value))
    return curves


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def curves_of(comparison: Comparison, run_dir: str | os.PathLike[str]) -> dict[str, Curves]:
    """The curves of every path whose engine run folder has a ``metrics.jsonl``.

    Args:
        comparison: The comparison.
        run_dir: The folder holding ``comparison.json`` (path run folders are relative to it).

    Returns:
        ``{path name: curves}`` in the comparison's path order, leaving out paths with no run folder, no
        metrics file or nothing to draw.
    """
    out: dict[str, Curves] = {}
    for path in comparison.paths:
        if path.run is None:
            continue
        folder = Path(run_dir) / path.run
        if not (folder / "metrics.jsonl").is_file():
            log.warning("path %s: no learning curves, %s does not exist", path.name, folder / "metrics.jsonl")
            continue
        curves = read_curves(folder)
        if curves:
            out[path.name] = curves
    return out


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes (no 'Software' tag, so the bytes name no web address)."""
    FigureCanvasAgg(fig)  # attaches itself to the figure: Agg, whatever backend pyplot would pick
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def learning_curves_png(curves: Mapping[str, Curves], *, dpi: int = 100) -> bytes | None:
    """One panel per metric family (loss, accuracy) with every path's series on it.

    Colour tells the path; line style tells the split (training solid, evaluation dashed, others dotted). A loss
    panel whose positive values span more than two decades gets a log scale.

    Args:
        curves: ``{path name: {metric key: (steps, values)}}`` (see :func:`curves_of`).
        dpi: Resolution of the PNG.

    Returns:
        PNG bytes, or ``None`` when no path has a series to draw.
    """
    panels: dict[str, list[tuple[str, str, list[float], list[float]]]] = {f: [] for f in METRIC_FAMILIES}
    colours = {name: _PATH_COLOURS[i % len(_PATH_COLOURS)] for i, name in enumerate(curves)}
    for name, series in curves.items():
        for key, (steps, values) in series.items():
            family = metric_family(key)
            if family is not None and steps:
                panels[family].append((name, key, steps, values))
    used = [f for f in METRIC_FAMILIES if panels[f]]
    if not used:
        return None
    fig = Figure(figsize=(9.0, 3.6 * len(used)), layout="constrained")
    for ax, family in zip(fig.subplots(len(used), 1, squeeze=False)[:, 0], used, strict=True):
        for name, key, steps, values in panels[family]:
            split = key.split("/", 1)[0] if "/" in key else ""
            style = "-" if split == "train" else "--" if split == "eval" else ":"
            marker = "o" if len(steps) <= 20 else None
            ax.plot(steps, values, linestyle=style, marker=marker, markersize=3, color=colours[name],
                    label=f"{name} · {key}")
        if family == "loss":
            positive = [v for *_, vals in panels[family] for v in vals if v > 0]
            everything = [v for *_, vals in panels[family] for v in vals]
            if positive and len(positive) == len(everything) and max(positive) / min(positive) > 100:
                ax.set_yscale("log")
        ax.set_title(family)
        ax.set_xlabel("step")
        ax.set_ylabel(family)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return figure_png(fig, dpi=dpi)


def accuracy_bars_png(comparison: Comparison, *, dpi: int = 100) -> bytes:
    """Horizontal bars of each path's mean accuracy (%) with its 95% interval, best on top, coloured by family.

    Args:
        comparison: The comparison.
        dpi: Resolution of the PNG.

    Returns:
        PNG bytes.
    """
    ranked = comparison.ranked()
    names = [p.name for p in ranked][::-1]
    means = [100 * p.accuracy.mean for p in ranked][::-1]
    cis = [100 * p.accuracy.ci95 for p in ranked][::-1]
    colours = [FAMILY_COLOURS[p.family] for p in ranked][::-1]
    fig = Figure(figsize=(8.0, 1.2 + 0.45 * len(ranked)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(names, means, xerr=cis, color=colours, capsize=3, error_kw={"elinewidth": 1})
    for y, (m, c) in enumerate(zip(means, cis, strict=True)):
        ax.text(min(m + c + 1.0, 101.0), y, f"{m:.1f} ± {c:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, 115)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel(f"accuracy on {comparison.setting.episodes} target episodes (%), mean ± 95% CI")
    ax.grid(axis="x", alpha=0.3)
    present = [f for f in FAMILIES if any(p.family == f for p in ranked)]
    ax.legend(handles=[Patch(color=FAMILY_COLOURS[f], label=f) for f in present], fontsize=8, loc="lower right")
    return figure_png(fig, dpi=dpi)
