"""FID and KID: closed forms, a reference square root, unbiasedness of KID on one distribution, small samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metaxfer.metrics import (
    fid_from_features,
    frechet_distance,
    kid_from_features,
    mmd2_unbiased,
    polynomial_kernel,
)


def random_covariance(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_closed_forms() -> None:
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == pytest.approx(
        9.0 + 1.0
    )
    # diagonal covariances: sum of the 1-D terms
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    cov = random_covariance(np.random.default_rng(0), 6)
    assert frechet_distance(mu1[:1].repeat(6), cov, mu1[:1].repeat(6), cov) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_on_full_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    for d in (2, 5, 16):
        s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        root = linalg.sqrtm(s1 @ s2).real
        reference = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-8)


def test_fid_is_stable_with_fewer_samples_than_dimensions() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 1.0
    value = fid_from_features(x, y)
    assert math.isfinite(value) and value > 0
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_a_translated_set_is_the_squared_shift() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 4))
    shift = np.array([1.0, -2.0, 0.0, 0.5])
    assert fid_from_features(x, x + shift) == pytest.approx((shift**2).sum(), rel=1e-6)  # same covariance exactly


def test_polynomial_kernel_and_unbiased_mmd_by_hand() -> None:
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0]])
    k = polynomial_kernel(x, y)  # (x.y / 2 + 1)^3
    np.testing.assert_allclose(k, [[1.5**3, 1.0], [2.0**3, 1.0]])
    k_xx = np.array([[9.0, 1.0], [3.0, 9.0]])
    k_yy = np.array([[5.0, 2.0], [4.0, 5.0]])
    k_xy = np.array([[1.0, 2.0], [3.0, 6.0]])
    # off-diagonal means: (1 + 3) / 2 = 2 and (2 + 4) / 2 = 3; cross mean 3
    assert mmd2_unbiased(k_xx, k_yy, k_xy) == pytest.approx(2 + 3 - 2 * 3)
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(k_xx[:1, :1], k_yy, k_xy[:1])


def biased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The V-statistic (diagonals kept): biased upwards, the estimator KID must not be."""
    return float(polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean())


def test_kid_is_unbiased_on_samples_from_one_distribution() -> None:
    rng = np.random.default_rng(4)
    n, d, repeats = 100, 16, 200
    kids, biased = [], []
    for r in range(repeats):
        x, y = rng.gamma(2.0, size=(n, d)), rng.gamma(2.0, size=(n, d))
        kids.append(kid_from_features(x, y, subsets=1, subset_size=n, seed=r).mean)
        biased.append(biased_mmd2(x, y))
    kids_arr, biased_arr = np.array(kids), np.array(biased)
    standard_error = kids_arr.std(ddof=1) / math.sqrt(repeats)
    assert abs(kids_arr.mean()) < 3 * standard_error  # mean near zero
    assert (kids_arr < 0).mean() > 0.2  # negative estimates occur, as they must for an unbiased estimator
    assert biased_arr.mean() > 10 * standard_error  # the biased version is clearly positive


def test_kid_detects_a_difference_with_a_few_hundred_samples() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 32)), rng.normal(size=(300, 32)) * 1.3 + 0.3
    result = kid_from_features(x, y, subsets=20, subset_size=150)
    same = kid_from_features(x, rng.normal(size=(300, 32)), subsets=20, subset_size=150)
    assert result.mean > 10 * max(result.std, 1e-12) / math.sqrt(20)
    assert result.mean > 20 * abs(same.mean)
    assert (result.subsets, result.subset_size) == (20, 150)
    again = kid_from_features(x, y, subsets=20, subset_size=150)
    assert again == result  # seeded subsets


def test_kid_argument_errors() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"subset_size must lie in \[2, 10\]"):
        kid_from_features(x, x, subset_size=11)
    with pytest.raises(ValueError, match="dimensions"):
        kid_from_features(x, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="NaN"):
        kid_from_features(x, np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="N >= 2"):
        fid_from_features(x[:1], x)
