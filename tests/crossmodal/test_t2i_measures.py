"""R-precision on constructed cases (a perfect encoder scores 1, a random one about 1/candidates), and the measuring
networks on a small domain: they recognise real images, and a copied real image measures as right."""

from __future__ import annotations

import pytest
import torch

from metaxfer.crossmodal.measures import (
    MeasureSettings,
    _sibling_accuracy,
    build_measure_kit,
    measure_images,
    r_precision,
)
from metaxfer.crossmodal.pairs import pairs_from_domain, split_classes
from metaxfer.data.domain import Domain
from metaxfer.errors import MetaxferError


def test_perfect_encoder_scores_one_and_random_scores_one_in_a_hundred():
    classes = torch.arange(300)
    one_hot = torch.eye(300)
    gen = torch.Generator().manual_seed(0)
    # a perfect encoder maps an image and its description to the same point, other classes elsewhere
    hits = r_precision(one_hot, one_hot, classes, pool_emb=one_hot, pool_class=classes, candidates=100, generator=gen)
    assert float(hits.mean()) == 1.0
    # random image embeddings: the right description ranks first among 100 about 1% of the time
    n = 6000
    texts = torch.randn(300, 32)
    idx = torch.randint(300, (n,), generator=gen)
    images = torch.randn(n, 32, generator=gen)
    hits = r_precision(images, texts[idx], idx, pool_emb=texts, pool_class=classes, candidates=100, generator=gen)
    assert 0.006 < float(hits.mean()) < 0.015  # 1/100 ± 3.5 standard errors
    # with 10 candidates: about 1/10
    hits10 = r_precision(images, texts[idx], idx, pool_emb=texts, pool_class=classes, candidates=10, generator=gen)
    assert 0.085 < float(hits10.mean()) < 0.115


def test_candidates_never_include_the_images_own_class_and_ties_are_misses():
    # two descriptions per class with identical embeddings: a same-class candidate would tie; it must never be drawn
    pool = torch.eye(50).repeat_interleave(2, dim=0)
    pool_class = torch.arange(50).repeat_interleave(2)
    gen = torch.Generator().manual_seed(1)
    hits = r_precision(torch.eye(50), torch.eye(50), torch.arange(50), pool_emb=pool, pool_class=pool_class,
                       candidates=20, generator=gen)
    assert float(hits.mean()) == 1.0
    # an image equally close to every description wins nothing
    flat = torch.ones(50, 50)
    assert float(r_precision(flat, torch.eye(50), torch.arange(50), pool_emb=pool, pool_class=pool_class,
                             candidates=20, generator=gen).mean()) == 0.0
    # candidates restricted to the same language
    lang = torch.tensor([0, 1] * 50)
    hits = r_precision(torch.eye(50), torch.eye(50), torch.arange(50), pool_emb=pool, pool_class=pool_class,
                       candidates=20, generator=gen, text_group=torch.zeros(50, dtype=torch.long), pool_group=lang)
    assert float(hits.mean()) == 1.0
    with pytest.raises(MetaxferError, match="lower the candidates"):
        r_precision(torch.eye(50), torch.eye(50), torch.arange(50), pool_emb=pool, pool_class=pool_class,
                    candidates=100, generator=gen)


def test_sibling_accuracy_picks_among_the_images_own_group_only():
    labels = ["a", "a", "a", "b", "b", "c"]  # classes 0-2 in a, 3-4 in b, 5 alone in c
    logits = torch.tensor([
        [0.0, 5.0, 1.0, 9.0, 9.0, 9.0],  # truth 1: best of a is 1 (other groups' higher scores do not count)
        [3.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # truth 2: a's best is 0, a miss
        [0.0, 0.0, 0.0, 1.0, 2.0, 0.0],  # truth 4: hit
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # truth 5: c has one class, not counted
    ])
    hits: dict = {}
    out = _sibling_accuracy(logits, torch.tensor([1, 2, 4, 5]), labels, hits)
    assert out["sibling_acc"] == pytest.approx(2 / 3) and out["sibling_n"] == 3
    assert out["sibling_chance"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    assert hits["sibling"] == [1.0, 0.0, 1.0, None]
    assert _sibling_accuracy(logits[3:], torch.tensor([5]), labels, {}) == {}  # nothing to choose between


def _blocks_domain() -> Domain:
    """12 classes: a coloured square at one of 4 places, in one of 3 colours; names say which."""
    colours = {"red": (255, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 255)}
    places = {"top left": (0, 0), "top right": (0, 8), "bottom left": (8, 0), "bottom right": (8, 8)}
    images, en, de, kinds = [], [], [], []
    de_col = {"red": "rot", "green": "grün", "blue": "blau"}
    for col, rgb in colours.items():
        for place, (y, x) in places.items():
            img = torch.full((3, 16, 16), 255, dtype=torch.uint8)
            img[:, y : y + 8, x : x + 8] = torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1)
            images.append(img)
            en.append(f"{col} square {place}")
            de.append(f"{de_col[col]}es quadrat {place}")
            kinds.append(col)
    n = len(images)
    return Domain("blocks", torch.stack(images), torch.arange(n), en, groups={"colour": kinds},
                  metadata={"names": {"en": en, "de": de}})


def test_measuring_networks_recognise_real_images_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("METAXFER_CACHE", str(tmp_path))
    pairs = pairs_from_domain(_blocks_domain())
    split = split_classes(pairs, val_fraction=0.0, test_fraction=0.25, group="colour", seed=0)
    settings = MeasureSettings(classifier_steps=150, encoder_steps=150, batch_size=12, width=8, text_width=16, dim=16,
                               candidates=8, seed=5)
    kit = build_measure_kit(pairs, split, settings=settings, group="colour")
    # the real image of each test class, "generated" from each of its descriptions, measures as right
    idx = pairs.text_indices(split.test)
    images = pairs.images[pairs.text_class[torch.tensor(idx)]]
    out = measure_images(kit, images, idx, classes=split.test, candidates=8, seed=0)
    assert out["class_acc"] == 1.0 and out["class_chance"] == pytest.approx(1 / 3)
    assert out["group_acc"] >= 2 / 3  # the group classifier never saw these classes, only their colours
    assert set(out["lang"]) == {"en", "de"} and out["rp_candidates"] == 8
    # a blank image is no class's: class accuracy drops to what a constant guess gets
    blank = torch.full_like(images, 255)
    worse = measure_images(kit, blank, idx, classes=split.test, candidates=8, seed=0)
    assert worse["class_acc"] <= 1 / 3 + 1e-6
    assert out["fid"] < 0.2 * worse["fid"]  # the real images themselves (each twice) are close to the real set
    files = list((tmp_path / "measure-kits").glob("blocks-*.safetensors"))
    assert len(files) == 1
    again = build_measure_kit(pairs, split, settings=settings, group="colour")  # loaded, not trained
    assert again.info == kit.info
    for a, b in zip(kit.classifier.state_dict().values(), again.classifier.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(MetaxferError, match="outside the evaluated set"):
        measure_images(kit, images, idx, classes=split.train, candidates=8)
