"""The report's figures: which metrics are drawn, the curves read back, the bar colours, and no pyplot side effects."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from report_fixtures import build_comparison

from metaxfer.report import plots


@pytest.mark.parametrize(
    ("key", "family"),
    [("train/loss", "loss"), ("d/loss_fake", "loss"), ("eval/loss", "loss"), ("eval/acc", "accuracy"),
     ("train/accuracy", "accuracy"), ("eval/transfer/real/acc", "accuracy"), ("eval/query_acc", "accuracy"),
     ("eval/acc_std", None),
     ("lr", None), ("lr/g", None), ("eval/ci", None), ("train/grad_norm", None), ("eval/fid", None)],
)
def test_metric_family(key: str, family: str | None) -> None:
    assert plots.metric_family(key) == family


def test_read_curves_keeps_loss_and_accuracy_in_step_order(tmp_path: Path) -> None:
    rows = [{"step": 20, "train/loss": 0.5, "lr": 0.1}, {"step": 10, "train/loss": 0.9, "train/acc": 0.4},
            {"step": 30, "train/loss": float("nan"), "eval/acc": 0.8, "eval/ci": 0.01, "note": "text"}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 40, "tr',
                                            encoding="utf-8")
    curves = plots.read_curves(tmp_path)
    assert curves == {"train/loss": ([10.0, 20.0], [0.9, 0.5]), "train/acc": ([10.0], [0.4]),
                      "eval/acc": ([30.0], [0.8])}
    assert plots.read_curves(tmp_path / "nowhere") == {}


def test_curves_of_skips_paths_without_a_run_or_metrics(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    comparison = build_comparison(tmp_path)
    (tmp_path / "paths" / "maml" / "metrics.jsonl").unlink()
    curves = plots.curves_of(comparison, tmp_path)
    assert list(curves) == ["protonet", "dagan+protonet", "metagan"]
    assert set(curves["metagan"]) == {"d/loss", "g/loss", "eval/acc", "eval/loss"}
    assert curves["protonet"]["eval/acc"][0] == [50.0, 100.0, 150.0, 200.0]
    assert "path maml: no learning curves" in caplog.text


def _png(data: bytes) -> np.ndarray:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(data))
    assert "Software" not in img.info  # matplotlib's tag would name its web site
    return np.asarray(img.convert("RGB"))


def _has_colour(pixels: np.ndarray, hex_colour: str, *, at_least: int = 50) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - rgb).sum(-1) <= 6).sum()) >= at_least


def test_accuracy_bars_are_coloured_by_family(tmp_path: Path) -> None:
    comparison = build_comparison(tmp_path)
    pixels = _png(plots.accuracy_bars_png(comparison))
    assert pixels.shape[1] == 800 and pixels.shape[0] > 300
    for family in ("baseline", "meta-learning", "gan", "meta-gan"):
        assert _has_colour(pixels, plots.FAMILY_COLOURS[family], at_least=2000), family
    comparison.paths = [p for p in comparison.paths if p.family == "baseline"]
    pixels = _png(plots.accuracy_bars_png(comparison))
    assert _has_colour(pixels, plots.FAMILY_COLOURS["baseline"], at_least=2000)
    assert not _has_colour(pixels, plots.FAMILY_COLOURS["meta-gan"])


def test_learning_curves_one_panel_per_family(tmp_path: Path) -> None:
    comparison = build_comparison(tmp_path)
    both = _png(plots.learning_curves_png(plots.curves_of(comparison, tmp_path)))
    only_loss = _png(plots.learning_curves_png({"g": {"g/loss": ([1.0, 2.0], [1.0, 0.5])}}))
    assert both.shape[0] == 2 * only_loss.shape[0]  # two panels are twice as tall as one
    assert _has_colour(both, "#0072b2")  # the first path's colour is drawn
    assert plots.learning_curves_png({}) is None
    assert plots.learning_curves_png({"x": {"lr": ([1.0], [0.1])}}) is None


def test_drawing_leaves_no_global_matplotlib_state(tmp_path: Path) -> None:
    comparison = build_comparison(tmp_path)
    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    figures = len(sys.modules["matplotlib.pyplot"].get_fignums()) if had_pyplot else 0
    plots.accuracy_bars_png(comparison)
    plots.learning_curves_png(plots.curves_of(comparison, tmp_path))
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.get_backend() == backend
    if had_pyplot:
        assert len(sys.modules["matplotlib.pyplot"].get_fignums()) == figures
    else:
        assert "matplotlib.pyplot" not in sys.modules
