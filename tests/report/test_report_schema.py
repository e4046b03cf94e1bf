"""comparison.json: the dataclasses round-trip through JSON, and malformed files fail with errors naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_comparison

from metaxfer.errors import DataFormatError
from metaxfer.report import Accuracy, Comparison, ComparisonError, ImageRef, PathResult, Seconds


@pytest.fixture()
def comparison(tmp_path: Path) -> Comparison:
    return build_comparison(tmp_path)


def test_json_round_trip_keeps_every_field(comparison: Comparison) -> None:
    text = comparison.to_json()
    back = Comparison.from_json(text)
    assert back == comparison
    assert back.to_json() == text
    data = json.loads(text)
    assert data["paths"][2]["accuracy"] == {"mean": 0.705, "ci95": 0.019, "n": 600}
    assert data["paths"][4]["run"] == "paths/dagan-protonet"
    assert data["paths"][4]["metrics"] == {"FID": 44.0}
    assert data["setting"]["fingerprint"] == "3f2a9c1e"


def test_save_and_load_through_the_run_folder(comparison: Comparison, tmp_path: Path) -> None:
    path = comparison.save(tmp_path)
    assert path == tmp_path / "comparison.json"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert Comparison.load(tmp_path) == comparison


def test_optional_fields_may_be_left_out(comparison: Comparison) -> None:
    data = json.loads(comparison.to_json())
    del data["images"], data["config"]
    for p in data["paths"]:
        del p["run"], p["images"], p["metrics"]
    back = Comparison.from_dict(data)
    assert back.images == [] and back.config == {}
    assert all(p.run is None and p.images == [] and p.metrics == {} for p in back.paths)


def test_ranked_is_best_first_with_ties_by_name(comparison: Comparison) -> None:
    assert [p.name for p in comparison.ranked()] == ["metagan", "protonet", "dagan+protonet", "maml", "finetune",
                                                      "scratch"]
    a = PathResult(name="b", family="gan", description="", accuracy=Accuracy(mean=0.5, ci95=0.1, n=3),
                   seconds=Seconds(train=1, evaluate=1))
    b = PathResult(name="a", family="gan", description="", accuracy=Accuracy(mean=0.5, ci95=0.1, n=3),
                   seconds=Seconds(train=1, evaluate=1))
    comparison.paths = [a, b]
    assert [p.name for p in comparison.ranked()] == ["a", "b"]


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if value is _DELETE:
        del data[keys[-1]]
    else:
        data[keys[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("recipe", _DELETE, "comparison lacks 'recipe'"),
        ("extra", 1, "unknown keys 'extra'"),
        ("threads", True, "threads must be an integer, got bool"),
        ("threads", 0, "threads must be at least 1"),
        ("created", "yesterday", "created must be an ISO 8601 time"),
        ("paths", [], "paths must be a non-empty list"),
        ("paths", {}, "paths must be a list, got dict"),
        ("setting.ways", 0, "setting.ways must be at least 1"),
        ("setting.seed", "0", "setting.seed must be an integer, got str"),
        ("paths.1.family", "transfer", "paths[1].family must be one of baseline, meta-learning, gan, meta-gan"),
        ("paths.1.name", " ", "paths[1].name must not be empty"),
        ("paths.1.name", "scratch", "paths[1].name 'scratch' is used twice"),
        ("paths.2.accuracy.mean", 70.5, "paths[2].accuracy.mean must be at most 1.0, got 70.5"),
        ("paths.2.accuracy.mean", "0.7", "paths[2].accuracy.mean must be a number, got str"),
        ("paths.2.accuracy.ci95", -0.1, "paths[2].accuracy.ci95 must be at least 0.0"),
        ("paths.2.accuracy.n", 0, "paths[2].accuracy.n must be at least 1"),
        ("paths.2.accuracy.std", 0.1, "paths[2].accuracy has unknown keys 'std'"),
        ("paths.2.seconds.train", -1, "paths[2].seconds.train must be at least 0.0"),
        ("paths.2.seconds", _DELETE, "paths[2] lacks 'seconds'"),
        ("paths.2.run", "/abs/run", "paths[2].run must be relative to the run folder"),
        ("paths.4.images.0.path", "../outside.png", "paths[4].images[0].path must stay inside the run folder"),
        ("paths.4.images.0.title", None, "paths[4].images[0].title must be a string, got NoneType"),
        ("paths.4.metrics", {"FID": "low"}, "paths[4].metrics['FID'] must be a number"),
        ("images", "figures/a.png", "images must be a list, got str"),
        ("versions", ["3.11"], "versions must be a JSON object, got list"),
    ],
)
def test_malformed_fields_are_named(comparison: Comparison, field: str, value: Any, expected: str) -> None:
    data = copy.deepcopy(json.loads(comparison.to_json()))
    _set(data, field, value)
    with pytest.raises(ComparisonError) as info:
        Comparison.from_json(json.dumps(data), source="runs/x/comparison.json")
    assert str(info.value).startswith("runs/x/comparison.json: ")
    assert expected in str(info.value)


def test_non_finite_numbers_are_refused(comparison: Comparison) -> None:
    text = comparison.to_json().replace('"mean": 0.705', '"mean": NaN')
    with pytest.raises(ComparisonError, match=r"paths\[2\]\.accuracy\.mean must be a finite number"):
        Comparison.from_json(text)


def test_text_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "comparison.json").write_text('{"recipe": ', encoding="utf-8")
    with pytest.raises(ComparisonError, match="comparison.json is not valid JSON"):
        Comparison.load(tmp_path)


def test_a_folder_without_comparison_json(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="has no comparison.json: it is not a `metaxfer run` folder"):
        Comparison.load(tmp_path)


def test_dataclasses_built_in_code_are_checked_before_saving(comparison: Comparison, tmp_path: Path) -> None:
    comparison.config = {"model": object()}
    with pytest.raises(ComparisonError, match="config must be plain JSON data .*OmegaConf.to_container"):
        comparison.save(tmp_path)
    assert not (tmp_path / "comparison.json").exists()
    comparison.config = {}
    comparison.paths[0] = PathResult(name="x", family="baseline", description="",
                                     accuracy=Accuracy(mean=1.5, ci95=0.0, n=1), seconds=Seconds(train=0, evaluate=0))
    with pytest.raises(ComparisonError, match=r"paths\[0\]\.accuracy\.mean must be at most 1.0"):
        comparison.to_json()
    comparison.paths[0] = PathResult(name="x", family="baseline", description="",
                                     accuracy=Accuracy(mean=0.5, ci95=0.0, n=1), seconds=Seconds(train=0, evaluate=0),
                                     images=[ImageRef(title="t", path="C:/pictures/a.png")])
    with pytest.raises(ComparisonError, match=r"paths\[0\]\.images\[0\]\.path must be relative"):
        comparison.to_json()
