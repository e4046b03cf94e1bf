"""The self-contained HTML report of a ``metaxfer run`` folder.

:func:`write_report` reads ``<run>/comparison.json`` (see :mod:`metaxfer.report.schema`), draws the figures
(:mod:`metaxfer.report.plots`), embeds every picture as a base64 ``data:`` URI and writes ``<run>/report.html``
atomically. The page needs nothing else: no network, no script, no other file; its Content-Security-Policy forbids
any outside request, so a browser shows it the same offline, copied elsewhere or attached to an e-mail.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import jinja2
import yaml
from PIL import Image, UnidentifiedImageError

from metaxfer.engine.files import atomic_write_text
from metaxfer.report import plots
from metaxfer.report.schema import FAMILIES, Comparison, ImageRef, PathResult
from metaxfer.report.tables import summary_text

__all__ = ["REPORT_FILE", "render_report", "write_report"]

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
_TEMPLATE = "report.html.j2"
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_STEP = re.compile(r"step-0*(\d+)\.png$")


@dataclasses.dataclass(frozen=True)
class _Picture:
    title: str
    caption: str
    uri: str
    width: int
    height: int


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("metaxfer.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_picture(data: bytes, *, title: str, caption: str) -> _Picture:
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
    return _Picture(title=title, caption=caption, uri=_data_uri(data, "image/png"), width=width, height=height)


def _embed(ref: ImageRef, run_dir: Path, missing: list[str]) -> _Picture | None:
    """The picture of ``ref`` as a data URI, or ``None`` (and a note in ``missing``) when it cannot be shown."""
    root = run_dir.resolve()
    file = (run_dir / ref.path).resolve()
    if not file.is_relative_to(root):
        missing.append(f"{ref.path} (it points outside the run folder)")
        log.warning("report: %s points outside %s; left out", ref.path, run_dir)
        return None
    try:
        data = file.read_bytes()
    except OSError as exc:
        missing.append(f"{ref.path} ({exc.strerror or exc})")
        log.warning("report: cannot read %s (%s); left out", file, exc)
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        missing.append(f"{ref.path} (not a readable picture: {exc})")
        log.warning("report: %s is not a readable picture (%s); left out", file, exc)
        return None
    if fmt not in _MIME:
        missing.append(f"{ref.path} ({fmt} pictures are not embedded; save it as PNG)")
        log.warning("report: %s is a %s picture; only %s are embedded", file, fmt, ", ".join(_MIME))
        return None
    return _Picture(title=ref.title, caption=ref.caption, uri=_data_uri(data, _MIME[fmt]), width=width,
                    height=height)


def _last_samples(path: PathResult, run_dir: Path) -> ImageRef | None:
    """The last sample grid the engine saved for ``path``, unless its images already list it."""
    if path.run is None:
        return None
    folder = run_dir / path.run / "samples"
    grids = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not grids:
        return None
    last = grids[-1]
    rel = last.relative_to(run_dir).as_posix()
    listed = {(run_dir / i.path).resolve() for i in path.images}
    if last.resolve() in listed:
        return None
    match = _STEP.search(last.name)
    title = f"Samples at step {int(match.group(1))}" if match else f"Samples ({last.name})"
    return ImageRef(title=title, path=rel, caption=f"The last sample grid the engine saved while training {path.name}.")


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value < 600 else f"{value / 60:.1f} min"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _context(comparison: Comparison, run_dir: Path) -> dict[str, Any]:
    missing: list[str] = []
    ranked = comparison.ranked()
    extra_keys = sorted({k for p in ranked for k in p.metrics})
    rows = [{
        "rank": i + 1, "name": p.name, "family": p.family, "description": p.description,
        "colour": plots.FAMILY_COLOURS[p.family], "mean": _percent(p.accuracy.mean), "ci": _percent(p.accuracy.ci95),
        "n": p.accuracy.n, "train": _seconds(p.seconds.train), "evaluate": _seconds(p.seconds.evaluate),
        "extra": [f"{p.metrics[k]:.4g}" if k in p.metrics else "" for k in extra_keys],
    } for i, p in enumerate(ranked)]

    bars = _png_picture(plots.accuracy_bars_png(comparison), title="Accuracy per path",
                        caption=f"Mean accuracy on the {comparison.setting.episodes} shared target episodes with its "
                                "95% confidence interval, best first; the colour tells the family of the path.")
    curve_data = plots.curves_of(comparison, run_dir)
    curves_png = plots.learning_curves_png(curve_data) if curve_data else None
    curves = None if curves_png is None else _png_picture(
        curves_png, title="Learning curves",
        caption="Losses and accuracies each path's engine logged while training (metrics.jsonl): colour tells the "
                "path, a solid line training, a dashed line evaluation.")

    groups = []
    for p in ranked:
        refs = list(p.images)
        auto = _last_samples(p, run_dir)
        if auto is not None:
            refs.append(auto)
        pictures = [pic for ref in refs if (pic := _embed(ref, run_dir, missing)) is not None]
        if pictures:
            groups.append({"name": p.name, "family": p.family, "pictures": pictures})
    overall = [pic for ref in comparison.images if (pic := _embed(ref, run_dir, missing)) is not None]

    setting = comparison.setting
    config_yaml = yaml.safe_dump(comparison.config, sort_keys=False, allow_unicode=True, default_flow_style=False,
                                 width=110) if comparison.config else ""
    return {
        "c": comparison,
        "summary": summary_text(comparison),
        "rows": rows,
        "extra_keys": extra_keys,
        "bars": bars,
        "curves": curves,
        "overall": overall,
        "groups": groups,
        "missing": missing,
        "families": [(f, plots.FAMILY_COLOURS[f]) for f in FAMILIES if any(p.family == f for p in ranked)],
        "setting_rows": [
            ("Source", setting.source), ("Target", setting.target),
            ("Episodes", f"{setting.episodes} × {setting.ways}-way {setting.shots}-shot, "
                         f"{setting.queries} queries per class"),
            ("Episode seed", str(setting.seed)), ("Episode fingerprint", setting.fingerprint),
            ("Device", comparison.device), ("Threads", str(comparison.threads)), ("Started", comparison.created),
        ],
        "config_yaml": config_yaml,
    }


def render_report(comparison: Comparison, *, run_dir: str | os.PathLike[str]) -> str:
    """The report's HTML text.

    Args:
        comparison: The comparison to show (validated first).
        run_dir: The folder its relative paths (path runs, images) start from.

    Returns:
        A complete HTML document with every picture embedded and no outside reference.

    Raises:
        ComparisonError: The comparison is malformed.
    """
    comparison.check()
    run_dir = Path(run_dir)
    context = _context(comparison, run_dir)
    return _environment().get_template(_TEMPLATE).render(**context)


def write_report(run_dir: str | os.PathLike[str], *, comparison: Comparison | None = None) -> Path:
    """Write ``<run_dir>/report.html`` atomically.

    Pictures that are listed but missing or unreadable are left out with a warning (and named at the end of the
    report); paths without a run folder get no learning curves. The report never needs the run folder again.

    Args:
        run_dir: A ``metaxfer run`` folder.
        comparison: The comparison to show; read from ``<run_dir>/comparison.json`` when ``None``.

    Returns:
        The report's path.

    Raises:
        DataFormatError: ``comparison`` is ``None`` and the folder has no comparison.json.
        ComparisonError: The comparison is malformed.
        OutputError: The report cannot be written.
    """
    run_dir = Path(run_dir)
    if comparison is None:
        comparison = Comparison.load(run_dir)
    html = render_report(comparison, run_dir=run_dir)
    out = atomic_write_text(run_dir / REPORT_FILE, html)
    log.info("report written to %s", out)
    return out
