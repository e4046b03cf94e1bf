"""Caltech-UCSD Birds-200-2011 (Wah et al. 2011): 11,788 photos of 200 bird species.

On-disk layout (``CUB_200_2011.tgz`` unpacked): ``CUB_200_2011/`` holding ``images.txt`` (``<id> <path>``),
``image_class_labels.txt`` (``<id> <class id>``), ``classes.txt`` (``<class id> <NNN.Name>``),
``train_test_split.txt`` (``<id> <1 = train, 0 = test>``), ``bounding_boxes.txt`` (``<id> <x> <y> <w> <h>``) and
``images/<NNN.Name>/<file>.jpg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metaxfer.data.domain import Domain, DomainSpec, register_domain
from metaxfer.data.loaders._common import (
    PathLike,
    choose,
    decode_image,
    find_file,
    read_table,
    require_root,
    stack_images,
)
from metaxfer.errors import DataFormatError

__all__ = ["load_cub"]

_ORIGIN = (
    "CUB-200-2011 comes as CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
    "(data.caltech.edu/records/65de6-vzh23); unpack it and pass the folder holding CUB_200_2011/."
)
_TABLES = ("images.txt", "image_class_labels.txt", "classes.txt", "train_test_split.txt")


def _folder(root: PathLike | None) -> Path:
    root = require_root(root, dataset="cub", expected="CUB_200_2011/ with images.txt, classes.txt, ...", origin=_ORIGIN)
    return find_file(root, ["CUB_200_2011/images.txt", "images.txt"], dataset="cub", origin=_ORIGIN).parent


def _numbers(rows: list[list[str]], column: int, path: Path, kind: type = int) -> np.ndarray:
    """Column ``column`` of a table as numbers, with an error naming the file if one is not a number."""
    try:
        return np.array([kind(r[column]) for r in rows], dtype=np.int64 if kind is int else np.float64)
    except ValueError as exc:
        raise DataFormatError(f"{path}: column {column + 1} must hold numbers ({exc})") from None


def _aligned(folder: Path, name: str, columns: int, ids: np.ndarray) -> tuple[Path, list[list[str]]]:
    """The rows of ``folder/name``, checked to list exactly the image ids ``ids`` in the same order."""
    path = find_file(folder, [name], dataset="cub", origin=_ORIGIN)
    rows = read_table(path, columns)
    if not np.array_equal(_numbers(rows, 0, path), ids):
        raise DataFormatError(f"{path}: its image ids do not match images.txt (one row per image, same order)")
    return path, rows


def _read_tables(
    folder: Path, *, crop: bool
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Read and cross-check the tables of ``CUB_200_2011/``.

    Returns:
        ``(files, ids, labels, is_train, class_folders, boxes)``: per image its path under ``images/``, id, 0-based
        class and train flag (1/0); the class folder names (``001.Black_footed_Albatross``, ...); and, with
        ``crop``, the boxes as (left, top, right, bottom) ints, else ``None``.
    """
    images_rows = read_table(folder / "images.txt", 2)
    ids = _numbers(images_rows, 0, folder / "images.txt")
    labels_path, rows = _aligned(folder, "image_class_labels.txt", 2, ids)
    labels = _numbers(rows, 1, labels_path) - 1
    split_path, rows = _aligned(folder, "train_test_split.txt", 2, ids)
    is_train = _numbers(rows, 1, split_path)
    if not np.isin(is_train, (0, 1)).all():
        raise DataFormatError(f"{split_path}: the second column must be 1 (train) or 0 (test)")
    classes_path = find_file(folder, ["classes.txt"], dataset="cub", origin=_ORIGIN)
    class_rows = read_table(classes_path, 2)
    if _numbers(class_rows, 0, classes_path).tolist() != list(range(1, len(class_rows) + 1)):
        raise DataFormatError(f"{classes_path}: class ids must run 1, 2, 3, ... in order")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_rows)):
        raise DataFormatError(f"{labels_path}: class ids must lie in 1-{len(class_rows)} (the ids of classes.txt)")
    boxes = None
    if crop:
        boxes_path, rows = _aligned(folder, "bounding_boxes.txt", 5, ids)
        boxes = np.rint(np.stack([_numbers(rows, c, boxes_path, float) for c in range(1, 5)], axis=1)).astype(np.int64)
        boxes[:, 2:] += boxes[:, :2]  # (x, y, w, h) -> (left, top, right, bottom)
    return [r[1] for r in images_rows], ids, labels, is_train, [r[1] for r in class_rows], boxes


def load_cub(root: PathLike, *, split: str = "train", size: int = 84, crop: bool = False) -> Domain:
    """Load CUB-200-2011.

    Args:
        root: The folder holding ``CUB_200_2011/`` (or that folder itself).
        split: ``"train"`` (5,994 images), ``"test"`` (5,794) or ``"all"``, from ``train_test_split.txt``. Every split
            has all 200 classes.
        size: Output side in pixels (LANCZOS; aspect ratio not kept).
        crop: Crop each image to its box in ``bounding_boxes.txt`` before resizing.

    Returns:
        The domain; images uint8 (N, 3, size, size) RGB; class names like ``Black_footed_Albatross``, class keys
        ``cub:001.Black_footed_Albatross``; instance ``image_id`` per image.

    Raises:
        DataNotFoundError: A table or image is missing (the message says where CUB comes from).
        DataFormatError: A table is malformed or inconsistent, or an image is unreadable (named).
    """
    choose(split, ["train", "test", "all"], option="split", dataset="cub")
    folder = _folder(root)
    files, ids, labels, is_train, class_folders, boxes = _read_tables(folder, crop=crop)
    keep = np.flatnonzero(is_train == 1 if split == "train" else is_train == 0 if split == "test" else is_train >= 0)
    images = [
        decode_image(
            folder / "images" / files[i],
            channels=3,
            size=size,
            box=tuple(int(v) for v in boxes[i]) if boxes is not None else None,
        )
        for i in keep
    ]
    return Domain(
        name="cub",
        images=stack_images(images, dataset="cub"),
        labels=torch.from_numpy(labels[keep]),
        class_names=[f.split(".", 1)[-1] for f in class_folders],
        class_keys=[f"cub:{f}" for f in class_folders],
        instances={"image_id": [str(ids[i]) for i in keep]},
        metadata={
            "source": str(folder),
            "license": "non-commercial research and education (Caltech CUB-200-2011 terms; images from Flickr)",
            "description": f"CUB-200-2011 birds, {split} split{', cropped to boxes' if crop else ''}, {size}×{size}",
            "split": split,
        },
    )


def _cub_files(root: PathLike | None = None, *, split: str = "train", size: int = 84, crop: bool = False) -> list[str]:
    folder = _folder(root)
    tables = [*_TABLES, "bounding_boxes.txt"] if crop else list(_TABLES)
    rows = read_table(folder / "images.txt", 2)
    return [str(folder / t) for t in tables] + [str(folder / "images" / r[1]) for r in rows]


register_domain(
    DomainSpec(
        name="cub",
        build=load_cub,
        description="CUB-200-2011 birds, 200 species (train/test/all; optional box crop)",
        source="user path (root=)",
        license="non-commercial research (CUB-200-2011 terms)",
        default=False,
        needs_root=True,
        fingerprint_files=_cub_files,
    )
)
