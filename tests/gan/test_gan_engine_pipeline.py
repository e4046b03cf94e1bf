"""The transfer pipeline: three accuracies with intervals, the intervals' maths, the DAGAN few-shot method, the judge
of made images, balanced real/generated batches."""

from __future__ import annotations

import json
import math

import pytest
import torch

from metaxfer.data import create_domain
from metaxfer.engine import load_config, train
from metaxfer.errors import MetaxferError
from metaxfer.methods.gan_pipeline import (
    TrainingSet,
    TransferConfig,
    _batch_indices,
    _same_class_spread,
    classic_variants,
    common_format,
    compare_training_sets,
    judge_generated,
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
    assert {"eval/fid", "eval/transfer/shots/acc", "eval/transfer/shots+generated/acc",
            "eval/transfer/shots+augmented/acc", "eval/judge/real/acc", "eval/judge/generated/acc",
            "eval/judge/generated/spread", "eval/judge/augmented/acc"} <= set(result.final)
    assert result.final["eval/transfer/shots/ci_low"] <= result.final["eval/transfer/shots/acc"]
    grid = sorted((tmp_path / "run" / "samples").glob("*.png"))
    assert grid
    written = json.loads((tmp_path / "run" / "transfer.json").read_text())
    assert set(written["sets"]) == {"shots", "shots+generated", "shots+augmented"}
    assert written["sets"]["shots+generated"]["train_examples"] == 3 * 2 + 3 * 2 * 2  # 2 shots, 2 variants each
    assert written["judged"]["generated"]["acc"] == result.final["eval/judge/generated/acc"]


def test_judge_scores_copies_of_real_images_like_real_ones_and_noise_near_chance():
    dom = create_domain("synthetic", num_classes=4, per_class=30, size=8, seed=0, cache=False)
    cfg = TransferConfig(steps=80, width=8)
    noise = torch.randint(0, 256, dom.images.shape, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    copies = dom.images[::5].repeat_interleave(3, dim=0), dom.labels[::5].repeat_interleave(3)
    judged = judge_generated(dom.images, dom.labels, {"copies": copies, "noise": (noise, dom.labels)}, num_classes=4,
                             cfg=cfg)
    assert judged["real"]["acc"] > 0.9 and judged["copies"]["acc"] > 0.9
    assert judged["noise"]["acc"] < 0.6
    # 6 images of a class, 3 copies each: of the 18·17 ordered pairs, 6·5·9 join two different images, the rest are
    # equal (distance 0), so the spread is that of the 6 distinct images times 270/306
    distinct = _same_class_spread(dom.images[::5], dom.labels[::5])
    assert judged["copies"]["spread"] == pytest.approx(distinct * 270 / 306, rel=1e-5)
    one_each = dom.images[:4], torch.arange(4)
    assert "spread" not in judge_generated(dom.images, dom.labels, {"one": one_each}, num_classes=4, cfg=cfg)["one"]
    with pytest.raises(MetaxferError, match="two or more real images"):
        judge_generated(dom.images[:4], torch.arange(4), {}, num_classes=4, cfg=cfg)


def test_same_class_spread_is_the_mean_l1_between_two_images_of_a_class():
    a = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    b = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    c = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    c[..., 0, 0] = 255  # one pixel of four differs from a: L1 0.25
    images, labels = torch.cat([a, b, a, c]), torch.tensor([0, 0, 1, 1])
    assert _same_class_spread(images, labels) == pytest.approx((1.0 + 0.25) / 2)
    assert math.isnan(_same_class_spread(images[:2], torch.tensor([0, 1])))


def test_balanced_batches_draw_the_asked_share_of_real_images():
    g = torch.Generator().manual_seed(0)
    idx = _batch_indices(110, 64, real=10, real_share=0.5, generator=g)
    assert len(idx) == 64 and int((idx < 10).sum()) == 32 and int((idx >= 10).sum()) == 32
    assert int((_batch_indices(110, 4, real=10, real_share=0.99, generator=g) >= 10).sum()) == 1  # one of each kind
    uniform = _batch_indices(110, 2000, real=10, real_share=0.0, generator=g)
    assert 0.05 < float((uniform < 10).float().mean()) < 0.15  # every image alike: about 10/110 real
    assert int((_batch_indices(10, 8, real=10, real_share=0.5, generator=g) < 10).sum()) == 8  # nothing generated


def test_classic_variants_keep_labels_order_and_change_the_images():
    dom = create_domain("synthetic", num_classes=3, per_class=2, size=8, seed=0, cache=False)
    made, labels = classic_variants(dom.images, dom.labels, per_image=3, seed=0)
    assert made.dtype == torch.uint8 and made.shape == (18, *dom.images.shape[1:])
    assert torch.equal(labels, dom.labels.repeat_interleave(3))
    assert not torch.equal(made[:3], dom.images[:1].expand(3, -1, -1, -1))
    again, _ = classic_variants(dom.images, dom.labels, per_image=3, seed=0)
    assert torch.equal(made, again)


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
