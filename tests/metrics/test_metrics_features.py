"""The domain feature extractor, FID/KID on images, and the classification accuracy score."""

from __future__ import annotations

import math

import pytest
import torch

from metaxfer.data import create_domain
from metaxfer.errors import DataFormatError
from metaxfer.metrics import (
    FeatureExtractor,
    classification_accuracy_score,
    classifier_accuracy,
    fid,
    generation_scores,
    kid,
    train_classifier,
    train_feature_extractor,
)


@pytest.fixture(scope="module")
def domain():
    return create_domain("synthetic", num_classes=4, per_class=60, size=16, seed=3, cache=False)


@pytest.fixture(scope="module")
def extractor(domain) -> FeatureExtractor:
    result = train_feature_extractor(domain, epochs=4, seed=0, batch_size=32)
    return result


def test_extractor_is_accurate_and_says_what_it_is(extractor: FeatureExtractor, domain) -> None:
    assert extractor.held_out_accuracy > 0.9
    text = extractor.description
    assert "FeatureNet" in text and "'synthetic'" in text and "128-d" in text and "1×16×16" in text
    feats = extractor.features(domain.images[:7])
    assert feats.shape == (7, 128) and feats.dtype == torch.float64
    assert extractor.info["held_out_examples"] == 48  # 20% of each class of 60


def test_extractor_state_round_trip(extractor: FeatureExtractor, domain) -> None:
    twin = FeatureExtractor.from_state_dict(extractor.state_dict())
    torch.testing.assert_close(twin.features(domain.images[:5]), extractor.features(domain.images[:5]))
    assert twin.description == extractor.description


def test_extractor_refuses_other_formats(extractor: FeatureExtractor, domain) -> None:
    with pytest.raises(DataFormatError, match="match_format"):
        extractor.features(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(DataFormatError, match="gan_to_uint8"):
        extractor.features(domain.images[:2].float())


def test_real_halves_score_far_better_than_damaged_images(extractor: FeatureExtractor, domain) -> None:
    real_a, real_b = domain.images[0::2], domain.images[1::2]
    noise = torch.randint(0, 256, real_b.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    dimmed = (real_b.float() * 0.5).to(torch.uint8)
    same = generation_scores(real_a, real_b, extractor=extractor, subsets=20)
    dim = generation_scores(real_a, dimmed, extractor=extractor, subsets=20)
    random = generation_scores(real_a, noise, extractor=extractor, subsets=20)
    assert same.fid < dim.fid < random.fid
    assert same.kid < dim.kid < random.kid
    assert abs(same.kid) < 0.1 * random.kid
    assert same.feature_extractor == extractor.description and (same.n_real, same.n_fake) == (120, 120)
    assert fid(real_a, noise, extractor=extractor) == pytest.approx(random.fid)
    assert kid(real_a, noise, extractor=extractor, subsets=20).mean == pytest.approx(random.kid)


def test_cas_is_high_for_real_data_and_chance_for_shuffled_labels(domain) -> None:
    train, test = slice(0, None, 2), slice(1, None, 2)
    good = classification_accuracy_score(
        domain.images[train], domain.labels[train], domain.images[test], domain.labels[test],
        num_classes=4, epochs=5, batch_size=32,
    )
    shuffled = domain.labels[train][torch.randperm(120, generator=torch.Generator().manual_seed(0))]
    bad = classification_accuracy_score(
        domain.images[train], shuffled, domain.images[test], domain.labels[test], num_classes=4, epochs=5,
        batch_size=32,
    )
    assert good.accuracy > 0.9 and bad.accuracy < 0.55
    assert len(good.per_class) == 4 and good.n_train == good.n_test == 120
    assert "FeatureNet" in good.classifier


def test_classifier_accuracy_per_class_and_errors(domain) -> None:
    net = train_classifier(domain.images, domain.labels, num_classes=5, epochs=1, batch_size=32)
    acc, per_class = classifier_accuracy(net, domain.images, domain.labels)
    assert 0.0 <= acc <= 1.0 and math.isnan(per_class[4])  # class 4 never appears
    with pytest.raises(DataFormatError, match=r"labels must lie in \[0, 3\)"):
        train_classifier(domain.images, domain.labels, num_classes=3, epochs=1)
    with pytest.raises(ValueError, match="same"):
        classification_accuracy_score(
            domain.images, domain.labels, torch.zeros(2, 1, 8, 8, dtype=torch.uint8), domain.labels[:2], num_classes=4
        )


def test_training_is_seeded_and_leaves_the_global_rng_alone(domain) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = train_classifier(domain.images[:64], domain.labels[:64], num_classes=4, epochs=1, batch_size=32, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_classifier(domain.images[:64], domain.labels[:64], num_classes=4, epochs=1, batch_size=32, seed=7)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
