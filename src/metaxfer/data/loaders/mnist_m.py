"""MNIST-M (Ganin & Lempitsky 2015): MNIST digits blended over colour photo patches, 32×32 RGB.

On-disk layout (``mnist_m.tar.gz`` unpacked): ``mnist_m_train/`` and ``mnist_m_test/`` of PNGs, and
``mnist_m_train_labels.txt`` / ``mnist_m_test_labels.txt`` with lines ``<file name> <digit>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import (
    DIGIT_KEYS,
    DIGIT_NAMES,
    PathLike,
    choose,
    decode_image,
    find_file,
    read_table,
    require_root,
    stack_images,
)
from metaxfer.errors import DataFormatError, DataNotFoundError

__all__ = ["load_mnist_m"]

_ORIGIN = (
    "MNIST-M comes as mnist_m.tar.gz from the DANN authors (Ganin & Lempitsky 2015, http://yaroslav.ganin.net/) or "
    "its mirrors; unpack it and pass the folder holding mnist_m_train/ and mnist_m_train_labels.txt."
)
_EXPECTED = "mnist_m_<split>/ (PNG files) and mnist_m_<split>_labels.txt"


def _entries(root: PathLike | None, split: str) -> tuple[Path, list[Path], np.ndarray]:
    """The labels file, the image paths it lists and their digits."""
    choose(split, ["train", "test"], option="split", dataset="mnist-m")
    root = require_root(root, dataset="mnist-m", expected=_EXPECTED, origin=_ORIGIN)
    name = f"mnist_m_{split}_labels.txt"
    labels_file = find_file(root, [name, f"mnist_m/{name}"], dataset="mnist-m", origin=_ORIGIN)
    folder = labels_file.parent / f"mnist_m_{split}"
    if not folder.is_dir():
        raise DataNotFoundError(f"mnist-m: {folder} (the images listed in {labels_file}) does not exist. {_ORIGIN}")
    rows = read_table(labels_file, 2)
    try:
        digits = np.array([int(label) for _, label in rows], dtype=np.int64)
    except ValueError as exc:
        raise DataFormatError(f"{labels_file}: labels must be integers ({exc})") from None
    if digits.size and (digits.min() < 0 or digits.max() > 9):
        raise DataFormatError(f"{labels_file}: labels must be digits 0-9, found {digits.min()}..{digits.max()}")
    return labels_file, [folder / file for file, _ in rows], digits


def load_mnist_m(root: PathLike, *, split: str = "train", size: int | None = None) -> Domain:
    """Load MNIST-M from its unpacked folder.

    Args:
        root: Folder holding ``mnist_m_train/``, ``mnist_m_train_labels.txt`` and the test pair (or a folder holding
            an ``mnist_m/`` folder with them).
        split: ``"train"`` (59,001 images) or ``"test"`` (9,001).
        size: Resize every image to ``size``×``size``; ``None`` keeps the stored 32×32.

    Returns:
        The domain; images uint8 (N, 3, 32, 32) RGB, class keys ``digit-0`` … ``digit-9``.

    Raises:
        DataNotFoundError: The folder, labels file or a listed image is missing (the message says where MNIST-M comes
            from).
        DataFormatError: A malformed labels line or an unreadable image (named).
    """
    labels_file, paths, digits = _entries(root, split)
    images = [decode_image(p, channels=3, size=size) for p in paths]
    return Domain(
        name="mnist-m",
        images=stack_images(images, dataset="mnist-m"),
        labels=torch.from_numpy(digits),
        class_names=list(DIGIT_NAMES),
        class_keys=list(DIGIT_KEYS),
        metadata={
            "source": str(labels_file.parent),
            "license": "derived from MNIST (CC BY-SA 3.0) and BSDS500 photos; research use",
            "description": "MNIST-M: MNIST digits blended over colour photo patches, RGB",
            "split": split,
        },
    )


def _mnist_m_files(root: PathLike | None = None, *, split: str = "train", size: int | None = None) -> list[str]:
    labels_file, paths, _ = _entries(root, split)
    return [str(labels_file), *map(str, paths)]


register_domain(
    DomainSpec(
        name="mnist-m",
        build=load_mnist_m,
        description="MNIST-M: MNIST digits over colour photo patches, 32×32 RGB",
        source="user path (root=)",
        license="derived from MNIST (CC BY-SA 3.0) and BSDS500; research use",
        default=False,
        needs_root=True,
        fingerprint_files=_mnist_m_files,
    )
)
