"""The ``meta`` method through the engine: a run trains and validates, resumes exactly after Ctrl-C (meta-training
and Baseline pre-training), scratch trains nothing, and config mistakes are clear errors before any run starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from metaxfer.engine import ConfigError, Run, load_config, resume, train
from metaxfer.meta import ALGORITHMS

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("meta-*.yaml"))


def config(meta: dict[str, Any] | None = None, overrides: list[str] = (), **train: Any) -> Any:
    """A small synthetic meta-learning experiment (16×16 blobs, 30 classes split 18/6/6)."""
    raw = {
        "method": "meta", "seed": 0, "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": {"num_classes": 30, "per_class": 12, "size": 16, "seed": 0},
                 "batch_size": 16},
        "train": {"steps": 12, "log_every": 2, "eval_every": 4, "checkpoint_every": 4, "lr": 3e-3, **train},
        "meta": {"algorithm": "protonet", "backbone_kwargs": {"hidden": 8}, "meta_batch": 2, "queries": 3,
                 "val_episodes": 10, **(meta or {})},
    }
    return load_config(raw, list(overrides))


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_meta_run_trains_validates_and_tracks_the_best_checkpoint(tmp_path):
    result = train(config(), out=tmp_path / "run", progress_bar=False)
    assert result.state == "finished" and result.step == 12
    logged = rows(tmp_path / "run")
    assert {"meta/loss", "meta/acc"} <= set(logged[0])
    evals = [r for r in logged if "eval/acc" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert all(0.0 <= r["eval/acc"] <= 1.0 and r["eval/ci"] > 0 for r in evals)
    best = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "eval/acc" and best["value"] == max(r["eval/acc"] for r in evals)
    state = json.loads((tmp_path / "run" / "checkpoints" / f"step-{12:08d}" / "state.json").read_text())
    assert state["state"]["method"]["model"] == {"in_channels": 1, "image_size": 16, "num_classes": 18}
    # the validation episodes are the source's validation classes: 30 * 0.2 = 6 classes, none used in training
    assert Run.open(tmp_path / "run").read_info()["headline"] == {"metric": "eval/acc", "mode": "max"}


@pytest.mark.parametrize("meta", [{"algorithm": "maml", "inner_lr": 0.4}, {"algorithm": "baseline"}],
                         ids=["maml", "baseline-pretraining"])
def test_ctrl_c_then_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, ctrl_c, checkpoint_tensors, meta):
    ref = train(config(meta), out=tmp_path / "ref", progress_bar=False)
    ctrl_c.at(5)
    stopped = train(config(meta), out=tmp_path / "run", progress_bar=False)
    assert stopped.state == "interrupted" and stopped.step == 6
    ctrl_c.off()
    done = resume(tmp_path / "run", progress_bar=False)
    assert done.state == "finished" and done.final == ref.final
    assert rows(tmp_path / "run") == rows(ref.run_dir)
    a, b = checkpoint_tensors(ref.run_dir, 12), checkpoint_tensors(tmp_path / "run", 12)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the data order is part of the state: the generator of the episodes (or batches) is in the checkpoint
    assert "generators/episodes" in a


def test_baseline_pretrains_a_classifier_over_the_source_training_classes(tmp_path, checkpoint_tensors):
    result = train(config({"algorithm": "baseline++"}), out=tmp_path / "run", progress_bar=False)
    logged = rows(tmp_path / "run")
    assert {"pretrain/loss", "pretrain/acc"} <= set(logged[0]) and "meta/loss" not in logged[0]
    weights = checkpoint_tensors(result.run_dir, 12)
    head = [k for k in weights if k.startswith("modules/algorithm/backbone.head") and k.endswith("weight")]
    assert head and weights[head[0]].shape[0] == 18  # one output per source training class


def test_scratch_has_nothing_to_train(tmp_path, checkpoint_tensors):
    result = train(config({"algorithm": "scratch", "options": {"steps": 5}}, keep_last=10), out=tmp_path / "run",
                   progress_bar=False)
    assert result.state == "finished"
    a, b = checkpoint_tensors(result.run_dir, 0), checkpoint_tensors(result.run_dir, 12)
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("modules/"))
    assert "eval/acc" in result.final


def test_unknown_algorithm_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        config({"algorithm": "mamll"})
    for name in ALGORITHMS.names():
        assert name in str(err.value)
    assert "meta.algorithm" in str(err.value)


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"algorithm": "protonet", "options": {"inner_lr": 0.1}}, ["does not take inner_lr", "normalize"]),
        ({"algorithm": "maml", "options": {"outer_lr": 0.1}}, ["engine owns", "train.lr"]),
        ({"eval": {"settings": ["5way1shot"]}}, ["meta.eval.settings", "5w1s"]),
        ({"source": {"transforms": [{"name": "Resise", "size": 8}]}}, ["Resize", "meta.source.transforms[0]"]),
        ({"source": {"transforms": [{"name": "Resize", "sise": 8}]}}, ["meta.source.transforms[0]", "sise"]),
        ({"split": {"fractions": [0.5, 0.2]}}, ["meta.split.fractions", "summing to 1"]),
        ({"norm": "batch"}, ["meta.norm", "support, transductive, running"]),
    ],
)
def test_config_mistakes_are_errors_that_say_what_is_allowed(tmp_path, meta, words):
    with pytest.raises(ConfigError) as err:
        config(meta)
    for word in words:
        assert word in str(err.value)


def test_data_mistakes_name_the_fix(tmp_path):
    from metaxfer.errors import EpisodeError

    with pytest.raises(EpisodeError, match="valid choices are class"):
        train(config({"split": {"by": "alphabet"}}), out=tmp_path / "a", progress_bar=False)
    with pytest.raises(EpisodeError, match="validation part .* empty"):
        train(config({"split": {"fractions": [1.0, 0.0]}}), out=tmp_path / "b", progress_bar=False)


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads_and_names_its_settings(recipe):
    cfg = load_config(recipe)
    assert cfg.method == "meta" and cfg.threads == 1 and cfg.meta.eval.settings
    from metaxfer.methods.crossdomain import parse_setting

    for s in cfg.meta.eval.settings:
        parse_setting(s, queries=cfg.meta.eval.queries)
