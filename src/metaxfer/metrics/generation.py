"""FID and KID between real and generated images, on the features of a classifier of the domain.

- **FID** fits a Gaussian to each set of features and returns the Fréchet distance between them,
  ``‖μ₁ - μ₂‖² + tr(Σ₁ + Σ₂ - 2(Σ₁Σ₂)^½)``. It is biased upwards for small sets (it shrinks as the sets grow), so
  compare FIDs only at equal sample sizes.
- **KID** is the squared maximum mean discrepancy with the cubic polynomial kernel
  ``k(x, y) = (xᵀy / d + 1)³``, estimated without bias on random subsets; its mean and standard deviation over the
  subsets are returned. Being unbiased, it is meaningful for a few hundred samples and its expectation is 0 when
  both sets come from one distribution (so small negative values occur).

The features come from :class:`~metaxfer.metrics.features.FeatureExtractor` (a small CNN trained on the domain, not
Inception); its description is stored with every score, since scores from different extractors are not comparable.

Example:
    >>> import torch
    >>> x, y = torch.randn(300, 8, dtype=torch.float64), torch.randn(300, 8, dtype=torch.float64)
    >>> abs(kid_from_features(x, y, subsets=20, subset_size=100).mean) < 0.05
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from metaxfer.metrics.features import FeatureExtractor

__all__ = [
    "gaussian_statistics",
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
]


def _as_numpy(features: torch.Tensor | np.ndarray, *, who: str) -> np.ndarray:
    arr = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{who} needs features shaped (N, D) with N >= 2, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{who}: the features contain NaN or infinite values (did the generator diverge?)")
    return arr


# ---------------------------------------------------------------------------------------------------- FID
def gaussian_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (with the ``N - 1`` denominator) of a set of feature vectors.

    Args:
        features: (N, D) features, N >= 2.

    Returns:
        ``(mu, sigma)``: float64 arrays (D,) and (D, D).
    """
    arr = _as_numpy(features, who="gaussian_statistics")
    return arr.mean(axis=0), np.cov(arr, rowvar=False, ddof=1).reshape(arr.shape[1], arr.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding-error eigenvalues → 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance² between N(mu1, sigma1) and N(mu2, sigma2).

    ``tr((Σ₁Σ₂)^½)`` is computed as ``tr((Σ₁^½ Σ₂ Σ₁^½)^½)``, a symmetric PSD matrix whose eigenvalues are real
    and, after clipping rounding errors at 0, non-negative: this stays stable when the covariances are singular
    (fewer samples than feature dimensions), where a general matrix square root returns complex noise.

    Args:
        mu1: Mean (D,).
        sigma1: Covariance (D, D).
        mu2: Mean (D,).
        sigma2: Covariance (D, D).

    Returns:
        The distance (>= 0).

    References:
        D. C. Dowson, B. V. Landau. The Fréchet distance between multivariate normal distributions. J. Multivariate
        Analysis, 1982; M. Heusel et al. GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
        Equilibrium. NeurIPS 2017.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"frechet_distance needs means (D,) and covariances (D, D) of one size, got {mu1.shape}, {sigma1.shape}, "
            f"{mu2.shape}, {sigma2.shape}"
        )
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = float(np.sqrt(np.clip(values, 0.0, None)).sum())
    diff = mu1 - mu2
    distance = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)
    return max(distance, 0.0)


def fid_from_features(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray) -> float:
    """FID between two sets of features.

    Args:
        real: Features of real images (N, D).
        fake: Features of generated images (M, D).

    Returns:
        The Fréchet distance between the Gaussians fitted to each set.
    """
    return frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake))


