"""Metrics of generated images that work on small sets and small images.

- :mod:`~metaxfer.metrics.features`: a small CNN trained on the domain in question, the feature extractor of
  FID/KID (no Inception: its weights cannot be had offline and it does not suit 28×28 glyphs).
- :mod:`~metaxfer.metrics.generation`: FID and the unbiased KID (cubic polynomial kernel, over subsets).
- :mod:`~metaxfer.metrics.cas`: classification accuracy score (train on generated, test on real).

Per-class sample grids are drawn by :func:`metaxfer.gan.class_sample_grid`.
"""

from __future__ import annotations

from metaxfer.metrics.cas import CASResult, classification_accuracy_score
from metaxfer.metrics.features import (
    FeatureExtractor,
    FeatureNet,
    classifier_accuracy,
    train_classifier,
    train_feature_extractor,
)
from metaxfer.metrics.generation import (
    GenerationScores,
    KIDResult,
    fid,
    fid_from_features,
    frechet_distance,
    generation_scores,
    kid,
    kid_from_features,
    mmd2_unbiased,
    polynomial_kernel,
)

__all__ = [
    "FeatureNet",
    "FeatureExtractor",
    "train_classifier",
    "classifier_accuracy",
    "train_feature_extractor",
    "frechet_distance",
    "fid_from_features",
    "polynomial_kernel",
    "mmd2_unbiased",
    "KIDResult",
    "kid_from_features",
    "GenerationScores",
    "fid",
    "kid",
    "generation_scores",
    "CASResult",
    "classification_accuracy_score",
]
