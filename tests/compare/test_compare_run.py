"""``metaxfer run``: recipes (loading, overrides, validation errors), a whole comparison on the synthetic domain
(every path on the same episodes, run folder, report, resume), the paired differences, and the command line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from metaxfer.cli.main import main
from metaxfer.compare import ComparisonError, list_recipes, load_recipe, run_comparison
from metaxfer.compare.runner import PathResult, paired_differences
from metaxfer.engine.config import ConfigError

SYNTHETIC = {"num_classes": 30, "per_class": 12, "size": 16, "seed": 0}


def meta_config() -> dict[str, Any]:
    return {
        "method": "meta", "seed": 0, "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": dict(SYNTHETIC), "batch_size": 16},
        "train": {"steps": 6, "log_every": 3, "eval_every": 3, "checkpoint_every": 3, "lr": 3e-3},
        "meta": {"algorithm": "protonet", "backbone_kwargs": {"hidden": 8}, "meta_batch": 2, "queries": 3,
                 "val_episodes": 4, "eval": {"settings": ["5w1s"], "episodes": 4, "queries": 3}},
    }


def recipe_dict() -> dict[str, Any]:
    return {
        "title": "synthetic test",
        "description": "a tiny comparison",
        "target": {"config": "meta.yaml", "setting": "5w2s", "queries": 3,
                   "episodes": {"quick": 6, "default": 8, "full": 10}, "seed": 3},
        "trainings": {
            "protonet": {"config": "meta.yaml", "quick": ["train.steps=4"]},
            "maml": {"config": "meta.yaml", "overrides": ["meta.algorithm=maml", "meta.inner_steps=1"],
                     "quick": ["train.steps=4"]},
        },
        "paths": [
            {"name": "scratch", "family": "baseline",
             "classifier": {"algorithm": "scratch", "overrides": ["meta.options.steps=3"]}},
            {"name": "protonet", "family": "meta-learning", "classifier": {"training": "protonet"}},
            {"name": "maml", "family": "meta-learning", "classifier": {"training": "maml"}},
        ],
    }


def write_recipe(folder: Path, data: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.yaml").write_text(yaml.safe_dump(meta_config()))
    path = folder / "cmp.yaml"
    path.write_text(yaml.safe_dump(data or recipe_dict()))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Any, list[str]]:
    root = tmp_path_factory.mktemp("cmp")
    recipe = load_recipe(str(write_recipe(root / "recipe")))
    lines: list[str] = []
    comparison = run_comparison(recipe, out=root / "out", size="quick", say=lines.append, device="cpu", workers=1)
    return root, comparison, lines


# ----------------------------------------------------------------------------------------------------- recipes
def test_builtin_recipes_load_and_default_is_pip_only():
    found = list_recipes()
    assert "digits" in found
    for name in found:
        recipe = load_recipe(name)
        assert recipe.paths and {p.family for p in recipe.paths} <= {"baseline", "meta-learning", "gan", "meta-gan"}
    digits = load_recipe("digits")
    assert digits.data == "pip"
    families = {p.family for p in digits.paths}
    assert families == {"baseline", "meta-learning", "gan", "meta-gan"}  # every transfer path of the mission


def test_overrides_apply_and_unknown_keys_are_named(tmp_path):
    path = write_recipe(tmp_path)
    recipe = load_recipe(str(path), ["target.episodes.quick=3", "threads=2"])
    assert recipe.target.episodes["quick"] == 3 and recipe.threads == 2
    with pytest.raises(ConfigError, match="no key 'target.episode'"):
        load_recipe(str(path), ["target.episode=3"])
    with pytest.raises(ConfigError, match="key=value"):
        load_recipe(str(path), ["threads"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["paths"][1]["classifier"].update(training="nope"), "unknown training 'nope'"),
        (lambda r: r["paths"][0]["classifier"].update(training="protonet"), "either `training`"),
        (lambda r: r["paths"][0].update(family="magic"), "family 'magic'"),
        (lambda r: r["paths"][2].update(name="protonet"), "unique"),
        (lambda r: r["trainings"]["maml"].update(config="missing.yaml"), "missing.yaml not found"),
        (lambda r: r["paths"][1].update(augment={"kind": "run", "training": "ghost"}), "augment.training 'ghost'"),
        (lambda r: r["paths"][1].update(augment={"kind": "paint"}), "augment.kind 'paint'"),
        (lambda r: r["paths"][1].update(augment={"kind": "classic", "made_weight": 0}), "made_weight must be a pos"),
        (lambda r: r.update(paths=[]), "no paths"),
    ],
)
def test_broken_recipes_are_refused_with_the_reason(tmp_path, edit, message):
    data = recipe_dict()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        load_recipe(str(write_recipe(tmp_path, data)))


def test_made_weight_enters_the_score_key_only_when_it_is_not_1(tmp_path):
    from metaxfer.compare.runner import _path_key

    data = recipe_dict()
    data["paths"][1]["augment"] = {"kind": "classic", "per_class": 2}
    recipe = load_recipe(str(write_recipe(tmp_path, data)))
    spec = recipe.paths[1]
    assert spec.augment.made_weight == 1.0
    key = _path_key(spec, "quick", "fp", recipe)
    # the key of a recipe written before made_weight existed: the same payload without the field
    old = dataclasses.asdict(spec)
    del old["augment"]["made_weight"]
    payload = {"path": old, "size": "quick", "fingerprint": "fp",
               "trainings": {"protonet": dataclasses.asdict(recipe.trainings["protonet"])}}
    assert key == hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    lighter = dataclasses.replace(spec, augment=dataclasses.replace(spec.augment, made_weight=0.5))
    assert _path_key(lighter, "quick", "fp", recipe) != key


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown recipe 'nosuch'; recipes: .*digits"):
        load_recipe("nosuch")


def test_unknown_path_name_lists_the_paths(tmp_path):
    recipe = load_recipe(str(write_recipe(tmp_path)))
    with pytest.raises(ConfigError, match="no path 'ghost'; its paths: scratch, protonet, maml"):
        recipe.select(["ghost"])


# ------------------------------------------------------------------------------------------------- comparison
def test_every_path_is_scored_on_the_same_episodes(finished):
    root, comparison, _ = finished
    data = json.loads((root / "out" / "comparison.json").read_text())
    assert [p["name"] for p in data["paths"]] == ["scratch", "protonet", "maml"]
    assert data["setting"]["episodes"] == 6 and data["setting"]["ways"] == 5 and data["setting"]["shots"] == 2
    assert {r.fingerprint for r in comparison.results} == {comparison.fingerprint}
    for r in comparison.results:
        assert len(r.accuracies) == 6
        assert math.isclose(r.accuracy, sum(r.accuracies) / 6, rel_tol=1e-9)
        assert 0.0 <= r.accuracy <= 1.0 and r.ci95 >= 0.0
    by_name = {p["name"]: p for p in data["paths"]}
    assert by_name["scratch"]["run"] is None and by_name["scratch"]["seconds"]["train"] == 0.0
    assert by_name["protonet"]["run"] == "trainings/protonet" and by_name["protonet"]["seconds"]["train"] > 0
    assert (root / "out" / "trainings" / "protonet" / "metrics.jsonl").is_file()
    assert (root / "out" / "report.html").is_file()


def test_rerunning_the_same_folder_reuses_trainings_and_scores(finished):
    root, comparison, _ = finished
    before = sorted((root / "out" / "timings").glob("*.json"))
    before = {p: p.read_text() for p in before}
    first_sitting = json.loads((root / "out" / "comparison.json").read_text())["seconds"]
    assert json.loads((root / "out" / "sittings.json").read_text())["seconds"] == first_sitting > 0
    recipe = load_recipe(str(root / "recipe" / "cmp.yaml"))
    lines: list[str] = []
    again = run_comparison(recipe, out=root / "out", size="quick", say=lines.append, device="cpu", workers=1)
    total = json.loads((root / "out" / "comparison.json").read_text())["seconds"]
    assert total > first_sitting  # the time of every sitting, added up
    assert json.loads((root / "out" / "sittings.json").read_text())["seconds"] == total
    assert {p: p.read_text() for p in sorted((root / "out" / "timings").glob("*.json"))} == before
    assert sum("reusing" in line for line in lines) == 3  # three paths; their trainings are not even opened
    assert not any(line.startswith("training") for line in lines)
    assert [r.accuracies for r in again.results] == [r.accuracies for r in comparison.results]


def test_worker_processes_give_the_same_results(finished, tmp_path):
    root, comparison, _ = finished
    recipe = load_recipe(str(root / "recipe" / "cmp.yaml"))
    lines: list[str] = []
    parallel = run_comparison(recipe, out=tmp_path / "par", size="quick", say=lines.append, device="cpu", workers=2)
    assert any("2 worker processes" in line for line in lines)
    assert [r.accuracies for r in parallel.results] == [r.accuracies for r in comparison.results]
    assert parallel.fingerprint == comparison.fingerprint


def test_a_folder_of_another_size_or_changed_training_is_refused(finished, tmp_path):
    root, _, _ = finished
    recipe = load_recipe(str(root / "recipe" / "cmp.yaml"))
    with pytest.raises(ComparisonError, match="size 'quick'"):
        run_comparison(recipe, out=root / "out", size="default", say=lambda _: None, device="cpu")
    changed = recipe_dict()
    changed["trainings"]["protonet"]["quick"] = ["train.steps=5"]
    recipe = load_recipe(str(write_recipe(tmp_path / "r", changed)))
    with pytest.raises(ComparisonError, match="another config"):
        run_comparison(recipe, out=root / "out", size="quick", say=lambda _: None, device="cpu")


def test_paired_differences_use_the_per_episode_gaps():
    def result(name: str, accs: list[float]) -> PathResult:
        return PathResult(name=name, family="baseline", description="", accuracy=sum(accs) / len(accs), ci95=0.0,
                          episodes=len(accs), accuracies=accs, train_seconds=0.0, eval_seconds=0.0, trainings=[],
                          run=None)

    best = result("a", [0.9, 0.8, 1.0, 0.7])
    other = result("b", [0.8, 0.7, 0.9, 0.6])  # always exactly 0.1 behind: zero spread, a sure difference
    noisy = result("c", [1.0, 0.5, 0.9, 0.9])
    rows = {r["other"]: r for r in paired_differences([best, other, noisy])}
    assert rows["b"]["best"] == "a"
    assert math.isclose(rows["b"]["difference"], 0.1, abs_tol=1e-12) and rows["b"]["ci95"] < 1e-9
    assert rows["b"]["significant"] is True
    assert math.isclose(rows["c"]["difference"], (-0.1 + 0.3 + 0.1 - 0.2) / 4, abs_tol=1e-12)
    assert rows["c"]["significant"] is False
    assert paired_differences([best]) == []


# --------------------------------------------------------------------------------------------- command line
def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["metaxfer", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lists_recipes(monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "run", "--list")
    assert code == 0 and "digits (default)" in out


def test_cli_runs_a_recipe_and_prints_the_table(monkeypatch, capsys, tmp_path):
    path = write_recipe(tmp_path / "recipe")
    out_dir = tmp_path / "out"
    code, out, err = cli(monkeypatch, capsys, "run", str(path), "--quick", "--path", "scratch", "--path", "protonet",
                         "--out", str(out_dir), "--device", "cpu", "--workers", "1", "target.episodes.quick=4")
    assert code == 0, err
    assert "scratch" in out and "protonet" in out and "maml" not in out
    assert not (out_dir / "trainings" / "maml").exists()  # only what the chosen paths need is trained
    assert (out_dir / "report.html").is_file()


def test_cli_errors_name_the_problem(monkeypatch, capsys, tmp_path):
    code, _, err = cli(monkeypatch, capsys, "run", "nosuch")
    assert code == 2 and "unknown recipe 'nosuch'" in err
    path = write_recipe(tmp_path)
    code, _, err = cli(monkeypatch, capsys, "run", str(path), "--path", "ghost")
    assert code == 2 and "no path 'ghost'" in err
