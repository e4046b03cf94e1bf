"""The transfer pipeline: three accuracies with intervals, the intervals' maths, the DAGAN few-shot method."""

from __future__ import annotations

import math

import pytest
import torch

from metaxfer.data import create_domain
from metaxfer.engine import load_config, train
from metaxfer.errors import MetaxferError
from metaxfer.methods.gan_pipeline import (
    TrainingSet,
    TransferConfig,
    common_format,
    compare_training_sets,
    mean_interval,
    per_class_split,
    wilson_interval,
)


def test_wilson_interval_matches_its_formula_and_bounds():
    low, high = wilson_interval(8, 10)
    z = 1.959964
    p, n = 0.8, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    # n = 2: sd = 0.1·√2, standard error 0.1, t(0.975, 1) = 12.7062
    assert mean_interval([0.5, 0.7]) == pytest.approx((0.6 - 1.27062, 0.6 + 1.27062), rel=1e-4)


def test_compare_training_sets_separates_good_and_useless_training_data():
    dom = create_domain("synthetic", num_classes=3, per_class=30, size=8, seed=0, cache=False)
    train_idx, test_idx = per_class_split(dom.labels, shots=20, seed=0)
    x, y = dom.images[train_idx], dom.labels[train_idx]
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    cfg = TransferConfig(steps=60, width=8, seeds=2)
    res = compare_training_sets([TrainingSet("real", x, y), TrainingSet("noise-labels", x, shuffled)],
                                dom.images[test_idx], dom.labels[test_idx], num_classes=3, cfg=cfg)
    assert res["real"]["acc"] > 0.9 and res["noise-labels"]["acc"] < res["real"]["acc"]
    assert res["real"]["ci"] == "t over seeds" and len(res["real"]["per_seed"]) == 2
    assert res["real"]["ci_low"] <= res["real"]["acc"] <= res["real"]["ci_high"]
    assert res["real"]["test_examples"] == 30 and res["real"]["train_examples"] == 60


def test_cyclegan_recipe_produces_the_three_accuracies(tmp_path):
    cfg = {
        "method": "cyclegan", "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": {"num_classes": 3, "per_class": 10, "size": 8, "seed": 0},
                 "batch_size": 4},
        "train": {"steps": 2, "eval_every": 2, "tensorboard": False, "samples": False},
        "cyclegan": {"target": "synthetic", "target_options": {"num_classes": 3, "per_class": 10, "size": 8, "seed": 0},
                     "width": 4, "blocks": 1, "downsamplings": 1, "d_width": 4, "d_layers": 1,
                     "transfer": {"enabled": True, "steps": 40, "width": 8}},
    }
    result = train(load_config(cfg), out=tmp_path / "run", progress_bar=False)
    for name in ("source", "translated", "oracle"):
        for key in ("acc", "ci_low", "ci_high"):
            assert 0.0 <= result.final[f"eval/transfer/{name}/{key}"] <= 1.0
    # source and target are the same domain here, so the source-only classifier is as good as the oracle
    assert result.final["eval/transfer/source/acc"] == pytest.approx(result.final["eval/transfer/oracle/acc"], abs=0.2)
    assert result.final["eval/transfer/oracle/acc"] > 0.6


def test_dagan_few_shot_recipe_runs_with_and_without_generated_images(tmp_path):
    cfg = {
        "method": "dagan", "threads": 1, "device": "cpu",
        "data": {"domain": "synthetic", "options": {"num_classes": 8, "per_class": 6, "size": 8}, "batch_size": 8},
        "train": {"steps": 3, "eval_every": 3, "tensorboard": False},
        "dagan": {"target_classes": 3, "shots": 2, "width": 4, "d_width": 4, "latent_dim": 4, "eval_images": 16,
                  "feature_epochs": 1, "transfer": {"enabled": True, "steps": 10, "width": 4, "generated_per_class": 4}},
    }
    result = train(load_config(cfg), out=tmp_path / "run", progress_bar=False)
    assert {"eval/fid", "eval/transfer/shots/acc", "eval/transfer/shots+generated/acc"} <= set(result.final)
    assert result.final["eval/transfer/shots/ci_low"] <= result.final["eval/transfer/shots/acc"]
    grid = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert grid


def test_common_format_and_split_errors():
    a = create_domain("synthetic", num_classes=2, per_class=3, size=8, cache=False)
    b = create_domain("synthetic", num_classes=2, per_class=3, size=12, channels=3, cache=False)
    sa, sb = common_format(a, b, size=16, channels=3)
    assert sa.image_shape == (3, 16, 16) and sb.image_shape == (3, 16, 16)
    od = common_format(a, a, size=16, channels=1, source_style="optdigits")[0]
    assert od.image_shape == (1, 16, 16)
    with pytest.raises(MetaxferError, match="source style 'fancy' is unknown"):
        common_format(a, a, size=8, channels=1, source_style="fancy")
    with pytest.raises(MetaxferError, match="lower the shots"):
        per_class_split(a.labels, shots=3, seed=0)
