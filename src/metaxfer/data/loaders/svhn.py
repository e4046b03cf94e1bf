"""SVHN cropped digits (Netzer et al. 2011), format 2: ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``.

Each is a MATLAB v5 file with ``X`` of shape (32, 32, 3, N) uint8 and ``y`` of shape (N, 1) holding 1–10, where 10
stands for the digit 0.
"""

from __future__ import annotations

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import DIGIT_KEYS, DIGIT_NAMES, PathLike, choose, find_file, require_root
from metaxfer.errors import DataFormatError, MissingDependencyError

__all__ = ["load_svhn", "read_svhn_mat"]

_ORIGIN = "SVHN comes from http://ufldl.stanford.edu/housenumbers/ (format 2, cropped digits: train_32x32.mat, ...)."
_SPLITS = ("train", "test", "extra")


def read_svhn_mat(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN ``*_32x32.mat`` file.

    Returns:
        ``(images, digits)``: uint8 (N, 3, 32, 32) and int64 (N,) with label 10 mapped to 0.

    Raises:
        MissingDependencyError: scipy is not installed.
        DataFormatError: Not a MATLAB v5 file, or ``X`` / ``y`` missing or of the wrong shape, type or range.
    """
    try:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError
    except ImportError:
        raise MissingDependencyError("reading SVHN's .mat files needs scipy: pip install scipy") from None
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except NotImplementedError as exc:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DataFormatError(f"{path}: {exc}; SVHN's files are MATLAB v5, download the original again") from None
    except (MatReadError, ValueError, OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({exc}); it may be truncated") from None
    if "X" not in mat or "y" not in mat:
        raise DataFormatError(
            f"{path}: expected variables X and y, found {sorted(k for k in mat if not k.startswith('__'))}"
        )
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        raise DataFormatError(f"{path}: X must be uint8 of shape (H, W, 3, N), got {x.dtype} {x.shape}")
    if y.size != x.shape[3] or y.ndim > 2:
        raise DataFormatError(f"{path}: y must have shape ({x.shape[3]}, 1) to match X, got {y.shape}")
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataFormatError(f"{path}: y must hold 1-10 (10 = digit 0), found {labels.min()}..{labels.max()}")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels % 10


def _mat_file(root: PathLike | None, split: str) -> str:
    choose(split, _SPLITS, option="split", dataset="svhn")
    root = require_root(root, dataset="svhn", expected=f"{split}_32x32.mat", origin=_ORIGIN)
    return str(find_file(root, [f"{split}_32x32.mat"], dataset="svhn", origin=_ORIGIN))


def load_svhn(root: PathLike, *, split: str = "train") -> Domain:
    """Load SVHN's cropped digits.

    Args:
        root: Folder holding ``train_32x32.mat`` / ``test_32x32.mat`` / ``extra_32x32.mat``.
        split: ``"train"`` (73,257 images), ``"test"`` (26,032) or ``"extra"`` (531,131).

    Returns:
        The domain; images uint8 (N, 3, 32, 32) RGB, class keys ``digit-0`` … ``digit-9``.

    Raises:
        DataNotFoundError: The file is missing (the message says where SVHN comes from).
        DataFormatError: The file is corrupt or not in SVHN's format.
    """
    path = _mat_file(root, split)
    images, digits = read_svhn_mat(path)
    return Domain(
        name="svhn",
        images=torch.from_numpy(images),
        labels=torch.from_numpy(digits),
        class_names=list(DIGIT_NAMES),
        class_keys=list(DIGIT_KEYS),
        metadata={
            "source": path,
            "license": "non-commercial use only (Netzer et al. 2011, SVHN terms)",
            "description": "SVHN: house-number digits cropped from Street View photos, 32×32 RGB",
            "split": split,
        },
    )


def _svhn_files(root: PathLike | None = None, *, split: str = "train") -> list[str]:
    return [_mat_file(root, split)]


register_domain(
    DomainSpec(
        name="svhn",
        build=load_svhn,
        description="SVHN cropped house-number digits, 32×32 RGB (train_32x32.mat, ...)",
        source="user path (root=)",
        license="non-commercial use only (SVHN terms)",
        python_modules=("scipy",),
        install_hint="pip install scipy",
        default=False,
        needs_root=True,
        fingerprint_files=_svhn_files,
    )
)