# ---------------------------------------------------------------------------------------------------- KID
def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """Polynomial kernel matrix ``(γ xᵢᵀyⱼ + coef0)^degree``.

    Args:
        x: (N, D).
        y: (M, D).
        degree: Power (3 for KID).
        gamma: Scale of the inner product (default ``1 / D``).
        coef0: Constant term.

    Returns:
        (N, M) float64 matrix.
    """
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased estimate of the squared MMD from kernel matrices (the U-statistic: diagonals left out).

    ``MMD² = Σ_{i≠j} k(xᵢ,xⱼ)/(m(m-1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(n(n-1)) - 2 Σ_{i,j} k(xᵢ,yⱼ)/(mn)``.

    Args:
        k_xx: (m, m) kernel among the first sample.
        k_yy: (n, n) kernel among the second sample.
        k_xy: (m, n) kernel between them.

    Returns:
        The estimate (may be slightly negative).

    References:
        A. Gretton et al. A Kernel Two-Sample Test. JMLR 2012 (Lemma 6).
    """
    m, n = k_xx.shape[0], k_yy.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples on each side, got {m} and {n}")
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


@dataclass(frozen=True)
class KIDResult:
    """KID over random subsets.

    Attributes:
        mean: Mean of the unbiased MMD² estimates.
        std: Their standard deviation (spread over subsets, not a standard error).
        subsets: Number of subsets.
        subset_size: Samples drawn from each set per subset (without replacement).
    """

    mean: float
    std: float
    subsets: int
    subset_size: int


def kid_from_features(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    *,
    subsets: int = 100,
    subset_size: int | None = None,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> KIDResult:
    """KID between two sets of features: the unbiased MMD² with a polynomial kernel, averaged over subsets.

    Args:
        real: Features of real images (N, D).
        fake: Features of generated images (M, D).
        subsets: Number of random subsets.
        subset_size: Samples per subset from each set (default: half the smaller set, at most 1000, so that the
            subsets differ and ``std`` says how much the estimate varies), at least 2.
        degree: Kernel degree (3).
        gamma: Kernel scale (default ``1 / D``).
        coef0: Kernel constant (1).
        seed: Seed of the subset draws.

    Returns:
        :class:`KIDResult`.

    References:
        M. Bińkowski, D. J. Sutherland, M. Arbel, A. Gretton. Demystifying MMD GANs. ICLR 2018.
    """
    x, y = _as_numpy(real, who="kid (real)"), _as_numpy(fake, who="kid (fake)")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"kid: real features have {x.shape[1]} dimensions, fake ones {y.shape[1]}")
    smaller = min(x.shape[0], y.shape[0])
    size = max(2, min(smaller // 2, 1000)) if subset_size is None else subset_size
    if not 2 <= size <= min(x.shape[0], y.shape[0]):
        raise ValueError(
            f"kid subset_size must lie in [2, {min(x.shape[0], y.shape[0])}] (the smaller set), got {size}"
        )
    if subsets < 1:
        raise ValueError(f"kid needs subsets >= 1, got {subsets}")
    rng = np.random.default_rng(seed)
    kw = {"degree": degree, "gamma": gamma, "coef0": coef0}
    estimates = np.empty(subsets)
    for s in range(subsets):
        a = x[rng.choice(x.shape[0], size, replace=False)]
        b = y[rng.choice(y.shape[0], size, replace=False)]
        estimates[s] = mmd2_unbiased(
            polynomial_kernel(a, a, **kw), polynomial_kernel(b, b, **kw), polynomial_kernel(a, b, **kw)
        )
    std = float(estimates.std(ddof=1)) if subsets > 1 else math.nan
    return KIDResult(mean=float(estimates.mean()), std=std, subsets=subsets, subset_size=size)


# ---------------------------------------------------------------------------------------------------- on images
@dataclass(frozen=True)
class GenerationScores:
    """FID and KID of one set of generated images against real ones.

    Attributes:
        fid: Fréchet distance on the extractor's features.
        kid: KID mean.
        kid_std: KID standard deviation over subsets.
        n_real: Real images used.
        n_fake: Generated images used.
        feature_extractor: Description of the feature extractor (which network, trained on which domain).
    """

    fid: float
    kid: float
    kid_std: float
    n_real: int
    n_fake: int
    feature_extractor: str


def fid(real_images: torch.Tensor, fake_images: torch.Tensor, *, extractor: FeatureExtractor) -> float:
    """FID between uint8 real and generated images on ``extractor``'s features.

    Args:
        real_images: uint8 (N, C, H, W).
        fake_images: uint8 (M, C, H, W) (convert generator output with :func:`metaxfer.gan.gan_to_uint8`).
        extractor: From :func:`~metaxfer.metrics.features.train_feature_extractor` on the real images' domain.

    Returns:
        The FID (compare only values computed with the same extractor and sample sizes).
    """
    return fid_from_features(extractor.features(real_images), extractor.features(fake_images))


def kid(
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    *,
    extractor: FeatureExtractor,
    subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
) -> KIDResult:
    """KID between uint8 real and generated images on ``extractor``'s features.

    Args:
        real_images: uint8 (N, C, H, W).
        fake_images: uint8 (M, C, H, W).
        extractor: The domain's feature extractor.
        subsets: Number of random subsets.
        subset_size: Samples per subset (default: half the smaller set, at most 1000).
        seed: Seed of the subset draws.

    Returns:
        :class:`KIDResult`.
    """
    return kid_from_features(
        extractor.features(real_images),
        extractor.features(fake_images),
        subsets=subsets,
        subset_size=subset_size,
        seed=seed,
    )


def generation_scores(
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    *,
    extractor: FeatureExtractor,
    subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
) -> GenerationScores:
    """FID and KID together (features computed once), with the extractor's description.

    Args:
        real_images: uint8 (N, C, H, W).
        fake_images: uint8 (M, C, H, W).
        extractor: The domain's feature extractor.
        subsets: KID subsets.
        subset_size: KID subset size (default: half the smaller set, at most 1000).
        seed: Seed of the KID subset draws.

    Returns:
        :class:`GenerationScores`.
    """
    real, fake = extractor.features(real_images), extractor.features(fake_images)
    k = kid_from_features(real, fake, subsets=subsets, subset_size=subset_size, seed=seed)
    return GenerationScores(
        fid=fid_from_features(real, fake),
        kid=k.mean,
        kid_std=k.std,
        n_real=int(real.shape[0]),
        n_fake=int(fake.shape[0]),
        feature_extractor=extractor.description,
    )
