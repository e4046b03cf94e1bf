"""``metaxfer evaluate``: target accuracy of a trained run on fixed episodes (JSON with mean, 95% CI, seed and
fingerprint), within-group episodes, a query set from another domain, scratch from a recipe, and Lake's one-shot runs
on a fixture in their own on-disk format."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from metaxfer.cli.main import main
from metaxfer.engine import load_config, train
from metaxfer.meta import confidence_interval
from metaxfer.data import create_domain
from metaxfer.methods.crossdomain import (
    DomainConfig,
    SourceConfig,
    SplitConfig,
    TargetConfig,
    build_source,
    build_target,
    parse_setting,
    target_episodes,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from fixtures_formats import write_omniglot_runs  # noqa: E402

SYNTHETIC = {"num_classes": 30, "per_class": 12, "size": 16, "seed": 0}


def raw_config(meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "method": "meta", "seed": 0, "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": dict(SYNTHETIC), "batch_size": 16},
        "train": {"steps": 8, "log_every": 4, "eval_every": 4, "checkpoint_every": 4, "lr": 3e-3},
        "meta": {"algorithm": "protonet", "backbone_kwargs": {"hidden": 8}, "meta_batch": 2, "queries": 3,
                 "val_episodes": 8, "eval": {"settings": ["5w1s", "3w2s4q"], "episodes": 12, "queries": 3},
                 **(meta or {})},
    }


@pytest.fixture(scope="module")
def protonet_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proto") / "run"
    train(load_config(raw_config()), out=out, progress_bar=False)
    return out


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["metaxfer", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_writes_each_setting_with_ci_seed_and_fingerprint(protonet_run, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run))
    assert code == 0, err
    assert "5-way 1-shot" in out and " ± " in out and "over 12 episodes (seed 0, episodes " in out
    first = json.loads((protonet_run / "evaluation-5w1s3q.json").read_text())
    other = json.loads((protonet_run / "evaluation-3w2s4q.json").read_text())
    assert (other["setting"]["ways"], other["setting"]["shots"], other["setting"]["queries"]) == (3, 2, 4)
    assert first["episodes"] == len(first["accuracies"]) == 12 and first["seed"] == 0
    mean, half = confidence_interval(first["accuracies"])
    assert first["accuracy"] == pytest.approx(mean) and first["ci"] == pytest.approx(half)
    assert first["std"] == pytest.approx(statistics.stdev(first["accuracies"]))
    assert len(first["fingerprint"]) == 16 and first["fingerprint"] != other["fingerprint"]
    best = json.loads((protonet_run / "checkpoints" / "best.json").read_text())
    assert first["model"]["checkpoint"].endswith(best["checkpoint"]) and first["model"]["step"] == best["step"]
    assert first["target"]["classes"] == 6  # the source's test part: 30 classes split 18/6/6
    # the same command gives the same episodes and the same numbers; another seed other episodes
    code, _, _ = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--setting", "5w1s")
    again = json.loads((protonet_run / "evaluation-5w1s3q.json").read_text())
    assert (again["fingerprint"], again["accuracies"]) == (first["fingerprint"], first["accuracies"])
    cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--setting", "5w1s", "--seed", "7",
        "--out", str(protonet_run / "seed7"))
    moved = json.loads((protonet_run / "seed7" / "evaluation-5w1s3q.json").read_text())
    assert moved["seed"] == 7 and moved["fingerprint"] != first["fingerprint"]


def test_the_episodes_are_target_classes_never_seen_in_training(protonet_run):
    from metaxfer.methods.meta_eval import load_model, resolve_target

    model = load_model(protonet_run)
    target = resolve_target(model)
    source = create_domain("synthetic", **SYNTHETIC)
    cfg = model.cfg
    part = build_source(cfg.data.domain, cfg.data.options, cfg.meta.source, cfg.meta.split, seed=0)
    assert set(target.support.class_keys).isdisjoint(part.train.class_keys)
    assert set(target.support.class_keys).isdisjoint(part.val.class_keys)
    assert set(target.support.class_keys) <= set(source.class_keys)


def test_maml_trained_5_way_refuses_other_ways_clearly(tmp_path, monkeypatch, capsys):
    run = tmp_path / "maml"
    train(load_config(raw_config({"algorithm": "maml"}), ["train.steps=2", "train.eval_every=2"]), out=run,
          progress_bar=False)
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", str(run), "--episodes", "4")
    assert code == 0 and "3w2s4q: skipped: maml was built for 5-way episodes" in err and "meta.ways=3" in err
    assert (run / "evaluation-5w1s3q.json").exists() and not (run / "evaluation-3w2s4q.json").exists()
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", str(run), "--ways", "3", "--shots", "1")
    assert code == 2 and "meta.ways=3" in err


def test_scratch_is_evaluated_straight_from_a_recipe(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "recipe.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(raw_config()))
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--config", str(recipe), "--algorithm", "scratch",
                         "meta.options.steps=5", "--setting", "3w1s", "--episodes", "4", "--out", str(tmp_path / "o"))
    assert code == 0, err
    record = json.loads((tmp_path / "o" / "evaluation-3w1s3q.json").read_text())
    assert record["model"]["algorithm"] == "scratch" and record["model"]["run"] is None
    assert record["episodes"] == 4
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--config", str(recipe), "--algorithm", "maml")
    assert code == 2 and "must be trained first" in err and "metaxfer train" in err


def test_within_group_episodes_draw_all_classes_from_one_group():
    # two synthetic domains merged: the group `domain` says which one a class came from
    extra = DomainConfig(domain="synthetic", options={**SYNTHETIC, "seed": 1}, transforms=[{"name": "Invert"}])
    source = build_source("synthetic", SYNTHETIC, SourceConfig(extra=[extra]), SplitConfig(), seed=0)
    target = build_target(TargetConfig(), source_test=source.test, image_shape=source.image_shape)
    groups = target.support.groups["domain"]
    assert sorted(set(groups)) == ["synthetic", "synthetic+Invert"]
    episodes = target_episodes(target, parse_setting("3w1s2q@domain", queries=2), episodes=9, seed=3)
    assert len(episodes) == 9
    for episode in episodes:
        pos = [target.support.class_keys.index(k) for k in episode.class_keys]
        assert len({groups[p] for p in pos}) == 1
    again = target_episodes(target, parse_setting("3w1s2q@domain", queries=2), episodes=9, seed=3)
    assert again.fingerprint() == episodes.fingerprint()
    assert target_episodes(target, parse_setting("3w1s2q@domain", queries=2), episodes=9, seed=4).fingerprint() \
        != episodes.fingerprint()


def test_a_query_domain_supplies_the_query_images():
    support = {**SYNTHETIC, "num_classes": 8}
    query = {**support, "jitter": 0.2}  # same classes (same seed, same keys), another "style"
    cfg = TargetConfig(domain="synthetic", options=support, query=DomainConfig(domain="synthetic", options=query))
    target = build_target(cfg, source_test=None, image_shape=(1, 16, 16))
    assert target.query is not None and target.description["query_domain"] == "synthetic"
    qdom = create_domain("synthetic", **query)
    sdom = create_domain("synthetic", **support)
    for episode in target_episodes(target, parse_setting("4w1s2q", queries=2), episodes=3, seed=0):
        for x, y in zip(episode.query_x, episode.query_y):
            key = episode.class_keys[int(y)]
            candidates = qdom.images[qdom.labels == qdom.class_keys.index(key)]
            assert any(torch.equal(x, c) for c in candidates)
            assert not any(torch.equal(x, c) for c in sdom.images)
    with pytest.raises(Exception, match="shape .* model takes"):
        build_target(cfg, source_test=None, image_shape=(1, 28, 28))


def test_omniglot_runs_on_a_fixture_in_their_own_format(protonet_run, tmp_path, monkeypatch, capsys):
    root = tmp_path / "all_runs"
    truth = write_omniglot_runs(root, runs=2, ways=5, side=16, seed=0)
    # make each test item a copy of its class's training image: a ProtoNet must then score exactly 100%,
    # and only if the answers of class_labels.txt are read and matched correctly
    for r, (_, _, targets) in enumerate(truth, start=1):
        for k, t in enumerate(targets):
            src = root / f"run{r:02d}" / "training" / f"class{t + 1:02d}.png"
            (root / f"run{r:02d}" / "test" / f"item{k + 1:02d}.png").write_bytes(src.read_bytes())
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--dataset", "omniglot-runs",
                         "--root", str(root))
    assert code == 0, err
    record = json.loads((protonet_run / "evaluation-omniglot-runs.json").read_text())
    assert record["episodes"] == 2 and record["accuracy"] == 1.0 and record["ci"] == 0.0
    assert record["setting"]["ways"] == 5 and record["target"]["runs"] == ["run01", "run02"]
    assert len(record["fingerprint"]) == 16 and "100.00 ± 0.00 %" in out
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--dataset", "omniglot-runs")
    assert code == 2 and "--root" in err
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--dataset", "omniglot-runs",
                       "--root", str(tmp_path / "nowhere"))
    assert code == 2 and "all_runs.zip" in err


def test_another_registered_domain_can_replace_the_target(protonet_run, monkeypatch, capsys, tmp_path):
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--dataset", "synthetic",
                         "--option", "num_classes=7", "--option", "size=16", "--option", "seed=5", "--setting", "5w1s",
                         "--episodes", "3", "--out", str(tmp_path))
    assert code == 0, err
    record = json.loads((tmp_path / "evaluation-synthetic-5w1s3q.json").read_text())
    assert record["target"]["classes"] == 7 and record["target"]["options"]["seed"] == 5
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", str(protonet_run), "--dataset", "synthetic",
                       "--option", "size=20", "--setting", "5w1s", "--episodes", "3", "--out", str(tmp_path))
    assert code == 2 and "model takes (1, 16, 16)" in err and "Resize" in err


def test_a_target_that_reads_files_takes_them_from_root(tmp_path, monkeypatch, capsys):
    """The omniglot-full recipe's target: Omniglot's evaluation alphabets, from files only the user has."""
    from fixtures_formats import write_omniglot_set

    raw = raw_config({"target": {"domain": "omniglot", "options": {"background": False, "size": 16}}})
    run = tmp_path / "run"
    train(load_config(raw, ["train.steps=2", "train.eval_every=2"]), out=run, progress_bar=False)
    write_omniglot_set(tmp_path / "omni" / "images_evaluation.zip", {"Alpha": [1, 2, 3], "Beta": [4, 5, 6, 7]},
                       drawers=3, side=20)
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", str(run), "--setting", "3w1s1q@alphabet")
    assert code == 2 and "root=PATH" in err
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", str(run), "--root", str(tmp_path / "omni"),
                         "--setting", "3w1s1q@alphabet", "--episodes", "5")
    assert code == 0, err
    record = json.loads((run / "evaluation-3w1s1q-alphabet.json").read_text())
    assert record["target"]["domain"] == "omniglot" and record["target"]["classes"] == 7
    assert record["target"]["groups"] == {"Alpha": 3, "Beta": 2} and record["episodes"] == 5
    assert record["target"]["options"]["root"] == str(tmp_path / "omni")
